"""The sketchsearch desktop app (PySide6): thin widgets over :mod:`engine`.

Only this package imports Qt; the engine stays usable as a library without it.
"""
