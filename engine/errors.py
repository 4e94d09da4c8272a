"""Typed errors of the engine; the command line and the app decide how to show them."""
from __future__ import annotations


class SketchSearchError(Exception):
    """Base class of every error the engine raises on purpose (one-line message, no traceback needed)."""


class IndexNotFound(SketchSearchError):
    """The index path does not exist or holds no sketchsearch index."""


class IndexFormatError(SketchSearchError):
    """The index was written by another format version or with other settings."""


class IndexLocked(SketchSearchError):
    """Another process is writing the index."""


class QueryError(SketchSearchError):
    """The query (sketch or image) cannot be used."""


class DeviceError(SketchSearchError, ValueError):
    """A compute device that is unknown or not available here (``cuda`` without CUDA...)."""


class Cancelled(SketchSearchError):
    """A long task was cancelled by its caller."""


class IndexWriteError(SketchSearchError):
    """The index could not be written (disk full, read-only folder, I/O error); what was committed before is
    kept and the next run goes on from there."""


class DamagedIndexWarning(UserWarning):
    """Part of an index is missing or damaged: it is left out (searches answer from the rest) until the next
    index run describes it again."""
