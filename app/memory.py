"""Give freed heap memory back to the operating system.

glibc's allocator keeps the memory that freed objects leave in its arenas (one per thread that allocated:
the search and thumbnail pools' threads each have theirs) rather than returning it to the system; after a
few hundred searches a window held about 90 MB it no longer used.  ``malloc_trim(0)`` releases it.  The
main window calls :func:`trim_heap` once the person pauses (never in the middle of drawing).
"""
from __future__ import annotations

import ctypes
import sys

__all__ = ["trim_heap"]

_trim = None  # malloc_trim of glibc; False where there is none


def _malloc_trim():
    global _trim
    if _trim is None:
        _trim = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                fn = libc.malloc_trim  # glibc only (musl has no malloc_trim: AttributeError)
            except (OSError, AttributeError):
                pass
            else:
                fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
                _trim = fn
    return _trim


def trim_heap() -> bool:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim(0)``).

    Returns True when it ran, False where there is nothing to call (another OS, musl, no libc.so.6)."""
    fn = _malloc_trim()
    if not fn:
        return False
    try:
        fn(0)
    except OSError:
        return False
    return True
