"""Filters that narrow any query to part of a collection: a folder (a subtree of the indexed folders), a date
range (EXIF DateTimeOriginal where a photo has one, else the file's time) and a minimum size in pixels.

A filter is applied by each shard *before* its candidates are cut (``engine.shardsearch``), so a filter never
empties a page of results that has matches further down.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

import numpy as np

from .errors import QueryError

__all__ = ["PhotoFilter", "parse_date"]


def parse_date(text: str, *, what: str = "date") -> float:
    """``YYYY-MM-DD`` (or ``YYYY-MM-DD HH:MM[:SS]`` / ``...THH:MM``), local time -> seconds since the epoch.

    Raises ``QueryError`` naming ``what`` for anything else."""
    s = str(text).strip()
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            when = _dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
        try:
            return when.timestamp()
        except (OverflowError, ValueError, OSError):  # a date, but not one this machine's clock can hold
            raise QueryError(f"{what} {text!r} is out of the range of dates this machine can compare") from None
    raise QueryError(f"{what} {text!r} is not a date (use YYYY-MM-DD)")


@dataclass(frozen=True)
class PhotoFilter:
    """Which photos a query may return.

    under : a folder; only photos inside it (at any depth).  Made absolute with links resolved, as the
        catalog stores paths.
    after, before : seconds since the epoch; a photo's date (``taken``) must be ``>= after`` and ``< before``.
    min_side : pixels; the photo's shorter side (original pixels) must be at least this.
    """

    under: str | None = None
    after: float | None = None
    before: float | None = None
    min_side: int | None = None

    def __post_init__(self) -> None:
        if self.under is not None:
            object.__setattr__(self, "under", os.path.realpath(os.path.expanduser(str(self.under))))
        if self.min_side is not None and int(self.min_side) < 1:
            raise QueryError(f"minimum side {self.min_side} must be at least 1 pixel")
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise QueryError("the date range is empty (the 'after' date is not before the 'before' date)")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.under, self.after, self.before, self.min_side))

    def allows(self, paths, taken: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Boolean mask over photos: ``paths`` (N,), ``taken`` (N,) seconds, ``sizes`` (N, 2) original
        (width, height)."""
        n = len(paths)
        ok = np.ones(n, bool)
        if self.under is not None:
            root = self.under.rstrip(os.sep) + os.sep
            ok &= np.fromiter((str(p).startswith(root) for p in paths), bool, count=n)
        taken = np.asarray(taken, np.float64)
        if self.after is not None:
            ok &= taken >= self.after
        if self.before is not None:
            ok &= taken < self.before
        if self.min_side is not None:
            sizes = np.asarray(sizes, np.float64).reshape(n, 2)
            ok &= sizes.min(axis=1) >= self.min_side
        return ok

    def describe(self) -> list[str]:
        """Each active part in words (chips, messages)."""
        out = []
        if self.under is not None:
            out.append(f"in {self.under}")
        if self.after is not None:
            out.append(f"from {_dt.datetime.fromtimestamp(self.after):%Y-%m-%d}")
        if self.before is not None:
            out.append(f"before {_dt.datetime.fromtimestamp(self.before):%Y-%m-%d}")
        if self.min_side is not None:
            out.append(f"at least {self.min_side} px")
        return out
