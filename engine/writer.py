"""The writer of an index: adds, re-describes, removes and compacts the photos of one index folder (one
process at a time, under the index's lock; the format and its crash safety: ``engine.catalog``)."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .catalog import (
    CANNOT_READ,
    CATALOG,
    DATES_PENDING,
    FIXED_FILES,
    IMAGE_ARRAYS,
    IMAGE_INDEX_DIRTY,
    NEW_CATALOG,
    SCHEMA,
    SKETCH_ARRAYS,
    Lock,
    array_spec,
    catalog_errors,
    chunk_path,
    connect_ro,
    delete_owned,
    folder_claim,
    has_descriptors,
    index_files,
    is_array_name,
    lost_catalog,
    migrate,
    open_array,
    read_meta,
    record_owned,
    save_array,
    save_npz,
    write_marker,
)
from .compact import quantise
from .describe import PhotoRecord
from .errors import Hint, IndexFormatError, IndexNotFound, IndexWriteError
from .rotation import POLAR_DIM
from .settings import FORMAT_VERSION, SketchSettings

log = logging.getLogger(__name__)

#: reasons of files a scan does not read (``engine.indexer``): their path no longer holds a photo
NOT_REGULAR = "not a regular file"
TOO_LARGE = "larger than"
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
    cells: bool = True  # an indexed photo's edge cells are kept (False: described before they were, engine.boxes)


def _no_tables(db: Path) -> bool:
    """Whether an index's catalog is an SQLite file without a single table (False where it cannot be read)."""
    try:
        con = connect_ro(db)
        try:
            return con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        finally:
            con.close()
    except sqlite3.Error:
        return False


def _writes(method):
    """An IndexWriter method whose SQLite errors become one-line errors naming the index."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with catalog_errors(self.db):
            return method(self, *args, **kwargs)
    return run


class IndexWriter:
    """The one process that adds to an index; use as a context manager (holds the index's lock).

    Parameters
    ----------
    db : index folder: new, empty, made by sketchsearch (its marker), or an index made before the marker
        (adopted); any other folder is refused (IndexNotFound)
    settings : sketch descriptor settings; an existing index must have been built with the same
    image_settings : JSON of the image-descriptor settings (None: the index has no image descriptors)
    image_dim : length of the image descriptors
    rebuild : what to do with an index that cannot be used as it is (another format version, a damaged
        catalog, other settings): True rebuilds it from scratch (deleting only the files it recorded as
        its own, or, for an index made before those records, a folder of nothing but index files), False
        (default) raises IndexFormatError
    """

    def __init__(self, db: str | os.PathLike, settings: SketchSettings, *, image_settings: str | None = None,
                 image_dim: int = 0, rebuild: bool = False) -> None:
        self.db = Path(db)
        self.con = None
        if self.db.exists() and not self.db.is_dir():
            raise IndexNotFound(f"{self.db}: exists and is not a folder; an index is a folder")
        claim = folder_claim(self.db)
        if claim == "new":
            self.db.mkdir(parents=True, exist_ok=True)
            write_marker(self.db)
        self.settings = settings
        self.image_settings = image_settings
        self.image_dim = image_dim
        self.arrays = SKETCH_ARRAYS + (IMAGE_ARRAYS if image_settings else ())
        self._lock = Lock(self.db)
        try:
            self._open(rebuild, adopt=claim == "adopt")
        except BaseException:
            self.close()
            raise

    @classmethod
    def existing(cls, db: str | os.PathLike) -> IndexWriter:
        """A writer of an existing index, with the settings it was built with."""
        meta = read_meta(Path(db))
        return cls(db, SketchSettings.from_json(meta["settings"]), image_settings=meta.get("image_settings") or None,
                   rebuild=False)

    # -- opening ----------------------------------------------------------------------------------
    def _open(self, rebuild: bool, adopt: bool) -> None:
        try:
            self._open_catalog(adopt)
        except IndexFormatError as e:
            if not rebuild:
                raise
            log.warning("%s; rebuilding it from scratch", e)
            self._close_catalog()
            self._delete_all()
            write_marker(self.db)
            self._open_catalog(adopt=False)

    def _open_catalog(self, adopt: bool) -> None:
        for name in (CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm"):
            if (self.db / name).is_symlink():
                raise IndexFormatError(f"{self.db / name}: a symbolic link, which sketchsearch does not make",
                                       hint=Hint("rebuild", str(self.db)))
        # a catalog without tables: left by a run of an earlier version killed before it made them (nothing in
        # it); but with descriptor files beside it, it was emptied: lost, and a rebuild removes what it cannot place
        if (self.db / CATALOG).exists() and _no_tables(self.db):
            if has_descriptors(self.db):
                raise lost_catalog(self.db)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.db / f"{CATALOG}{suffix}")
        if (self.db / CATALOG).exists():
            self._check(read_meta(self.db))
        elif adopt:  # only the catalog made it an index; it is gone
            adopt = False
        with catalog_errors(self.db):
            self._new_catalog(create=not (self.db / CATALOG).exists())
            self.con = sqlite3.connect(str(self.db / CATALOG), timeout=30)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=NORMAL")
            with self.con:
                self.con.executescript(SCHEMA)
                migrate(self.con)
                self.con.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                    ("format_version", str(FORMAT_VERSION)), ("settings", self.settings.to_json()),
                    ("image_settings", self.image_settings or "")])
            if adopt:  # an index made before the marker: its files (all index files) are recorded as its own
                record_owned(self.con, [n for n in index_files(self.db) or () if n not in FIXED_FILES])
                write_marker(self.db)
            self._drop_damaged_chunks()
            self._drop_unreadable_folded()
            self._delete_orphans()

    def _new_catalog(self, *, create: bool) -> None:
        """Remove what a run killed while making a catalog left (``NEW_CATALOG``); with ``create``, make the
        catalog: written complete (WAL mode, schema, meta) under ``NEW_CATALOG``, then renamed into place, so
        that a catalog, once there, always has its tables."""
        new = self.db / NEW_CATALOG
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{new}{suffix}")
        if not create:
            return

        def write(tmp: str) -> None:
            con = sqlite3.connect(tmp, timeout=30)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                with con:
                    con.executescript(SCHEMA)
                    migrate(con)
                    con.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("format_version", str(FORMAT_VERSION)), ("settings", self.settings.to_json()),
                        ("image_settings", self.image_settings or "")])
            finally:
                con.close()  # the last connection: its WAL is checkpointed into the file and removed

        atomic_write(self.db / CATALOG, write, tmp=new)
        if hasattr(os, "O_DIRECTORY"):
            fd = os.open(self.db, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _close_catalog(self) -> None:
        if self.con is not None:
            with contextlib.suppress(sqlite3.Error):
                self.con.close()
            self.con = None

    def _check(self, meta: dict[str, str]) -> None:
        theirs = SketchSettings.from_json(meta["settings"])
        if theirs.detector != self.settings.detector:
            raise IndexFormatError(f"{self.db}: index was built with {theirs.detector} edges, not "
                                   f"{self.settings.detector}; one index holds one kind of edges",
                                   hint=Hint("other-settings", str(self.db), "edges", theirs.detector))
        if theirs != self.settings:
            raise IndexFormatError(f"{self.db}: index was built with other sketch settings",
                                   hint=Hint("other-settings", str(self.db)))
        if (meta.get("image_settings") or None) != self.image_settings:
            theirs = json.loads(meta["image_settings"])["backbone"] if meta.get("image_settings") else "none"
            raise IndexFormatError(f"{self.db}: index was built with another image backbone or settings "
                                   f"(backbone {theirs})",
                                   hint=Hint("other-settings", str(self.db), "backbone", theirs))

    def _delete_all(self) -> None:
        """Remove an index that is rebuilt: the files its catalog recorded as its own, or, when the catalog
        cannot tell (made before those records, or unreadable), the index files of a folder that holds
        nothing else; then the catalog.  Files it cannot tell are its own stay."""
        names = None
        try:
            con = connect_ro(self.db)
            try:
                names = [r[0] for r in con.execute("SELECT name FROM owned")]
            finally:
                con.close()
        except sqlite3.Error:
            names = index_files(self.db)
            if names is None:
                log.warning("%s: the old index's files cannot be told from others; only its catalog is deleted",
                            self.db)
        for name in names or ():
            if is_array_name(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.db / name)
        for name in (CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm", f"{CATALOG}-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.db / name)

    def _image_gen(self) -> str | None:
        rec = self.con.execute("SELECT value FROM meta WHERE key = 'image_index'").fetchone()
        return json.loads(rec[0])["gen"] if rec else None

    def _delete_orphans(self) -> None:
        """Files the index recorded as its own that no committed catalog state refers to (left by a killed
        writer, a compaction, an older image-index generation or a damaged chunk)."""
        live = {chunk_path(self.db, c, a).name for (c,) in self.con.execute("SELECT id FROM chunks")
                for a in self.arrays}
        gen = self._image_gen()
        dead = [n for (n,) in self.con.execute("SELECT name FROM owned")
                if n not in live and not (gen and n.startswith(f"image-{gen}.") and not n.endswith(".tmp"))]
        delete_owned(self.con, self.db, dead)

    def _drop_damaged_chunks(self) -> None:
        """Chunks whose arrays are missing or damaged: their photos leave the catalog, to be described again
        by this run (or the next over their folders); the files go with the orphans.  A chunk whose raw image
        arrays are missing is whole: they were folded into the image index (:meth:`_drop_unreadable_folded`)."""
        spec = array_spec(self.settings, self.image_dim or None)
        damaged = {}
        for c, n in self.con.execute("SELECT id, n FROM chunks").fetchall():
            for a in self.arrays:
                if a in IMAGE_ARRAYS and not os.path.lexists(chunk_path(self.db, c, a)):
                    continue
                arr, problem = open_array(chunk_path(self.db, c, a), n, *spec[a])
                del arr
                if problem and problem.startswith(CANNOT_READ):  # not damage: the photos are not dropped
                    raise IndexWriteError(f"{chunk_path(self.db, c, a)}: {problem}; fix the folder's permissions "
                                          f"or the disk, then run again")
                if problem:
                    damaged[c] = f"{chunk_path(self.db, c, a).name} {problem}"
                    break
        if damaged:
            self._drop_chunks(damaged, "damaged descriptor chunks")

    def _drop_chunks(self, why: dict[int, str], what: str) -> None:
        with self.con:
            lost = self.con.execute(f"SELECT COUNT(*) FROM files WHERE chunk IN ({','.join('?' * len(why))})",
                                    list(why)).fetchone()[0]
            self.con.executemany("DELETE FROM files WHERE chunk = ?", [(c,) for c in why])
            self.con.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in why])
            if "gem" in self.arrays:
                self._image_dirty()
        log.warning("%s: %d %s (%s): their %d photos are described again when their folders are indexed",
                    self.db, len(why), what, "; ".join(dict.fromkeys(why.values())), lost)  # each reason once

    def raw_chunks(self) -> set[int]:
        """Chunks that still hold their photos' raw image descriptors (not yet folded into the image index)."""
        if "gem" not in self.arrays:
            return set()
        return {c for (c,) in self.con.execute("SELECT id FROM chunks")
                if all(os.path.lexists(chunk_path(self.db, c, a)) for a in IMAGE_ARRAYS)}

    def _drop_unreadable_folded(self) -> None:
        """When the image index files that hold the folded photos' image descriptors (``open_generation`` with
        ``derived=False``) are missing or damaged, those photos leave the catalog (their chunks' files go with the
        orphans), to be described again.  Damage to what a build computes again only makes the index stale."""
        if "gem" not in self.arrays:
            return
        rec = self.con.execute("SELECT value FROM meta WHERE key = 'image_index'").fetchone()
        from .imageindex import open_generation

        problem = None
        if rec is not None:
            try:
                open_generation(self.db, json.loads(rec[0]), derived=False)
            except (IndexFormatError, ValueError, KeyError) as e:
                problem = str(e)
        raw = self.raw_chunks()
        folded = [c for (c,) in self.con.execute("SELECT id FROM chunks") if c not in raw]
        if folded and (rec is None or problem):
            self._drop_chunks({c: problem or "no image index" for c in folded},
                              "chunks whose image descriptors are lost")

    def close(self) -> None:
        if getattr(self, "con", None) is not None:
            with contextlib.suppress(sqlite3.Error):
                self.con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._close_catalog()
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading what is there --------------------------------------------------------------------
    @_writes
    def known(self) -> dict[str, Known]:
        """Every catalogued file (indexed or skipped), by path."""
        rows = self.con.execute("SELECT id, path, size, mtime, hash, status, reason, cells IS NOT NULL FROM files")
        return {r[1]: Known(*r[:7], cells=bool(r[7])) for r in rows}

    @_writes
    def descriptor(self, file_id: int) -> dict[str, np.ndarray]:
        """The stored arrays of one indexed file (for a copy of it under another name)."""
        chunk, slot = self.con.execute("SELECT chunk, slot FROM files WHERE id = ?", (file_id,)).fetchone()
        return {a: np.array(np.load(chunk_path(self.db, chunk, a), mmap_mode="r")[slot]) for a in self.arrays}

    @_writes
    def fill_dates(self) -> int:
        """Once after ``catalog.migrate`` added the ``taken`` column: read the dates (EXIF DateTimeOriginal) of the
        photos catalogued before, from their headers; returns how many had one."""
        from .imageio import read_taken

        if not self.con.execute("SELECT 1 FROM meta WHERE key = ?", (DATES_PENDING,)).fetchone():
            return 0
        rows = self.con.execute("SELECT id, path FROM files WHERE status = 'indexed' AND taken IS NULL").fetchall()
        got = [(t, i) for i, p in rows if (t := read_taken(p)) is not None]
        away = any(not os.path.exists(p) for _, p in rows)  # an unplugged drive: read its dates on a later run
        with self.con:
            self.con.executemany("UPDATE files SET taken = ? WHERE id = ?", got)
            if not away:
                self.con.execute("DELETE FROM meta WHERE key = ?", (DATES_PENDING,))
        return len(got)

    # -- writing ----------------------------------------------------------------------------------
    def _next_ids(self, n: int) -> range:
        top = self.con.execute("SELECT COALESCE(MAX(id), 0) FROM files").fetchone()[0]
        return range(top + 1, top + 1 + n)

    def _new_chunk(self, arrays: dict[str, np.ndarray]) -> tuple[int, list[str]]:
        """Write a chunk's arrays (before any catalog row refers to them); returns its id and the temporary
        names to forget in the transaction that commits it.  The names are recorded first; an id whose
        names someone else's files hold is skipped."""
        cid = self.con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()[0]
        while any(os.path.lexists(chunk_path(self.db, cid, a)) or os.path.lexists(f"{chunk_path(self.db, cid, a)}.tmp")
                  for a in self.arrays):
            cid += 1
        names = [chunk_path(self.db, cid, a).name for a in arrays]
        tmp = [f"{n}.tmp" for n in names]
        record_owned(self.con, names + tmp)
        try:
            for name in arrays:
                save_array(chunk_path(self.db, cid, name), arrays[name])
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                delete_owned(self.con, self.db, names + tmp)
            raise
        return cid, tmp

    def _forget(self, names: Sequence[str]) -> None:
        """Drop records of temporary names that no longer exist (inside the transaction that commits)."""
        self.con.executemany("DELETE FROM owned WHERE name = ?", [(n,) for n in names])

    @_writes
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
        cid, tmp = None, []
        if records:
            arrays = {"codes": np.stack([r.codes for r in records]).astype(np.int8),
                      "inv_norms": np.stack([r.inv_norms for r in records]).astype(np.float32),
                      "ids": np.array([ids[r.path] for r in records], np.int64)}
            if "gem" in self.arrays:
                arrays["gem"] = np.stack([r.gem for r in records]).astype(np.float16)
                arrays["sketch"] = np.stack([r.sketch for r in records]).astype(np.float16)
            arrays["polar"], arrays["polar_scale"] = quantise(np.stack([r.polar for r in records]))
            cid, tmp = self._new_chunk(arrays)
        with cur:
            if cid is not None:
                cur.execute("INSERT INTO chunks VALUES (?, ?, ?)", (cid, len(records), time.time()))
                cur.executemany(
                    "INSERT INTO files (id, path, size, mtime, hash, width, height, status, reason, chunk, slot, "
                    "work_width, work_height, work_scale, n_points, taken, cells) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'indexed', NULL, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, "
                    "hash = excluded.hash, width = excluded.width, height = excluded.height, status = 'indexed', "
                    "reason = NULL, chunk = excluded.chunk, slot = excluded.slot, work_width = excluded.work_width, "
                    "work_height = excluded.work_height, work_scale = excluded.work_scale, "
                    "n_points = excluded.n_points, taken = excluded.taken, cells = excluded.cells",
                    [(ids[r.path], r.path, r.size, r.mtime, r.hash, r.width, r.height, cid, slot, r.work_width,
                      r.work_height, r.work_scale, r.n_points, r.taken, r.cells) for slot, r in enumerate(records)])
                self._forget(tmp)
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

    @_writes
    def note_skipped(self, items: Iterable[tuple[str, str]]) -> None:
        """Record what a scan could not catalogue -- (path, reason): an unreadable folder, a name that is not
        UTF-8, a broken link, not a regular file... -- as skipped.  An indexed photo keeps its descriptor (it
        may be out of reach for now: a folder not readable, a drive not plugged in) unless its path now holds
        what is not a photo (not a regular file, too large)."""
        items = list(items)
        gone = [p for p, why in items if why == NOT_REGULAR or why.startswith(TOO_LARGE)]
        with self.con:
            if gone and "gem" in self.arrays and self.con.execute(
                    "SELECT COUNT(*) FROM files WHERE status = 'indexed' AND path IN (SELECT value FROM json_each(?))",
                    (json.dumps(gone),)).fetchone()[0]:
                self._image_dirty()
            self.con.executemany(
                "INSERT INTO files (path, size, mtime, status, reason) VALUES (?, 0, 0, 'skipped', ?) "
                "ON CONFLICT (path) DO UPDATE SET status = 'skipped', reason = excluded.reason, size = 0, mtime = 0, "
                "hash = NULL, chunk = NULL, slot = NULL "
                f"WHERE files.status = 'skipped' OR excluded.reason = '{NOT_REGULAR}' "
                f"OR excluded.reason LIKE '{TOO_LARGE}%'",
                [(p, why) for p, why in items])

    @_writes
    def forget_skipped(self, paths: Iterable[str]) -> int:
        """Drop skipped entries (files that no longer exist); returns how many were dropped."""
        with self.con:
            cur = self.con.executemany("DELETE FROM files WHERE path = ? AND status = 'skipped'",
                                       [(p,) for p in paths])
        return max(cur.rowcount, 0)

    @_writes
    def add_arrays(self, paths: Sequence[str], geometry: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Bulk insert of ready-made descriptors (synthetic indexes for benchmarks); geometry (N, 5)."""
        start = self._next_ids(0).start
        ids = np.arange(start, start + len(paths), dtype=np.int64)
        if "polar" not in arrays:  # synthetic sketch descriptors come without rotation descriptors
            arrays = {**arrays, "polar": np.zeros((len(paths), POLAR_DIM), np.float32)}
        if "polar_scale" not in arrays:  # float rotation descriptors: stored as int8 codes and scales
            codes, scale = quantise(arrays["polar"])
            arrays = {**arrays, "polar": codes, "polar_scale": scale}
        if "gem" in arrays and "sketch" not in arrays:  # ... and image vectors without sketch descriptors
            arrays = {**arrays, "sketch": np.zeros_like(arrays["gem"])}
        cid, tmp = self._new_chunk({**arrays, "ids": ids})
        with self.con:
            self.con.execute("INSERT INTO chunks VALUES (?, ?, ?)", (cid, len(paths), time.time()))
            self.con.executemany(
                "INSERT INTO files (id, path, size, mtime, width, height, status, chunk, slot, work_width, "
                "work_height, work_scale, n_points) VALUES (?, ?, 0, 0, ?, ?, 'indexed', ?, ?, ?, ?, ?, 0)",
                ((int(ids[i]), p, int(g[0]), int(g[1]), cid, i, int(g[2]), int(g[3]), float(g[4]))
                 for i, (p, g) in enumerate(zip(paths, geometry, strict=True))))
            self._forget(tmp)

    @_writes
    def rename(self, moves: Iterable[tuple[int, str, int, float]]) -> None:
        """Give catalogued files new paths (id, new path, size, mtime), keeping their descriptors."""
        with self.con:
            self.con.executemany("UPDATE files SET path = ?, size = ?, mtime = ? WHERE id = ?",
                                 [(p, s, m, i) for i, p, s, m in moves])

    @_writes
    def remove(self, paths: Iterable[str]) -> int:
        """Drop files from the catalog (their slots become dead); returns how many were dropped."""
        with self.con:
            cur = self.con.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])
            if cur.rowcount > 0 and "gem" in self.arrays:
                self._image_dirty()
        return cur.rowcount

    def _image_dirty(self) -> None:
        """Mark the image index out of date (inside the transaction that changes the photos)."""
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (IMAGE_INDEX_DIRTY,))

    @_writes
    def image_index_stale(self) -> bool:
        """Whether the image index must be built again (``engine.imageindex.stale``)."""
        from .imageindex import stale

        return stale(self.meta(), self.db)

    @_writes
    def build_image_index(self, *, ivf_threshold: int | None = None, learned=None) -> dict:
        """Fold the photos' raw image vectors into a new image-index generation (its bases, codes and
        whitening: ``engine.imageindex.write_generation``), point the catalog at it, then delete the raw vectors
        and the older generations.

        ``learned``: use these (``imageindex.Learned``, a shard of a collection) instead of learning them here.
        Returns the meta record written.  A failed write (disk full) raises IndexWriteError naming the index; the
        previous generation stays in use (and for readers that opened before the commit); older ones go.
        """
        from .imageindex import IVF_THRESHOLD, PhotoVectors, generation_files, open_generation, write_generation

        con, db = self.con, self.db
        ivf_threshold = IVF_THRESHOLD if ivf_threshold is None else ivf_threshold
        # in path order: the bases learned on them do not depend on the order in which workers finished photos
        rows = con.execute("SELECT id, chunk, slot FROM files WHERE chunk IS NOT NULL ORDER BY path").fetchall()
        a = np.array(rows, np.int64).reshape(-1, 3)
        raw = self.raw_chunks()
        previous = self.con.execute("SELECT value FROM meta WHERE key = 'image_index'").fetchone()
        try:
            previous_gen = open_generation(db, json.loads(previous[0]), derived=False) if previous else None
        except IndexFormatError as e:  # its photos were dropped when this writer opened (_drop_unreadable_folded)
            log.warning("%s", e)
            previous_gen = None
        vectors = PhotoVectors(db, a[:, 0], a[:, 1], a[:, 2], raw, previous_gen)
        while True:  # a name no file holds (someone else's files are never overwritten)
            gen = uuid.uuid4().hex[:12]
            files = generation_files(db, gen)
            names = [p.name for p in files.values()] + [f"{p.name}.tmp" for p in files.values()]
            if not any(os.path.lexists(db / n) for n in names):
                break
        record_owned(con, names)
        try:
            record = write_generation(db, gen, files, vectors, ivf_threshold, learned, save_npz)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                delete_owned(con, db, names)
            raise
        previous = con.execute("SELECT value FROM meta WHERE key = 'image_index'").fetchone()
        keep = {gen} | ({json.loads(previous[0])["gen"]} if previous else set())
        with con:
            con.execute("INSERT OR REPLACE INTO meta VALUES ('image_index', ?)", (json.dumps(record),))
            con.execute("DELETE FROM meta WHERE key = ?", (IMAGE_INDEX_DIRTY,))
            con.executemany("DELETE FROM owned WHERE name = ?", [(n,) for n in names if n.endswith(".tmp")])
            stale = [n for (n,) in con.execute("SELECT name FROM owned WHERE name LIKE 'image-%'")
                     if n.split(".", 1)[0].removeprefix("image-") not in keep]
        delete_owned(con, db, stale)
        # the raw vectors now folded into the generation (a chunk keeps them while it is in no committed one)
        delete_owned(con, db, [chunk_path(db, c, n).name for c in raw for n in IMAGE_ARRAYS])
        return record

    @_writes
    def meta(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT key, value FROM meta").fetchall())

    @_writes
    def set_meta(self, key: str, value: str) -> None:
        with self.con:
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @_writes
    def compact(self, *, full: bool = False) -> int:
        """Merge small chunks and chunks with many dead slots (size-tiered, so each descriptor is rewritten
        O(log N) times over the index's life); ``full`` merges everything into one chunk.  Chunks that still
        hold raw image descriptors are merged only with each other (:meth:`raw_chunks`).
        Returns the number of chunks merged."""
        raw = self.raw_chunks()
        sizes = dict(self.con.execute("SELECT id, n FROM chunks").fetchall())
        merged = 0
        for group in (raw, set(sizes) - raw):
            merged += self._compact({c: n for c, n in sizes.items() if c in group}, full=full,
                                    arrays=self.arrays if group is raw else SKETCH_ARRAYS)
        return merged

    def _compact(self, sizes: dict[int, int], *, full: bool, arrays: Sequence[str]) -> int:
        con = self.con
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
            merged = {}
            for name in arrays:
                if name == "ids":
                    merged[name] = ids
                    continue
                parts = {c: np.load(chunk_path(self.db, c, name), mmap_mode="r") for c in merge}
                first = parts[merge[0]]
                out = np.empty((len(rows), *first.shape[1:]), first.dtype)
                for c, a in parts.items():
                    sel = chunk_of == c
                    out[sel] = a[slot_of[sel]]
                merged[name] = out
            cid, tmp = self._new_chunk(merged)
            with con:
                con.execute("INSERT INTO chunks VALUES (?, ?, ?)", (cid, len(rows), time.time()))
                con.executemany("UPDATE files SET chunk = ?, slot = ? WHERE id = ?",
                                [(cid, s, int(i)) for s, i in enumerate(ids)])
                con.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in merge])
                self._forget(tmp)
        if empty:
            with con:
                con.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in empty])
        # after the commit: no committed state refers to them any more (a file a reader holds open on
        # Windows keeps its record and is deleted next time)
        delete_owned(con, self.db, [chunk_path(self.db, c, a).name for c in [*merge, *empty] for a in self.arrays])
        return len(merge)


