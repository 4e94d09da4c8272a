"""A read-only, memory-mapped view of one index folder (``IndexView``): what a shard searches."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from .afm import FeatureLayout
from .catalog import (
    CATALOG,
    CHUNK_FILE,
    FIXED_FILES,
    SKETCH_ARRAYS,
    CatalogReader,
    array_spec,
    chunk_path,
    concat_blocks,
    connect_ro,
    has_column,
    open_array,
    read_meta,
)
from .compact import Dequantised
from .errors import DamagedIndexWarning, Hint, IndexFormatError
from .rotation import POLAR_DIM
from .settings import FORMAT_VERSION, SketchSettings

#: loads of a view's image searcher (``IndexView.images``), one at a time
_IMAGES_LOCK = threading.Lock()


class IndexView:
    """A read-only, memory-mapped view of one index folder: its descriptor arrays and, read on demand, its
    photos' paths and geometry (what a shard searches; ``engine.collection.SketchIndex`` adds the queries).

    The view is a consistent snapshot of the catalog at opening; a writer may add to the index
    meanwhile (open it again to see the additions).

    Parameters
    ----------
    db : path of the index folder
    """

    def __init__(self, db: str | os.PathLike) -> None:
        self.path = Path(db)
        self._cells_column: bool | None = None  # whether the catalog has the cells column (asked at first need)
        for attempt in range(3):
            # a missing chunk file may have been replaced by a compaction between the catalog read and the
            # arrays: read again; missing at the third reading, it is damage
            damaged = self._load(final=attempt == 2)
            if damaged is not None:
                break
        #: (file name, what is wrong) of the chunk files left out of this view, and their photos' count
        self.damaged = damaged
        if damaged:
            names = ", ".join(f"{n} ({why})" for n, why in damaged[:3]) + (" ..." if len(damaged) > 3 else "")
            warnings.warn(DamagedIndexWarning(
                f"{self.path}: {self.n_damaged} photos are left out of searches: damaged descriptor files {names}",
                hint=Hint("repair", str(self.path))), stacklevel=2)

    def _load(self, final: bool) -> list[tuple[str, str]] | None:
        """Read the catalog and map the chunks; returns the damaged chunk files (None: read again)."""
        read_meta(self.path)  # raises the right error when there is no (valid) catalog
        try:
            con = connect_ro(self.path)
            try:
                con.execute("BEGIN")  # one read transaction: a consistent snapshot of the catalog
                meta = read_meta(self.path, con)
                chunks = con.execute("SELECT id, n FROM chunks ORDER BY id").fetchall()
                live = dict(con.execute("SELECT chunk, COUNT(*) FROM files WHERE chunk IS NOT NULL GROUP BY chunk"))
                partial = {c: np.array([r[0] for r in con.execute(
                    "SELECT slot FROM files WHERE chunk = ? ORDER BY slot", (c,))], np.int64)
                    for c, n in chunks if 0 < live.get(c, 0) < n}
                self.n_skipped = con.execute("SELECT COUNT(*) FROM files WHERE status = 'skipped'").fetchone()[0]
                con.execute("COMMIT")
            finally:
                con.close()
        except sqlite3.Error as e:
            raise IndexFormatError(f"{self.path}: unreadable catalog ({e})",
                                   hint=Hint("rebuild", str(self.path))) from None
        self.meta = meta
        self.settings = SketchSettings.from_json(meta["settings"])
        self.image_settings = meta.get("image_settings") or None
        names = SKETCH_ARRAYS  # the raw image arrays a chunk may hold are the writer's (engine.imageindex)
        spec = array_spec(self.settings)
        blocks: dict[str, list[np.ndarray]] = {a: [] for a in names}
        damaged: list[tuple[str, str]] = []
        good = []
        self.n_damaged = 0
        for c, n in chunks:
            if not live.get(c):
                continue
            arrays = {}
            for a in names:
                dtype, row = spec[a]
                arrays[a], problem = open_array(chunk_path(self.path, c, a), n, dtype, row)
                if problem == "missing" and not final:
                    return None
                if problem:
                    damaged.append((chunk_path(self.path, c, a).name, problem))
                    self.n_damaged += live[c]
                    break
            else:
                good.append(c)
                for a in names:
                    blocks[a].append(arrays[a][partial[c]] if c in partial else arrays[a])
        k = len(self.settings.scales)
        self.codes = concat_blocks(blocks["codes"], (0, self.settings.dim), np.int8)
        self.inv_norms = concat_blocks(blocks["inv_norms"], (0, k, 3), np.float32)
        ids = blocks["ids"]
        self.ids = np.concatenate(ids) if len(ids) > 1 else (np.asarray(ids[0]) if ids else np.zeros(0, np.int64))
        # (N, P) rotation descriptors, decoded from their int8 codes as rows are read
        self.polar = Dequantised(concat_blocks(blocks["polar"], (0, POLAR_DIM), np.int8),
                                 concat_blocks(blocks["polar_scale"], (0,), np.float32))
        self.chunk_files = sorted(chunk_path(self.path, c, a).name for c in good for a in names)
        image_gen = json.loads(meta["image_index"])["gen"] if meta.get("image_index") else None
        self.image_files = sorted(p.name for p in self.path.glob(f"image-{image_gen}.*")
                                  if not p.name.endswith(".tmp")) if image_gen else []
        return damaged

    @cached_property
    def layout(self) -> FeatureLayout:
        return FeatureLayout.from_settings(self.settings)

    def _catalog(self):
        """A read-only connection whose errors become one-line IndexFormatErrors (use with ``with``)."""
        return CatalogReader(self.path)

    def __len__(self) -> int:
        return len(self.ids)

    # -- per-row metadata, read on demand (an index of a million photos opens without reading them all)
    def lookup(self, rows: Sequence[int], *, cells: bool = False) -> list[tuple | None]:
        """(path, geometry (width, height, work_width, work_height, work_scale)) of rows -- with ``cells``, and
        the packed edge cells (``engine.boxes``; None for a photo described before they were kept) as a third --
        in one read; None for a file a writer has removed since this view was opened."""
        ids = [int(self.ids[r]) for r in rows]
        if not ids:
            return []
        with self._catalog() as con:
            extra = (", cells" if self._has_cells(con) else ", NULL") if cells else ""
            found = {r[0]: (r[1], np.array(r[2:7], np.float64), *r[7:]) for r in con.execute(
                f"SELECT id, path, width, height, work_width, work_height, work_scale{extra} FROM files "
                "WHERE status = 'indexed' AND id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))}
        return [found.get(i) for i in ids]

    def _has_cells(self, con) -> bool:
        """Whether the catalog keeps edge cells: asked once a view (a writer that adds the column meanwhile
        gives this view the placed frames, as before, and the next view the cells)."""
        if self._cells_column is None:
            self._cells_column = has_column(con, "cells")
        return self._cells_column

    @cached_property
    def _all(self) -> list[tuple[str, np.ndarray]]:
        got = self.lookup(range(len(self)))
        return [g if g is not None else ("", np.zeros(5)) for g in got]

    @property
    def paths(self) -> list[str]:
        """Path of every row (reads the whole catalog: for tools and tests, not for searching)."""
        return [p for p, _ in self._all]

    @property
    def geometry(self) -> np.ndarray:
        """(N, 5) width, height, work_width, work_height, work_scale of every row."""
        return np.array([g for _, g in self._all], np.float64).reshape(-1, 5)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every skipped file."""
        with self._catalog() as con:
            return con.execute("SELECT path, reason FROM files WHERE status = 'skipped' ORDER BY path").fetchall()

    # -- filters and browsing (engine.filters) ------------------------------------------------------
    @cached_property
    def _id_order(self) -> np.ndarray:
        return np.argsort(self.ids, kind="stable")

    def rows_of_ids(self, ids) -> np.ndarray:
        """Rows of catalog ids, in their order; ids this view does not hold (added since it was opened) dropped."""
        ids = np.asarray(ids, np.int64)
        order = self._id_order
        if not len(order) or not len(ids):
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids, sorter=order), len(order) - 1)
        rows = order[pos]
        return rows[self.ids[rows] == ids].astype(np.int64)

    def _where(self, filt, con) -> tuple[str, list, str]:
        """SQL condition on ``files`` and its parameters for a PhotoFilter (None: every indexed photo)."""
        from .catalog import date_sql

        date = date_sql(con)
        sql, args = ["status = 'indexed'"], []
        if filt is not None and filt.under is not None:
            root = filt.under.rstrip(os.sep) + os.sep
            sql.append("substr(path, 1, ?) = ?")
            args += [len(root), root]
        if filt is not None and filt.after is not None:
            sql.append(f"{date} >= ?")
            args.append(float(filt.after))
        if filt is not None and filt.before is not None:
            sql.append(f"{date} < ?")
            args.append(float(filt.before))
        if filt is not None and filt.min_side is not None:
            sql.append("MIN(width, height) >= ?")
            args.append(int(filt.min_side))
        return " AND ".join(sql), args, date

    def allowed_rows(self, filt) -> np.ndarray | None:
        """Sorted rows of the photos a PhotoFilter lets through (None: no filter, every row)."""
        if filt is None or not filt.active:
            return None
        cache = self.__dict__.setdefault("_allowed", {})
        rows = cache.get(filt)
        if rows is None:  # (searches may run in two threads: the result is kept in a local)
            with self._catalog() as con:
                where, args, _ = self._where(filt, con)
                ids = [r[0] for r in con.execute(f"SELECT id FROM files WHERE {where}", args)]
            rows = np.sort(self.rows_of_ids(ids))
            if len(cache) > 8:
                cache.clear()
            cache[filt] = rows
        return rows

    def browse_rows(self, filt, limit: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rows, dates, paths) of the photos a filter lets through, newest first (EXIF date, else the file's
        time; the path breaks ties), ``limit`` of them from ``offset``."""
        with self._catalog() as con:
            where, args, date = self._where(filt, con)
            got = con.execute(f"SELECT id, {date}, path FROM files WHERE {where} ORDER BY {date} DESC, path "
                              f"LIMIT ? OFFSET ?", [*args, int(limit), int(offset)]).fetchall()
        ids = np.array([g[0] for g in got], np.int64)
        dates = np.array([g[1] for g in got], np.float64)
        rows = self.rows_of_ids(ids)
        keep = np.isin(ids, self.ids[rows]) if len(rows) else np.zeros(len(ids), bool)
        return rows, dates[keep], [g[2] for g, k in zip(got, keep.tolist(), strict=True) if k]

    def folders(self) -> list[str]:
        """The folders indexed into this index (for an index made before they were recorded: the folder
        that holds all its photos -- the common folder of the first and last path in sort order)."""
        from .catalog import FOLDERS_META

        if self.meta.get(FOLDERS_META):
            with contextlib.suppress(ValueError, TypeError):
                return [str(f) for f in json.loads(self.meta[FOLDERS_META])]
        with self._catalog() as con:
            lo, hi = con.execute("SELECT MIN(path), MAX(path) FROM files WHERE status = 'indexed'").fetchone()
        if lo is None:
            return []
        try:
            return [os.path.commonpath([os.path.dirname(lo), os.path.dirname(hi)])]
        except ValueError:  # paths on different drives
            return []

    def dates(self, rows) -> np.ndarray:
        """Each row's date (EXIF DateTimeOriginal, else the file's time), seconds since the epoch; NaN for a
        photo removed since the view was opened."""
        from .catalog import date_sql

        ids = [int(self.ids[r]) for r in rows]
        if not ids:
            return np.zeros(0, np.float64)
        with self._catalog() as con:
            date = date_sql(con)
            found = dict(con.execute(f"SELECT id, {date} FROM files WHERE status = 'indexed' AND id IN "
                                     f"(SELECT value FROM json_each(?))", (json.dumps(ids),)))
        return np.array([found.get(i, np.nan) for i in ids], np.float64)

    def background_keys(self, size: int) -> tuple[list[str], np.ndarray]:
        """(keys, rows) of the ``size`` photos of this view first by background key, sorted.

        The background sample of the fused score (``engine.fusion``) is the collection's ``size`` photos with
        the smallest keys, the key being the content hash (a uniform random draw that depends on the photos
        only -- not on their order, the compaction, or how the collection is split into shards), then the
        path."""
        with self._catalog() as con:
            got = con.execute("SELECT id, COALESCE(hash, path), path FROM files WHERE status = 'indexed' "
                              "ORDER BY COALESCE(hash, path), path LIMIT ?", (int(size) + 64,)).fetchall()
        order = np.argsort(self.ids, kind="stable")
        keys, rows = [], []
        for fid, key, path in got:
            pos = int(np.searchsorted(self.ids, fid, sorter=order)) if len(order) else 0
            if pos < len(order) and self.ids[order[pos]] == fid:  # else: added since this view was opened
                keys.append(f"{key}\x00{path}")
                rows.append(int(order[pos]))
        return keys[:size], np.array(rows[:size], np.int64)

    def images(self, device=None):
        """The image searcher of this view (loaded on first use, once, whichever thread asks first: a sketch query
        describes its sketch on a thread while the alignment runs; QueryError when the index has none)."""
        key = str(device)
        cache = self.__dict__.setdefault("_images", {})
        if key not in cache:
            with _IMAGES_LOCK:
                if key not in cache:
                    from .imageindex import ImageSearcher

                    cache[key] = ImageSearcher(self, device)
        return cache[key]

    def info(self) -> dict:
        """Counts, settings and sizes on disk per part."""
        parts: dict[str, int] = {}
        chunk_files, image_files = set(self.chunk_files), set(self.image_files)
        for p in self.path.iterdir():  # this view's files only (not what someone else put in the folder)
            m = CHUNK_FILE.match(p.name)
            if m and p.name in chunk_files:
                key = m.group(2)
            elif p.name.startswith(CATALOG) and p.name in FIXED_FILES:
                key = "catalog"
            elif p.name in image_files:  # image-<gen>.<part>; only this view's generation
                part = p.name.split(".", 1)[1].removesuffix(".npy").removesuffix(".npz")
                key = "image " + part.removeprefix("image_")
            else:
                continue
            with contextlib.suppress(OSError):
                parts[key] = parts.get(key, 0) + p.stat().st_size
        n = len(self)
        per_image = self.settings.dim + len(self.settings.scales) * 3 * 4 + 8
        image_index = json.loads(self.meta["image_index"]) if self.meta.get("image_index") else None
        # image search: the generation's per-photo files, amortised (its codes, scales, norms, ids and IVF-PQ
        # index), and what it holds once per collection (bases, whitening, mean), apart
        fixed = ("image basis", "image whitening", "image sketch_mean")
        per_photo = sum(v for k, v in parts.items() if k.startswith("image ") and k not in fixed)
        image_bytes = round(per_photo / n) if n and image_index else 0
        return {"path": str(self.path), "images": n, "skipped": self.n_skipped, "image_index": image_index,
                "format_version": FORMAT_VERSION, "settings": json.loads(self.settings.to_json()),
                "image_settings": json.loads(self.image_settings) if self.image_settings else None,
                "descriptor_dim": self.settings.dim, "bytes_on_disk": parts,
                "bytes_per_image": per_image, "rotation_bytes_per_image": POLAR_DIM + 4,
                "image_bytes_per_image": image_bytes,
                "image_fixed_bytes": sum(v for k, v in parts.items() if k in fixed)}

