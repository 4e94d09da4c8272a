"""The index format on disk (the ground floor: schema, connections, meta, lock, atomic writes).

An index is a SQLite catalog plus descriptor arrays in chunks, written by one process at a time and read,
memory-mapped, by any number of searchers -- also while a writer is adding to it.

Layout of an index folder::

    .sketchsearch-index  the marker: this folder is an index, made by sketchsearch (format, random id)
    catalog.sqlite3      (WAL) meta: format version, settings
                         files: one row per file seen -- path, size, mtime, content hash, size after EXIF
                                orientation, status (indexed / skipped + reason) and, for indexed
                                files, the chunk and slot of its descriptor and its edge cells
                                (``engine.boxes``; NULL for photos described before they were kept)
                         chunks: the descriptor chunks, with their row counts
                         owned: the name of every other file the index writes here (and its temporary name)
    chunk-<id>.<array>.npy   one file per array of a chunk: ``codes`` (n, D) int8, ``inv_norms``
                         (n, K, 3) float32, ``ids`` (n,) int64 (the files row whose descriptor a slot
                         holds), ``polar`` (n, P) int8 with ``polar_scale`` (n,) float32 (the rotation
                         descriptor is their product) and, when the index has image descriptors and until
                         they are folded into the image index, ``gem`` and ``sketch`` (n, G) float16
    image-<gen>.*        the image index (``engine.imageindex``): every photo's image and global sketch
                         descriptors as int8 codes in a basis learned on the collection
    lock                 held (flock) by the one writer

Ownership: the tool writes only into a new or empty folder (where it puts the marker), a folder with its
marker, or an index made before the marker (a catalog of this format and nothing but index files: it is
adopted).  A file name is recorded in ``owned`` (committed) before the file is created, and the index
deletes only names recorded there, never names that merely look like its own: files someone else put in
the folder stay.

Crash safety: a writer writes a chunk's arrays completely (temporary name, fsync, rename) before the
catalog transaction that points files at them commits; a killed writer leaves at most unreferenced
chunk files (recorded in ``owned``), which the next writer deletes.  Compaction writes the merged chunk
first, repoints the rows in one transaction and only then deletes the old files, so every committed catalog
state refers to complete arrays.  A slot whose file was re-described or removed is dead: the catalog no
longer points at it, and compaction drops it.  A chunk found damaged (missing, truncated, overwritten) is
left out by readers (``DamagedIndexWarning``) and its photos are described again by the next writer.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import Hint, IndexFormatError, IndexLocked, IndexNotFound, IndexWriteError, SketchSearchError
from .rotation import POLAR_DIM
from .settings import FORMAT_VERSION, SketchSettings

CATALOG = "catalog.sqlite3"
LOCK = "lock"
MARKER = ".sketchsearch-index"
MARKER_FORMAT = "sketchsearch-index"
SKETCH_ARRAYS = ("codes", "inv_norms", "ids", "polar", "polar_scale")
#: per-photo arrays of an index with image descriptors: raw GeM of the photo, and of its edge map drawn.  They
#: are transient: the writer folds them into the image index at the end of a run (``engine.imageindex``) and
#: then deletes them, so a chunk without them is whole
IMAGE_ARRAYS = ("gem", "sketch")

SCHEMA = """
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
    n_points INTEGER,
    taken REAL,
    cells BLOB
);
CREATE INDEX IF NOT EXISTS files_chunk ON files (chunk, slot);
CREATE INDEX IF NOT EXISTS files_hash ON files (size, hash);
CREATE INDEX IF NOT EXISTS files_background ON files (COALESCE(hash, path), path) WHERE status = 'indexed';
CREATE INDEX IF NOT EXISTS files_skipped ON files (status) WHERE status = 'skipped';
CREATE TABLE IF NOT EXISTS owned (name TEXT PRIMARY KEY);
"""

#: columns added to ``files`` since the format version (``migrate`` adds them to an older catalog when a writer
#: opens it; readers go without them: ``has_column``)
ADDED_COLUMNS = {"taken": "REAL",  # EXIF DateTimeOriginal; NULL: none, or not read yet (the file's mtime stands)
                 "cells": "BLOB"}  # the photo's edge cells (engine.boxes); NULL: described before they were kept


def has_column(con: sqlite3.Connection, name: str, table: str = "files") -> bool:
    return any(r[1] == name for r in con.execute(f"PRAGMA table_info({table})"))


#: meta key set when ``migrate`` added the ``taken`` column: the next index run reads the dates of the photos
#: catalogued before (``IndexWriter.fill_dates``)
DATES_PENDING = "dates_pending"


def migrate(con: sqlite3.Connection) -> None:
    """Add the columns of ``ADDED_COLUMNS`` that an older catalog lacks (inside the caller's transaction)."""
    for name, kind in ADDED_COLUMNS.items():
        if not has_column(con, name):
            con.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
            if name == "taken":
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (DATES_PENDING,))


#: meta key: the folders indexed into this catalog (JSON list of real paths; absent in catalogs made before)
FOLDERS_META = "folders"

def date_sql(con: sqlite3.Connection) -> str:
    """The SQL of a photo's date as the filters and browsing see it: EXIF DateTimeOriginal where read, else the
    file's time (the file's time alone in a catalog from before the ``taken`` column)."""
    return "COALESCE(taken, mtime)" if has_column(con, "taken") else "mtime"

CHUNK_FILE = re.compile(r"^chunk-(\d+)\.(\w+)\.npy$")
#: the catalog's own files, the lock and the marker: never in ``owned``, never deleted by a cleanup
#: a new catalog is made under this name, complete with its schema and meta, then renamed to CATALOG (a run
#: killed while making it leaves no catalog without its tables)
NEW_CATALOG = f"{CATALOG}.new"
FIXED_FILES = frozenset({CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm", f"{CATALOG}-journal", LOCK, MARKER,
                         NEW_CATALOG, f"{NEW_CATALOG}-wal", f"{NEW_CATALOG}-shm", f"{NEW_CATALOG}-journal"})
#: what an operating system's file browser leaves in any folder
LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
#: every name an index of this or an earlier format writes (checked before adopting a folder without a marker)
LAYOUT = re.compile(r"""^(?:chunk-\d+\.[a-z_]+\.npy(?:\.tmp)?
    |image-[0-9a-f]+\.(?:vectors\.npy|ids\.npy|whitening\.npz|faiss|sketch\.npy|sketch_mean\.npy
        |basis\.npz|(?:image|sketch)_(?:codes|scale|norm)\.npy)(?:\.tmp)?
    |\.image-[0-9a-f]+\.(?:whitening\.npz|basis\.npz|faiss)\.\w+\.tmp
    |(?:codes|inv_norms)-\w+\.npy)$""", re.X)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CANNOT_READ = "cannot read"
#: meta key set in the writer's transactions that change what the image index holds (it must be built again)
IMAGE_INDEX_DIRTY = "image_index_dirty"


def chunk_path(db: Path, chunk: int, array: str) -> Path:
    return Path(db) / f"chunk-{chunk:08d}.{array}.npy"


def _uri(db: Path) -> str:
    """The catalog's ``file:`` URI (``#``, ``?``, ``%`` and spaces quoted)."""
    return (Path(db).absolute() / CATALOG).as_uri()


def connect_ro(db: Path) -> sqlite3.Connection:
    """A read-only connection to an index's catalog.

    WAL readers need the ``-shm`` file.  In a folder this process cannot write: with no ``-wal`` (or an
    empty one) the catalog is opened immutable; with a ``-wal`` left by a killed writer but no ``-shm``
    (no writer is running, since a writer keeps the ``-shm``), SQLite reads the ``-wal`` through its
    heap-memory index (exclusive locking mode, no locks: the ``unix-none`` file system), so nothing
    committed is missed.
    """
    db = Path(db)
    uri = _uri(db)
    try:
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30)
        con.execute("SELECT count(*) FROM sqlite_master")  # reads the file (and the -wal): fails here when it must
        return con
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e) and "unable to open" not in str(e):
            raise
    wal, shm = db / f"{CATALOG}-wal", db / f"{CATALOG}-shm"
    if os.name == "posix" and wal.is_file() and wal.stat().st_size > 0 and not shm.exists():
        con = sqlite3.connect(f"{uri}?mode=ro&vfs=unix-none", uri=True)
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        return con
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def catalog_error(db: Path, e: sqlite3.Error, *, writing: bool) -> SketchSearchError:
    """The one-line error of a failed catalog operation: the disk (full, read-only, I/O) or a damaged file."""
    text = str(e)
    if writing and isinstance(e, sqlite3.OperationalError) and any(
            k in text for k in ("full", "I/O", "readonly", "read-only", "locked", "unable to open")):
        return IndexWriteError(f"{db}: cannot write the catalog ({text}); what was committed before is kept; "
                               f"free some space or fix the folder, then run again")
    return IndexFormatError(f"{db}: unreadable catalog ({text})", hint=Hint("rebuild", str(db)))


@contextlib.contextmanager
def catalog_errors(db: str | os.PathLike, *, writing: bool = True):
    """Turn SQLite errors of an index's catalog into one-line errors naming the index."""
    try:
        yield
    except sqlite3.Error as e:
        raise catalog_error(Path(db), e, writing=writing) from None


def _json_object(text: str, what: str, db: Path) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, TypeError) as e:
        raise IndexFormatError(f"{db}: the catalog's {what} is damaged ({e})", hint=Hint("rebuild", str(db))) from None
    if not isinstance(value, dict):
        raise IndexFormatError(f"{db}: the catalog's {what} is damaged (not a JSON object)",
                               hint=Hint("rebuild", str(db)))
    return value


def _check_meta(db: Path, meta: dict[str, str]) -> None:
    """Refuse (IndexFormatError) a catalog of another format version or whose meta was edited."""
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise IndexFormatError(f"{db}: index format {version} but this sketchsearch reads format "
                               f"{FORMAT_VERSION}", hint=Hint("rebuild", str(db)))
    if "settings" not in meta:
        raise IndexFormatError(f"{db}: the catalog has no 'settings'", hint=Hint("rebuild", str(db)))
    try:
        SketchSettings.from_json(meta["settings"])
    except (ValueError, TypeError) as e:
        raise IndexFormatError(f"{db}: the catalog's 'settings' are damaged ({e})",
                               hint=Hint("rebuild", str(db))) from None
    if meta.get("image_settings"):
        image = _json_object(meta["image_settings"], "'image_settings'", db)
        if not isinstance(image.get("backbone"), str):
            raise IndexFormatError(f"{db}: the catalog's 'image_settings' name no backbone",
                                   hint=Hint("rebuild", str(db)))
    if meta.get("image_index"):
        rec = _json_object(meta["image_index"], "'image_index'", db)
        ok = (isinstance(rec.get("gen"), str) and re.fullmatch(r"[0-9a-f]{1,64}", rec["gen"])
              and type(rec.get("n")) is int and rec["n"] >= 0 and rec.get("kind") in ("flat", "ivfpq")
              and isinstance(rec.get("whitened"), bool)
              and (rec.get("learned") is None or (isinstance(rec["learned"], str) and _TOKEN.match(rec["learned"]))))
        if not ok:
            raise IndexFormatError(f"{db}: the catalog's 'image_index' record is damaged",
                                   hint=Hint("rebuild", str(db)))
    if meta.get("shard"):
        rec = _json_object(meta["shard"], "'shard'", db)
        if not (isinstance(rec.get("manifest"), str) and type(rec.get("index")) is int and type(rec.get("of")) is int):
            raise IndexFormatError(f"{db}: the catalog's 'shard' record is damaged", hint=Hint("rebuild", str(db)))


def read_meta(db: Path, con: sqlite3.Connection | None = None) -> dict[str, str]:
    """The ``meta`` table of an index, checked for its format version and its values."""
    db = Path(db)
    if not (db / CATALOG).is_file():
        if db.is_file():  # a photo, say: indexing "into" it is refused, so that is not the way out to suggest
            raise IndexNotFound(f"{db}: a file, not a sketchsearch index (an index is a folder; a sharded "
                                f"collection, a .json manifest)", hint=Hint("other-folder", str(db)))
        if db.is_dir() and any(not (is_index_name(n) or n in LITTER) for n in _names(db)):
            raise IndexNotFound(f"{db}: not a sketchsearch index (no {CATALOG}), and it holds other files: an "
                                f"index goes into a folder of its own", hint=Hint("other-folder", str(db)))
        if db.exists():
            raise IndexNotFound(f"{db}: not a sketchsearch index (no {CATALOG})", hint=Hint("build", str(db)))
        raise IndexNotFound(f"{db}: no such index", hint=Hint("build", str(db)))
    try:
        own = con is None
        con = con or connect_ro(db)
        try:
            if con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                if has_descriptors(db):  # it was emptied (a first run that stopped wrote none yet)
                    raise lost_catalog(db)
                raise IndexNotFound(f"{db}: no photos indexed yet (the first run stopped before it began)",
                                    hint=Hint("build", str(db)))
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            if own:
                con.close()
    except sqlite3.Error as e:
        raise IndexFormatError(f"{db}: unreadable catalog ({e})", hint=Hint("rebuild", str(db))) from None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise IndexFormatError(f"{db}: the catalog's meta table is damaged", hint=Hint("rebuild", str(db)))
    _check_meta(db, meta)
    return meta


def read_settings(db: Path) -> SketchSettings:
    """Settings of an existing index (raises IndexNotFound / IndexFormatError)."""
    return SketchSettings.from_json(read_meta(db)["settings"])


class Lock:
    """An exclusive advisory lock on ``db/lock`` (released by the OS when the holder dies).

    The lock file is the index's own: created exclusively where it is new, never followed when it is a
    link, and refused when it is not a plain file with one name (a link to someone's file would otherwise
    be truncated)."""

    def __init__(self, db: Path) -> None:
        self.path = db / LOCK
        nofollow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | nofollow, 0o644)
            except FileExistsError:
                fd = os.open(self.path, os.O_RDWR | nofollow)
        except OSError as e:
            why = "a symbolic link" if e.errno == errno.ELOOP or self.path.is_symlink() else (e.strerror or str(e))
            raise IndexLocked(f"{self.path}: the index's lock file cannot be used ({why}); sketchsearch did not "
                              f"make it: remove it if no sketchsearch process is writing {db}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            raise IndexLocked(f"{self.path}: the index's lock file is not a plain file of its own (it has "
                              f"{st.st_nlink} names); sketchsearch did not make it: remove it if no sketchsearch "
                              f"process is writing {db}")
        self.f = open(fd, "r+")  # noqa: SIM115 -- held for the writer's lifetime
        try:
            self._acquire()
        except OSError:
            self.f.seek(0)
            holder = self.f.read(64).strip() or "unknown"
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


def _index_write(path: Path, save) -> None:
    """``save(file)`` into ``path`` atomically (:func:`engine.atomic.atomic_write`) through its fixed temporary
    name ``<name>.tmp`` (recorded by the writer before).  Any failure (disk full...) becomes an IndexWriteError
    naming the index and the file; the temporary file is removed."""
    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            save(f)

    try:
        atomic_write(path, write, tmp=path.with_name(path.name + ".tmp"))
    except OSError as e:
        why = e.strerror or str(e)
        raise IndexWriteError(f"{path.parent}: cannot write {path.name} ({why}); what was committed before is "
                              f"kept; free some space or fix the folder, then run again") from None


def save_array(path: Path, a: np.ndarray) -> None:
    """np.save, durable and atomic: temporary name, fsync, rename (IndexWriteError when it fails)."""
    _index_write(path, lambda f: np.save(f, a))


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez, durable and atomic, as :func:`save_array`."""
    _index_write(path, lambda f: np.savez(f, **arrays))


def record_owned(con: sqlite3.Connection, names: Iterable[str]) -> None:
    """Record (and commit) names of files the index is about to create, before it creates them."""
    with con:
        con.executemany("INSERT OR IGNORE INTO owned VALUES (?)", [(n,) for n in names])


def delete_owned(con: sqlite3.Connection, db: Path, names: Iterable[str]) -> None:
    """Delete files the index recorded as its own, and their records.  A name that is not a plain index
    file name (an edited catalog) is dropped from the records without touching the disk; a file that cannot
    be deleted now (a reader holds it, on Windows) keeps its record for the next writer."""
    names = list(names)
    recorded = {r[0] for r in con.execute("SELECT name FROM owned WHERE name IN (SELECT value FROM json_each(?))",
                                          (json.dumps(names),))}
    done = []
    for name in names:
        if name not in recorded:
            continue
        if is_array_name(name):
            try:
                os.unlink(Path(db) / name)
            except FileNotFoundError:
                pass
            except OSError:
                continue
        done.append(name)
    with con:
        con.executemany("DELETE FROM owned WHERE name = ?", [(n,) for n in done])


def is_index_name(name: str) -> bool:
    """Whether a file name is one an index writes: a fixed file (catalog, lock, marker) or an array."""
    return name in FIXED_FILES or bool(LAYOUT.match(name))


def is_array_name(name: str) -> bool:
    """Whether a file name is one of an index's arrays (chunk and image-index files), not a fixed file."""
    return name not in FIXED_FILES and bool(LAYOUT.match(name))


def _names(db: Path) -> list[str]:
    """The names in a folder; none where it cannot be read (the catalog's own check says why)."""
    try:
        return os.listdir(db)
    except OSError:
        return []


def lost_catalog(db: Path) -> IndexFormatError:
    """The error of a catalog without tables beside the index's descriptor files: emptied, so lost (a rebuild
    removes the files it cannot place)."""
    return IndexFormatError(f"{db}: the catalog is empty, yet the folder holds the index's descriptor files: the "
                            f"catalog was lost", hint=Hint("rebuild", str(db)))


def has_descriptors(db: Path) -> bool:
    """Whether an index folder holds descriptor files (chunk or image-index arrays), which only a catalog places."""
    with os.scandir(db) as entries:
        return any(is_array_name(e.name) for e in entries)


def index_files(db: Path) -> list[str] | None:
    """Names in ``db`` that an index writes (the catalog's included), when it holds nothing else (besides a
    file browser's litter); None when it holds anything else, or any link or folder."""
    names = []
    for entry in os.scandir(db):
        if entry.name in LITTER:
            continue
        if not entry.is_file(follow_symlinks=False):
            return None
        if not is_index_name(entry.name):
            return None
        names.append(entry.name)
    return names


def folder_claim(db: Path) -> str:
    """Whether an index may be written in ``db``: "new" (absent, or empty), "own" (has the marker) or
    "adopt" (an index made before the marker: a catalog and nothing but index files).  Anything else is
    refused (IndexNotFound naming a file that is not the index's)."""
    if not db.exists():
        return "new"
    marker = db / MARKER
    if marker.is_symlink() or (marker.exists() and not marker.is_file()):
        raise IndexNotFound(f"{marker}: not a marker sketchsearch wrote (a link or a folder)",
                            hint=Hint("other-folder", str(db)))
    if marker.exists():
        return "own"
    try:
        entries = sorted(n for n in os.listdir(db) if n not in LITTER)
    except OSError as e:
        raise IndexNotFound(f"{db}: cannot read the folder ({e.strerror or e})") from None
    if not entries:
        return "new"
    if CATALOG in entries and index_files(db) is not None:
        return "adopt"
    foreign = [n for n in entries if not is_index_name(n)] or entries
    raise IndexNotFound(f"{db}: the folder is not empty and is not a sketchsearch index (it holds {foreign[0]!r}); "
                        f"an index needs a new or empty folder", hint=Hint("other-folder", str(db)))


def write_marker(db: Path) -> None:
    """The marker of an index folder (created exclusively: an existing one is kept)."""
    text = json.dumps({"format": MARKER_FORMAT, "id": uuid.uuid4().hex, "created": time.time()})
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(db / MARKER, flags, 0o644)
    except FileExistsError:
        return
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def array_spec(settings: SketchSettings, image_dim: int | None = None) -> dict[str, tuple[np.dtype, tuple | None]]:
    """dtype and row shape of each chunk array (None: any 1-D row)."""
    image = (image_dim,) if image_dim else None
    return {"codes": (np.dtype(np.int8), (settings.dim,)),
            "inv_norms": (np.dtype(np.float32), (len(settings.scales), 3)),
            "ids": (np.dtype(np.int64), ()), "polar": (np.dtype(np.int8), (POLAR_DIM,)),
            "polar_scale": (np.dtype(np.float32), ()),
            "gem": (np.dtype(np.float16), image), "sketch": (np.dtype(np.float16), image)}


def open_array(path: Path, n: int, dtype, row: tuple | None) -> tuple[np.ndarray | None, str | None]:
    """(memory map, None) of a chunk array with ``n`` rows of ``row`` shape, or (None, what is wrong)."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return None, "missing"
    except OSError as e:  # the file is there but cannot be read now (permissions, I/O): not damage
        return None, f"{CANNOT_READ}: {e.strerror or e}"
    except (ValueError, EOFError) as e:
        return None, f"unreadable: {e}"
    if a.dtype != dtype or a.ndim < 1 or len(a) != n or (a.shape[1:] != row if row is not None else a.ndim != 2):
        return None, f"{a.shape} {a.dtype}, the catalog says {n} rows of {row if row is not None else '(d,)'} {dtype}"
    return a, None


class CatalogReader:
    """``with CatalogReader(db) as con``: a read-only connection, closed after; SQLite errors become one-line
    IndexFormatErrors naming the index."""

    def __init__(self, db: Path) -> None:
        self.db = Path(db)
        self.con = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.con = connect_ro(self.db)
        except sqlite3.Error as e:
            raise catalog_error(self.db, e, writing=False) from None
        return self.con

    def __exit__(self, kind, e, tb) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.con.close()
        if isinstance(e, sqlite3.Error):
            raise catalog_error(self.db, e, writing=False) from None


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


def concat_blocks(blocks: list[np.ndarray], empty_shape: tuple, dtype) -> np.ndarray | RowBlocks:
    if not blocks:
        return np.zeros(empty_shape, dtype)
    return blocks[0] if len(blocks) == 1 else RowBlocks(blocks)


