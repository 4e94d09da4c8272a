"""Atomic file writes: a temporary file beside the target, then a rename (readers see the old file or the new
one, never a part).

The index's own files (``engine.store``) use a fixed temporary name that the index records and cleans up;
everything else (whitening, faiss indexes, the cached network weights) uses :func:`atomic_write`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a new temporary file beside ``path`` (``.<name>.<random>.tmp``, its folder
    created), then move it into place; the temporary file is removed when anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
