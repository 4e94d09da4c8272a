"""The one atomic file write: a temporary file beside the target, written, flushed to disk, then renamed over
it (readers see the old file or the new one, never a part).

The index's own files (``engine.catalog.save_array``) pass a fixed temporary name, which the index records
before it exists and cleans up after a crash; everything else (whitening, faiss indexes, the cached network
weights, a manifest's learned parameters) gets a random one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]

_UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *,
                 tmp: str | os.PathLike | None = None) -> None:
    """Call ``write(tmp)`` on a new temporary file beside ``path``, fsync it, then move it into place; the
    temporary file is removed when anything fails (the error propagates).

    ``tmp``: the temporary file's path, created exclusively (never an existing file, nor through a link);
    default ``.<name>.<random>.tmp`` beside ``path`` (its folder created).
    """
    path = Path(path)
    if tmp is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        if hasattr(os, "fchmod"):  # mkstemp makes it owner-only; a file written is as readable as any other
            os.fchmod(fd, 0o666 & ~_UMASK)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_BINARY", 0), 0o644)
    os.close(fd)
    try:
        write(os.fspath(tmp))
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
