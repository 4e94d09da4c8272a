"""The index on disk: a SQLite catalog plus descriptor arrays in chunks, written by one process at a time
and read, memory-mapped, by any number of searchers -- also while a writer is adding to it.

Layout of an index folder::

    catalog.sqlite3      (WAL) meta: format version, settings
                         files: one row per file seen -- path, size, mtime, content hash, size after EXIF
                                orientation, status (indexed / skipped + reason) and, for indexed
                                files, the chunk and slot of its descriptor
                         chunks: the descriptor chunks, with their row counts
    chunk-<id>.<array>.npy   one file per array of a chunk: ``codes`` (n, D) int8, ``inv_norms``
                         (n, K, 3) float32, ``ids`` (n,) int64 (the files row whose descriptor a slot
                         holds), and, when the index has image descriptors, ``gem`` (n, G) float16
    lock                 held (flock) by the one writer

Crash safety: a writer writes a chunk's arrays completely (temporary name, fsync, rename) before the
catalog transaction that points files at them commits; a killed writer leaves at most unreferenced
chunk files, which the next writer deletes.  Compaction writes the merged chunk first, repoints the rows
in one transaction and only then deletes the old files, so every committed catalog state refers to
complete arrays.  A slot whose file was re-described or removed is dead: the catalog no longer points
at it, and compaction drops it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .afm import FeatureLayout
from .edges import EdgeMap, sketch_edges
from .errors import IndexFormatError, IndexLocked, IndexNotFound, QueryError
from .imageio import ImageError, load_image
from .settings import FORMAT_VERSION, SketchSettings

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite3"
LOCK = "lock"
SKETCH_ARRAYS = ("codes", "inv_norms", "ids", "polar")
#: per-photo arrays of an index with image descriptors: raw GeM of the photo, and of its edge map drawn
IMAGE_ARRAYS = ("gem", "sketch")
POLAR_DIM = 525  # engine.rotation.PolarLayout().dim

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    hash TEXT,
    width INTEGER,
    height INTEGER,
    status TEXT NOT NULL CHECK (status IN ('indexed', 'skipped')),
    reason TEXT,
    chunk INTEGER REFERENCES chunks(id),
    slot INTEGER,
    work_width INTEGER,
    work_height INTEGER,
    work_scale REAL,
    n_points INTEGER
);
CREATE INDEX IF NOT EXISTS files_chunk ON files (chunk, slot);
CREATE INDEX IF NOT EXISTS files_hash ON files (size, hash);
CREATE INDEX IF NOT EXISTS files_background ON files (COALESCE(hash, path), path) WHERE status = 'indexed';
"""

_CHUNK_FILE = re.compile(r"^chunk-(\d+)\.(\w+)\.npy$")


def rebuild_hint(db) -> str:
    return f"rebuild with: sketchsearch index FOLDER --db {db}"


@dataclass(frozen=True)
class PhotoRecord:
    """One described photo: its file identity, geometry and descriptors."""

    path: str
    size: int
    mtime: float
    hash: str
    width: int
    height: int
    work_width: int
    work_height: int
    work_scale: float
    n_points: int
    codes: np.ndarray  # (D,) int8, storage order
    inv_norms: np.ndarray  # (K, 3) float32
    gem: np.ndarray | None = None  # (G,) image descriptor, when the index has them
    sketch: np.ndarray | None = None  # (G,) global sketch descriptor of the edge map drawn (engine.fusion), idem
    polar: np.ndarray | None = None  # (P,) rotation descriptor about the photo's centre (engine.rotation)


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``box`` is ``[x0, y0, x1, y1]`` in the photo's original pixels (after EXIF orientation).
    """

    rank: int
    path: str
    score: float
    box: tuple[float, float, float, float]
    scale: float
    mirrored: bool
    row: int
    raw_score: float | None = None  # sketch queries: the alignment's cosine (``score`` is calibrated)

    def to_json(self) -> dict:
        out = {"rank": self.rank, "path": self.path, "score": round(self.score, 6),
               "box": [round(v, 1) for v in self.box], "scale": self.scale, "mirrored": self.mirrored}
        if self.raw_score is not None:
            out["raw_score"] = round(self.raw_score, 6)
        return out


def photo_box(geometry, width: float, height: float, dx: float, dy: float) -> tuple[float, float, float, float]:
    """Box ``[x0, y0, x1, y1]`` in a photo's original pixels of a ``width x height`` (working pixels) frame
    centred ``(dx, dy)`` from the working frame's centre, clipped to the photo.

    ``geometry`` is the photo's (width, height, work_width, work_height, work_scale).
    """
    full_w, full_h, ww, wh, ws = geometry
    cx, cy = ww / 2 + dx, wh / 2 + dy
    x0, x1 = np.clip([(cx - width / 2) / ws, (cx + width / 2) / ws], 0, full_w)
    y0, y1 = np.clip([(cy - height / 2) / ws, (cy + height / 2) / ws], 0, full_h)
    return float(x0), float(y0), float(x1), float(y1)


class RowBlocks:
    """Rows of several arrays (memory maps) seen as one array, without copying them together.

    Supports what the scorers need: ``shape``, ``len``, row slices, integer row arrays and
    ``[:, :k]`` column slices; a single block is used as it is.
    """

    def __init__(self, blocks: Sequence[np.ndarray]) -> None:
        self.blocks = list(blocks)
        self.starts = np.cumsum([0] + [len(b) for b in self.blocks])
        first = self.blocks[0]
        self.dtype = first.dtype
        self.shape = (int(self.starts[-1]), *first.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, *rest = key
            if rows == slice(None) and rest:
                return RowBlocks([b[(slice(None), *rest)] for b in self.blocks])
            return self[rows][(slice(None), *rest)]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            parts = []
            for b, s0 in zip(self.blocks, self.starts, strict=False):
                a, z = max(start - s0, 0), min(stop - s0, len(b))
                if a < z:
                    parts.append(b[a:z])
            if len(parts) == 1:
                return parts[0]
            return np.concatenate(parts) if parts else np.zeros((0, *self.shape[1:]), self.dtype)
        if isinstance(key, int | np.integer):
            key = int(key) + (len(self) if key < 0 else 0)
            i = int(np.searchsorted(self.starts, key, side="right")) - 1
            return self.blocks[i][key - self.starts[i]]
        rows = np.asarray(key, np.int64)
        block = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for i in np.unique(block):
            sel = block == i
            out[sel] = self.blocks[i][rows[sel] - self.starts[i]]
        return out


def _concat(blocks: list[np.ndarray], empty_shape: tuple, dtype) -> np.ndarray | RowBlocks:
    if not blocks:
        return np.zeros(empty_shape, dtype)
    return blocks[0] if len(blocks) == 1 else RowBlocks(blocks)


def chunk_path(db: Path, chunk: int, array: str) -> Path:
    return Path(db) / f"chunk-{chunk:08d}.{array}.npy"


def _connect_ro(db: Path) -> sqlite3.Connection:
    """A read-only connection (WAL readers need the -shm file; a read-only folder falls back to immutable)."""
    try:
        con = sqlite3.connect(f"file:{db / CATALOG}?mode=ro", uri=True, timeout=30)
        con.execute("SELECT 1 FROM meta LIMIT 1")
        return con
    except sqlite3.OperationalError as e:
        if "readonly" in str(e) or "unable to open" in str(e):
            return sqlite3.connect(f"file:{db / CATALOG}?immutable=1", uri=True)
        raise


def _read_meta(db: Path, con: sqlite3.Connection | None = None) -> dict[str, str]:
    """The ``meta`` table of an index, checked for its format version."""
    db = Path(db)
    if not (db / CATALOG).is_file():
        if db.exists():
            raise IndexNotFound(f"{db}: not a sketchsearch index (no {CATALOG}); "
                                f"build one with: sketchsearch index FOLDER --db {db}")
        raise IndexNotFound(f"{db}: no such index; build one with: sketchsearch index FOLDER --db {db}")
    try:
        own = con is None
        con = con or _connect_ro(db)
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if own:
            con.close()
    except sqlite3.Error as e:
        raise IndexFormatError(f"{db}: unreadable catalog ({e}); {rebuild_hint(db)}") from None
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise IndexFormatError(f"{db}: index format {version} but this sketchsearch reads format "
                               f"{FORMAT_VERSION}; {rebuild_hint(db)}")
    return meta


def read_settings(db: Path) -> SketchSettings:
    """Settings of an existing index (raises IndexNotFound / IndexFormatError)."""
    return SketchSettings.from_json(_read_meta(db)["settings"])


def content_hash(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """BLAKE2b (128-bit) of a file's bytes: the identity of a photo across renames and moves."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while data := f.read(block):
            h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Known:
    """What the catalog knows of one file."""

    id: int
    path: str
    size: int
    mtime: float
    hash: str | None
    status: str
    reason: str | None


class _Lock:
    """An exclusive advisory lock on ``db/lock`` (released by the OS when the holder dies)."""

    def __init__(self, db: Path) -> None:
        self.path = db / LOCK
        self.f = open(self.path, "a+")  # noqa: SIM115 -- held for the writer's lifetime
        try:
            self._acquire()
        except OSError:
            self.f.seek(0)
            holder = self.f.read().strip() or "unknown"
            self.f.close()
            raise IndexLocked(f"{db}: another sketchsearch process (pid {holder}) is writing this index; "
                              f"wait for it to finish or stop it") from None
        self.f.seek(0)
        self.f.truncate()
        self.f.write(str(os.getpid()))
        self.f.flush()

    def _acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt

            self.f.seek(0)
            msvcrt.locking(self.f.fileno(), msvcrt.LK_NBLCK, 1)
            return
        fcntl.flock(self.f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.f.seek(0)
            self.f.truncate()
        self.f.close()  # closing drops the lock


def _save_array(path: Path, a: np.ndarray) -> None:
    """np.save, durable and atomic: temporary name, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, a)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class IndexWriter:
    """The one process that adds to an index; use as a context manager (holds the index's lock).

    Parameters
    ----------
    db : index folder (created if needed)
    settings : sketch descriptor settings; an existing index must have been built with the same
    image_settings : JSON of the image-descriptor settings (None: the index has no image descriptors)
    image_dim : length of the image descriptors
    rebuild : what to do with an index of another format version: True rebuilds it from scratch
        (its files are deleted), False raises IndexFormatError
    """

    def __init__(self, db: str | os.PathLike, settings: SketchSettings, *, image_settings: str | None = None,
                 image_dim: int = 0, rebuild: bool = True) -> None:
        self.db = Path(db)
        if self.db.exists() and not self.db.is_dir():
            raise IndexNotFound(f"{self.db}: exists and is not a folder; an index is a folder")
        self.db.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.image_settings = image_settings
        self.image_dim = image_dim
        self.arrays = SKETCH_ARRAYS + (IMAGE_ARRAYS if image_settings else ())
        self._lock = _Lock(self.db)
        try:
            self._open(rebuild)
        except BaseException:
            self._lock.release()
            raise

    @classmethod
    def existing(cls, db: str | os.PathLike) -> IndexWriter:
        """A writer of an existing index, with the settings it was built with."""
        meta = _read_meta(Path(db))
        return cls(db, SketchSettings.from_json(meta["settings"]), image_settings=meta.get("image_settings") or None,
                   rebuild=False)

    # -- opening ----------------------------------------------------------------------------------
    def _open(self, rebuild: bool) -> None:
        if (self.db / CATALOG).exists():
            try:
                meta = _read_meta(self.db)
            except IndexFormatError as e:
                if not rebuild:
                    raise
                log.warning("%s; rebuilding it from scratch", e)
                self._delete_all()
            else:
                self._check(meta)
        self.con = sqlite3.connect(str(self.db / CATALOG), timeout=30)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        with self.con:
            self.con.executescript(_SCHEMA)
            self.con.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                ("format_version", str(FORMAT_VERSION)), ("settings", self.settings.to_json()),
                ("image_settings", self.image_settings or "")])
        self._delete_orphans()

    def _check(self, meta: dict[str, str]) -> None:
        theirs = SketchSettings.from_json(meta["settings"])
        if theirs.detector != self.settings.detector:
            raise IndexFormatError(f"{self.db}: index was built with {theirs.detector} edges, not "
                                   f"{self.settings.detector}; one index holds one kind of edges: index with "
                                   f"--edges {theirs.detector} (or leave --edges out), use another --db, or delete "
                                   f"{self.db} to rebuild it with {self.settings.detector} edges")
        if theirs != self.settings:
            raise IndexFormatError(f"{self.db}: index was built with other sketch settings; use another --db, "
                                   f"or delete it to rebuild it with these")
        if (meta.get("image_settings") or None) != self.image_settings:
            theirs = json.loads(meta["image_settings"])["backbone"] if meta.get("image_settings") else "none"
            raise IndexFormatError(f"{self.db}: index was built with another image backbone or settings "
                                   f"(--backbone {theirs}); index with --backbone {theirs} (or leave --backbone "
                                   f"out), use another --db, or delete {self.db} to rebuild it with these")

    def _delete_all(self) -> None:
        """Remove the files of an index this version cannot read (only files an index has)."""
        for p in self.db.iterdir():
            name = p.name
            if (name.startswith(CATALOG) or _CHUNK_FILE.match(name) or name.endswith(".npy.tmp")
                    or name.startswith(("image-", ".image-")) or re.match(r"^(codes|inv_norms)-\w+\.npy$", name)):
                p.unlink(missing_ok=True)

    def _delete_orphans(self) -> None:
        """Chunk files no committed catalog state refers to (left by a killed writer or compaction)."""
        live = {r[0] for r in self.con.execute("SELECT id FROM chunks")}
        image = self.con.execute("SELECT value FROM meta WHERE key = 'image_index'").fetchone()
        image_gen = json.loads(image[0])["gen"] if image else None
        for p in self.db.iterdir():
            m = _CHUNK_FILE.match(p.name)
            old_image = p.name.startswith("image-") and p.name.split(".", 1)[0] != f"image-{image_gen}"
            if ((m and int(m.group(1)) not in live) or p.name.endswith(".npy.tmp") or old_image
                    or (p.name.startswith(".image-") and p.name.endswith(".tmp"))):
                with contextlib.suppress(OSError):
                    p.unlink()

    def close(self) -> None:
        if getattr(self, "con", None) is not None:
            with contextlib.suppress(sqlite3.Error):
                self.con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.con.close()
            self.con = None
        self._lock.release()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading what is there --------------------------------------------------------------------
    def known(self) -> dict[str, Known]:
        """Every catalogued file (indexed or skipped), by path."""
        rows = self.con.execute("SELECT id, path, size, mtime, hash, status, reason FROM files")
        return {r[1]: Known(*r) for r in rows}

    def descriptor(self, file_id: int) -> dict[str, np.ndarray]:
        """The stored arrays of one indexed file (for a copy of it under another name)."""
        chunk, slot = self.con.execute("SELECT chunk, slot FROM files WHERE id = ?", (file_id,)).fetchone()
        return {a: np.array(np.load(chunk_path(self.db, chunk, a), mmap_mode="r")[slot]) for a in self.arrays}

    # -- writing ----------------------------------------------------------------------------------
    def _next_ids(self, n: int) -> range:
        top = self.con.execute("SELECT COALESCE(MAX(id), 0) FROM files").fetchone()[0]
        return range(top + 1, top + 1 + n)

    def _new_chunk(self, arrays: dict[str, np.ndarray]) -> int:
        """Write a chunk's arrays (before any catalog row refers to them) and return its id."""
        cid = self.con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()[0]
        for name in self.arrays:
            _save_array(chunk_path(self.db, cid, name), arrays[name])
        return cid

    def add(self, records: Sequence[PhotoRecord], skipped: Iterable[tuple[str, int, float, str]] = (),
            touched: Iterable[tuple[str, int, float]] = ()) -> None:
        """Commit described photos (a new chunk), skipped files and files whose content is unchanged.

        ``skipped`` holds (path, size, mtime, reason); ``touched`` (path, size, mtime) of catalogued
        files whose bytes are the same as before (their descriptor is kept).  A path already in the
        catalog keeps its id; its old slot becomes dead.
        """
        records = list(records)
        cur = self.con
        ids = dict(cur.execute("SELECT path, id FROM files WHERE path IN (SELECT value FROM json_each(?))",
                               (json.dumps([r.path for r in records]),)).fetchall()) if records else {}
        fresh = iter(self._next_ids(sum(r.path not in ids for r in records)))
        for r in records:
            if r.path not in ids:
                ids[r.path] = next(fresh)
        cid = None
        if records:
            arrays = {"codes": np.stack([r.codes for r in records]).astype(np.int8),
                      "inv_norms": np.stack([r.inv_norms for r in records]).astype(np.float32),
                      "ids": np.array([ids[r.path] for r in records], np.int64)}
            if "gem" in self.arrays:
                arrays["gem"] = np.stack([r.gem for r in records]).astype(np.float16)
                arrays["sketch"] = np.stack([r.sketch for r in records]).astype(np.float16)
            arrays["polar"] = np.stack([r.polar for r in records]).astype(np.float16)
            cid = self._new_chunk(arrays)
        with cur:
            if cid is not None:
                cur.execute("INSERT INTO chunks VALUES (?, ?, ?)", (cid, len(records), time.time()))
                cur.executemany(
                    "INSERT INTO files (id, path, size, mtime, hash, width, height, status, reason, chunk, slot, "
                    "work_width, work_height, work_scale, n_points) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'indexed', NULL, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, "
                    "hash = excluded.hash, width = excluded.width, height = excluded.height, status = 'indexed', "
                    "reason = NULL, chunk = excluded.chunk, slot = excluded.slot, work_width = excluded.work_width, "
                    "work_height = excluded.work_height, work_scale = excluded.work_scale, "
                    "n_points = excluded.n_points",
                    [(ids[r.path], r.path, r.size, r.mtime, r.hash, r.width, r.height, cid, slot, r.work_width,
                      r.work_height, r.work_scale, r.n_points) for slot, r in enumerate(records)])
            cur.executemany(
                "INSERT INTO files (path, size, mtime, status, reason) VALUES (?, ?, ?, 'skipped', ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, hash = NULL, "
                "status = 'skipped', reason = excluded.reason, chunk = NULL, slot = NULL",
                [(p, s, m, why) for p, s, m, why in skipped])
            cur.executemany("UPDATE files SET size = ?, mtime = ? WHERE path = ?",
                            [(s, m, p) for p, s, m in touched])
            if cid is not None and "gem" in self.arrays:
                self._image_dirty()
        if self.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] > 12:
            self.compact()

    def add_arrays(self, paths: Sequence[str], geometry: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Bulk insert of ready-made descriptors (synthetic indexes for benchmarks); geometry (N, 5)."""
        start = self._next_ids(0).start
        ids = np.arange(start, start + len(paths), dtype=np.int64)
        if "polar" not in arrays:  # synthetic sketch descriptors come without rotation descriptors
            arrays = {**arrays, "polar": np.zeros((len(paths), POLAR_DIM), np.float16)}
        if "gem" in arrays and "sketch" not in arrays:  # ... and image vectors without sketch descriptors
            arrays = {**arrays, "sketch": np.zeros_like(arrays["gem"])}
        cid = self._new_chunk({**arrays, "ids": ids})
        with self.con:
            self.con.execute("INSERT INTO chunks VALUES (?, ?, ?)", (cid, len(paths), time.time()))
            self.con.executemany(
                "INSERT INTO files (id, path, size, mtime, width, height, status, chunk, slot, work_width, "
                "work_height, work_scale, n_points) VALUES (?, ?, 0, 0, ?, ?, 'indexed', ?, ?, ?, ?, ?, 0)",
                ((int(ids[i]), p, int(g[0]), int(g[1]), cid, i, int(g[2]), int(g[3]), float(g[4]))
                 for i, (p, g) in enumerate(zip(paths, geometry, strict=True))))

    def rename(self, moves: Iterable[tuple[int, str, int, float]]) -> None:
        """Give catalogued files new paths (id, new path, size, mtime), keeping their descriptors."""
        with self.con:
            self.con.executemany("UPDATE files SET path = ?, size = ?, mtime = ? WHERE id = ?",
                                 [(p, s, m, i) for i, p, s, m in moves])

    def remove(self, paths: Iterable[str]) -> int:
        """Drop files from the catalog (their slots become dead); returns how many were dropped."""
        with self.con:
            cur = self.con.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])
            if cur.rowcount > 0 and "gem" in self.arrays:
                self._image_dirty()
        return cur.rowcount

    def _image_dirty(self) -> None:
        """Mark the image index out of date (inside the transaction that changes the photos)."""
        from .imageindex import DIRTY

        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (DIRTY,))

    def meta(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def compact(self, *, full: bool = False) -> int:
        """Merge small chunks and chunks with many dead slots (size-tiered, so each descriptor is rewritten
        O(log N) times over the index's life); ``full`` merges everything into one chunk.
        Returns the number of chunks merged."""
        con = self.con
        sizes = dict(con.execute("SELECT id, n FROM chunks").fetchall())
        live = dict(con.execute("SELECT chunk, COUNT(*) FROM files WHERE chunk IS NOT NULL GROUP BY chunk"))
        empty = [c for c in sizes if live.get(c, 0) == 0]
        order = sorted((c for c in sizes if live.get(c, 0)), key=lambda c: -live[c])
        keep = 0
        if not full:
            for i, c in enumerate(order):
                clean = live[c] >= 0.8 * sizes[c]
                if clean and live[c] >= 2 * sum(live[d] for d in order[i + 1:]):
                    keep = i + 1
                else:
                    break
        merge = order[keep:]
        if len(merge) == 1 and live[merge[0]] == sizes[merge[0]]:
            merge = []
        if merge:
            rows = con.execute(
                f"SELECT id, chunk, slot FROM files WHERE chunk IN ({','.join('?' * len(merge))}) ORDER BY id",
                merge).fetchall()
            ids = np.array([r[0] for r in rows], np.int64)
            chunk_of = np.array([r[1] for r in rows])
            slot_of = np.array([r[2] for r in rows], np.int64)
            arrays = {}
            for name in self.arrays:
                if name == "ids":
                    arrays[name] = ids
                    continue
                parts = {c: np.load(chunk_path(self.db, c, name), mmap_mode="r") for c in merge}
                first = parts[merge[0]]
                out = np.empty((len(rows), *first.shape[1:]), first.dtype)
                for c, a in parts.items():
                    sel = chunk_of == c
                    out[sel] = a[slot_of[sel]]
                arrays[name] = out
            cid = self._new_chunk(arrays)
            with con:
                con.execute("INSERT INTO chunks VALUES (?, ?, ?)", (cid, len(rows), time.time()))
                con.executemany("UPDATE files SET chunk = ?, slot = ? WHERE id = ?",
                                [(cid, s, int(i)) for s, i in enumerate(ids)])
                con.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in merge])
        if empty:
            with con:
                con.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in empty])
        for c in [*merge, *empty]:  # after the commit: no committed state refers to them any more
            for name in self.arrays:
                with contextlib.suppress(OSError):  # a reader may hold it open (Windows); deleted next time
                    chunk_path(self.db, c, name).unlink(missing_ok=True)
        return len(merge)


class Collection:
    """What every collection answers: an index (``SketchIndex``, one shard) or a sharded one
    (``engine.shards.ShardedIndex`` here, ``engine.cluster.ClusterIndex`` on a cluster).  Searches run as
    steps sent to ``self.shards`` (an ``engine.shardsearch.Shards``) and merged here."""

    path: Path
    settings: SketchSettings
    shards: object

    def __len__(self) -> int:
        return self.shards.n

    @cached_property
    def layout(self) -> FeatureLayout:
        return FeatureLayout.from_settings(self.settings)

    def sketch_query(self, sketch) -> EdgeMap:
        """Sketch image (path or array) -> its edge map at scale 1."""
        if isinstance(sketch, EdgeMap):
            return sketch
        if isinstance(sketch, str | os.PathLike):
            try:
                sketch = load_image(sketch).pixels
            except ImageError as e:
                raise QueryError(str(e)) from None
        try:
            return sketch_edges(sketch, max_side=self.settings.max_side)
        except ValueError as e:
            raise QueryError(str(e)) from None

    def search(self, sketch, *, top_k: int = 20, options=None, expand: int | None = None,
               fusion: bool = True, params=None) -> list[Hit]:
        """Photos that contain the sketched shape, best first, each with its box.

        The ranking fuses the alignment (AFM, which gives the box) with the global sketch descriptor and
        expands the query with the image descriptors of the best hits (``engine.fusion``); ``score`` is
        calibrated to [0, 1], ``raw_score`` is the alignment's cosine at the box.

        Parameters
        ----------
        sketch : path, image array or EdgeMap
        top_k : int
        options : SearchOptions (default: ``mirror`` as fitted, see ``engine.fusion``)
        expand : int or None
            Seeds of the query expansion (None: the fitted default; 0: none).
        fusion : bool
            False: the alignment alone (still calibrated).  Indexes without image descriptors always
            rank by the alignment alone.
        params : engine.fusion.FusionParams, optional

        Returns
        -------
        list of Hit (at most ``top_k``, fewer when the index is smaller)
        """
        from .fusion import load_params
        from .search import SearchOptions  # torch: only where searches run
        from .shardsearch import sketch_search

        params = params or load_params()
        options = options or SearchOptions(mirror=params.mirror)
        return sketch_search(self.shards, self.sketch_query(sketch), options, top_k=top_k, params=params,
                             expand=expand, fusion=fusion)

    def _hits(self, found, edges: EdgeMap | None = None) -> list[Hit]:
        """Hits of (row, score) pairs of an image query (box: the whole photo)."""
        from .shardsearch import hits_of_rows

        return hits_of_rows(self.shards, np.array([r for r, _ in found], np.int64),
                            np.array([s for _, s in found], np.float64))

    def search_image(self, image, *, top_k: int = 20, qe: int | None = None, device=None) -> list[Hit]:
        """Photos similar to an image (path or RGB array in [0, 1]), best first; ``box`` is the whole photo.

        ``qe``: alpha-weighted query expansion over that many neighbours (default DEFAULT_QE).  The image is
        read here, described by one shard and searched on all.
        """
        from .cnn import GemSettings
        from .imageindex import ALPHA, DEFAULT_QE
        from .shardsearch import image_search

        summary = next((s for s in self.shards.summaries if s["n"]), self.shards.summaries[0])
        if not summary["image_settings"]:
            raise QueryError(f"{self.path}: this collection has no image descriptors; rebuild it with "
                             f"--backbone efficientnet-lite0 to search by image")
        if not self.shards.images_ready and any(not s["image_index"] for s in self.shards.summaries):
            raise QueryError(f"{self.path}: the image descriptors are not ready yet (an index run has not "
                             f"finished); run: sketchsearch index FOLDER --db {self.path}")
        if isinstance(image, str | os.PathLike):
            try:
                image = load_image(image, max_side=GemSettings.from_json(summary["image_settings"]).max_side).pixels
            except ImageError as e:
                raise QueryError(str(e)) from None
        return image_search(self.shards, np.asarray(image, np.float32), top_k=top_k,
                            qe=DEFAULT_QE if qe is None else qe, alpha=ALPHA, device=device)


class SketchIndex(Collection):
    """A read-only, memory-mapped view of an index folder that answers sketch queries.

    The view is a consistent snapshot of the catalog at opening; a writer may add to the index
    meanwhile (open it again to see the additions).

    Parameters
    ----------
    db : path of the index folder
    """

    def __init__(self, db: str | os.PathLike) -> None:
        self.path = Path(db)
        for attempt in range(3):
            try:
                self._load()
                return
            except FileNotFoundError:  # compaction replaced a chunk between the catalog read and the arrays
                if attempt == 2:
                    raise IndexFormatError(f"{self.path}: descriptor arrays are missing; "
                                           f"{rebuild_hint(self.path)}") from None

    def _load(self) -> None:
        _read_meta(self.path)  # raises the right error when there is no (valid) catalog
        con = _connect_ro(self.path)
        try:
            con.execute("BEGIN")  # one read transaction: a consistent snapshot of the catalog
            meta = _read_meta(self.path, con)
            chunks = con.execute("SELECT id, n FROM chunks ORDER BY id").fetchall()
            live = dict(con.execute("SELECT chunk, COUNT(*) FROM files WHERE chunk IS NOT NULL GROUP BY chunk"))
            partial = {c: np.array([r[0] for r in con.execute(
                "SELECT slot FROM files WHERE chunk = ? ORDER BY slot", (c,))], np.int64)
                for c, n in chunks if 0 < live.get(c, 0) < n}
            self.n_skipped = con.execute("SELECT COUNT(*) FROM files WHERE status = 'skipped'").fetchone()[0]
            con.execute("COMMIT")
        except sqlite3.Error as e:
            raise IndexFormatError(f"{self.path}: unreadable catalog ({e}); {rebuild_hint(self.path)}") from None
        finally:
            con.close()
        self.meta = meta
        self.settings = SketchSettings.from_json(meta["settings"])
        self.image_settings = meta.get("image_settings") or None
        names = SKETCH_ARRAYS + (IMAGE_ARRAYS if self.image_settings else ())
        blocks: dict[str, list[np.ndarray]] = {a: [] for a in names}
        for c, n in chunks:
            if not live.get(c):
                continue
            for a in names:
                try:
                    arr = np.load(chunk_path(self.path, c, a), mmap_mode="r")
                except ValueError as e:
                    raise IndexFormatError(f"{self.path}: damaged descriptor array {chunk_path(self.path, c, a)} "
                                           f"({e}); {rebuild_hint(self.path)}") from None
                if len(arr) != n:
                    raise IndexFormatError(f"{self.path}: {chunk_path(self.path, c, a).name} has {len(arr)} rows, "
                                           f"the catalog says {n}; {rebuild_hint(self.path)}")
                blocks[a].append(arr[partial[c]] if c in partial else arr)
        k = len(self.settings.scales)
        self.codes = _concat(blocks["codes"], (0, self.settings.dim), np.int8)
        self.inv_norms = _concat(blocks["inv_norms"], (0, k, 3), np.float32)
        ids = blocks["ids"]
        self.ids = np.concatenate(ids) if len(ids) > 1 else (np.asarray(ids[0]) if ids else np.zeros(0, np.int64))
        self.gem = _concat(blocks["gem"], (0, 0), np.float16) if "gem" in blocks else None
        self.polar = _concat(blocks["polar"], (0, POLAR_DIM), np.float16)  # (N, P) rotation descriptors
        self.chunk_files = sorted(chunk_path(self.path, c, a).name for c, _ in chunks if live.get(c) for a in names)
        image_gen = json.loads(meta["image_index"])["gen"] if meta.get("image_index") else None
        self.image_files = sorted(p.name for p in self.path.glob(f"image-{image_gen}.*")) if image_gen else []

    def __len__(self) -> int:
        return len(self.ids)

    # -- per-row metadata, read on demand (an index of a million photos opens without reading them all)
    def lookup(self, rows: Sequence[int]) -> list[tuple[str, np.ndarray] | None]:
        """(path, geometry (width, height, work_width, work_height, work_scale)) of rows; None for a file
        a writer has removed since this view was opened."""
        ids = [int(self.ids[r]) for r in rows]
        if not ids:
            return []
        con = _connect_ro(self.path)
        try:
            found = {r[0]: (r[1], np.array(r[2:], np.float64)) for r in con.execute(
                "SELECT id, path, width, height, work_width, work_height, work_scale FROM files "
                "WHERE status = 'indexed' AND id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))}
        finally:
            con.close()
        return [found.get(i) for i in ids]

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
        con = _connect_ro(self.path)
        try:
            return con.execute("SELECT path, reason FROM files WHERE status = 'skipped' ORDER BY path").fetchall()
        finally:
            con.close()

    def background_keys(self, size: int) -> tuple[list[str], np.ndarray]:
        """(keys, rows) of the ``size`` photos of this view first by background key, sorted.

        The background sample of the fused score (``engine.fusion``) is the collection's ``size`` photos with
        the smallest keys, the key being the content hash (a uniform random draw that depends on the photos
        only -- not on their order, the compaction, or how the collection is split into shards), then the
        path."""
        con = _connect_ro(self.path)
        try:
            got = con.execute("SELECT id, COALESCE(hash, path), path FROM files WHERE status = 'indexed' "
                              "ORDER BY COALESCE(hash, path), path LIMIT ?", (int(size) + 64,)).fetchall()
        finally:
            con.close()
        order = np.argsort(self.ids, kind="stable")
        keys, rows = [], []
        for fid, key, path in got:
            pos = int(np.searchsorted(self.ids, fid, sorter=order)) if len(order) else 0
            if pos < len(order) and self.ids[order[pos]] == fid:  # else: added since this view was opened
                keys.append(f"{key}\x00{path}")
                rows.append(int(order[pos]))
        return keys[:size], np.array(rows[:size], np.int64)

    @cached_property
    def shards(self):
        """This index as the one shard of a collection (``engine.shardsearch``)."""
        from .shardsearch import LocalShards, ShardSearcher

        return LocalShards([ShardSearcher(self)])

    def images(self, device=None):
        """The image searcher of this view (loaded on first use; QueryError when the index has none)."""
        key = str(device)
        cache = self.__dict__.setdefault("_images", {})
        if key not in cache:
            from .imageindex import ImageSearcher

            cache[key] = ImageSearcher(self, device)
        return cache[key]

    def info(self) -> dict:
        """Counts, settings and sizes on disk per part."""
        parts: dict[str, int] = {}
        for p in self.path.iterdir():
            m = _CHUNK_FILE.match(p.name)
            if m:
                key = m.group(2)
            elif p.name.startswith(CATALOG):
                key = "catalog"
            elif p.name.startswith("image-"):  # image-<gen>.<part>; only this view's generation
                if p.name not in self.image_files:
                    continue
                key = "image " + p.name.split(".", 1)[1].removesuffix(".npy").removesuffix(".npz")
            else:
                key = p.name
            with contextlib.suppress(OSError):
                parts[key] = parts.get(key, 0) + p.stat().st_size
        n = len(self)
        per_image = self.settings.dim + len(self.settings.scales) * 3 * 4 + 8
        image_index = json.loads(self.meta["image_index"]) if self.meta.get("image_index") else None
        image_bytes = 0
        if self.gem is not None:  # raw GeM and sketch GeM (float16) in the chunks + this generation's files
            image_files = sum(v for k, v in parts.items() if k.startswith("image "))
            image_bytes = 2 * self.gem.shape[1] * 2 + 8 + (round(image_files / n) if n else 0)
        return {"path": str(self.path), "images": n, "skipped": self.n_skipped, "image_index": image_index,
                "format_version": FORMAT_VERSION, "settings": json.loads(self.settings.to_json()),
                "image_settings": json.loads(self.image_settings) if self.image_settings else None,
                "descriptor_dim": self.settings.dim, "bytes_on_disk": parts,
                "bytes_per_image": per_image, "rotation_bytes_per_image": POLAR_DIM * 2,
                "image_bytes_per_image": image_bytes}

