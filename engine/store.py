"""The index on disk: a SQLite catalog plus descriptor arrays in chunks, written by one process at a time
and read, memory-mapped, by any number of searchers -- also while a writer is adding to it.

Layout of an index folder::

    .sketchsearch-index  the marker: this folder is an index, made by sketchsearch (format, random id)
    catalog.sqlite3      (WAL) meta: format version, settings
                         files: one row per file seen -- path, size, mtime, content hash, size after EXIF
                                orientation, status (indexed / skipped + reason) and, for indexed
                                files, the chunk and slot of its descriptor
                         chunks: the descriptor chunks, with their row counts
                         owned: the name of every other file the index writes here (and its temporary name)
    chunk-<id>.<array>.npy   one file per array of a chunk: ``codes`` (n, D) int8, ``inv_norms``
                         (n, K, 3) float32, ``ids`` (n,) int64 (the files row whose descriptor a slot
                         holds), ``polar`` (n, P) float16 and, when the index has image descriptors, ``gem``
                         and ``sketch`` (n, G) float16
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
import functools
import json
import logging
import os
import re
import sqlite3
import stat
import time
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .afm import FeatureLayout
from .edges import EdgeMap, sketch_edges
from .errors import (
    DamagedIndexWarning,
    IndexFormatError,
    IndexLocked,
    IndexNotFound,
    IndexWriteError,
    QueryError,
    SketchSearchError,
)
from .imageio import ImageError, load_image, load_sketch
from .settings import FORMAT_VERSION, SketchSettings

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite3"
LOCK = "lock"
MARKER = ".sketchsearch-index"
MARKER_FORMAT = "sketchsearch-index"
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
CREATE TABLE IF NOT EXISTS owned (name TEXT PRIMARY KEY);
"""

_CHUNK_FILE = re.compile(r"^chunk-(\d+)\.(\w+)\.npy$")
#: the catalog's own files, the lock and the marker: never in ``owned``, never deleted by a cleanup
_FIXED = frozenset({CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm", f"{CATALOG}-journal", LOCK, MARKER})
#: what an operating system's file browser leaves in any folder
_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
#: every name an index of this or an earlier format writes (checked before adopting a folder without a marker)
_LAYOUT = re.compile(r"""^(?:chunk-\d+\.[a-z_]+\.npy(?:\.tmp)?
    |image-[0-9a-f]+\.(?:vectors\.npy|ids\.npy|whitening\.npz|faiss|sketch\.npy|sketch_mean\.npy)(?:\.tmp)?
    |\.image-[0-9a-f]+\.(?:whitening\.npz|faiss)\.\w+\.tmp
    |(?:codes|inv_norms)-\w+\.npy)$""", re.X)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: reasons of files a scan does not read (``engine.indexer``): their path no longer holds a photo
NOT_REGULAR = "not a regular file"
TOO_LARGE = "larger than"
CANNOT_READ = "cannot read"


def rebuild_hint(db) -> str:
    return f"rebuild with: sketchsearch index FOLDER --db {db} --rebuild"


def repair_hint(db) -> str:
    return f"run: sketchsearch index FOLDER --db {db}"


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


def _uri(db: Path) -> str:
    """The catalog's ``file:`` URI (``#``, ``?``, ``%`` and spaces quoted)."""
    return (Path(db).absolute() / CATALOG).as_uri()


def _connect_ro(db: Path) -> sqlite3.Connection:
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
        con.execute("SELECT 1 FROM meta LIMIT 1")
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


def _catalog_error(db: Path, e: sqlite3.Error, *, writing: bool) -> SketchSearchError:
    """The one-line error of a failed catalog operation: the disk (full, read-only, I/O) or a damaged file."""
    text = str(e)
    if writing and isinstance(e, sqlite3.OperationalError) and any(
            k in text for k in ("full", "I/O", "readonly", "read-only", "locked", "unable to open")):
        return IndexWriteError(f"{db}: cannot write the catalog ({text}); what was committed before is kept; "
                               f"free some space or fix the folder, then run again")
    return IndexFormatError(f"{db}: unreadable catalog ({text}); {rebuild_hint(db)}")


@contextlib.contextmanager
def catalog_errors(db: str | os.PathLike, *, writing: bool = True):
    """Turn SQLite errors of an index's catalog into one-line errors naming the index."""
    try:
        yield
    except sqlite3.Error as e:
        raise _catalog_error(Path(db), e, writing=writing) from None


def _writes(method):
    """An IndexWriter method whose SQLite errors become one-line errors naming the index."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with catalog_errors(self.db):
            return method(self, *args, **kwargs)
    return run


def _json_object(text: str, what: str, db: Path) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, TypeError) as e:
        raise IndexFormatError(f"{db}: the catalog's {what} is damaged ({e}); {rebuild_hint(db)}") from None
    if not isinstance(value, dict):
        raise IndexFormatError(f"{db}: the catalog's {what} is damaged (not a JSON object); {rebuild_hint(db)}")
    return value


def _check_meta(db: Path, meta: dict[str, str]) -> None:
    """Refuse (IndexFormatError) a catalog of another format version or whose meta was edited."""
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise IndexFormatError(f"{db}: index format {version} but this sketchsearch reads format "
                               f"{FORMAT_VERSION}; {rebuild_hint(db)}")
    if "settings" not in meta:
        raise IndexFormatError(f"{db}: the catalog has no 'settings'; {rebuild_hint(db)}")
    try:
        SketchSettings.from_json(meta["settings"])
    except (ValueError, TypeError) as e:
        raise IndexFormatError(f"{db}: the catalog's 'settings' are damaged ({e}); {rebuild_hint(db)}") from None
    if meta.get("image_settings"):
        image = _json_object(meta["image_settings"], "'image_settings'", db)
        if not isinstance(image.get("backbone"), str):
            raise IndexFormatError(f"{db}: the catalog's 'image_settings' name no backbone; {rebuild_hint(db)}")
    if meta.get("image_index"):
        rec = _json_object(meta["image_index"], "'image_index'", db)
        ok = (isinstance(rec.get("gen"), str) and re.fullmatch(r"[0-9a-f]{1,64}", rec["gen"])
              and type(rec.get("n")) is int and rec["n"] >= 0 and rec.get("kind") in ("flat", "ivfpq")
              and isinstance(rec.get("whitened"), bool)
              and (rec.get("learned") is None or (isinstance(rec["learned"], str) and _TOKEN.match(rec["learned"]))))
        if not ok:
            raise IndexFormatError(f"{db}: the catalog's 'image_index' record is damaged; {rebuild_hint(db)}")
    if meta.get("shard"):
        rec = _json_object(meta["shard"], "'shard'", db)
        if not (isinstance(rec.get("manifest"), str) and type(rec.get("index")) is int and type(rec.get("of")) is int):
            raise IndexFormatError(f"{db}: the catalog's 'shard' record is damaged; {rebuild_hint(db)}")


def _read_meta(db: Path, con: sqlite3.Connection | None = None) -> dict[str, str]:
    """The ``meta`` table of an index, checked for its format version and its values."""
    db = Path(db)
    if not (db / CATALOG).is_file():
        if db.exists():
            raise IndexNotFound(f"{db}: not a sketchsearch index (no {CATALOG}); "
                                f"build one with: sketchsearch index FOLDER --db {db}")
        raise IndexNotFound(f"{db}: no such index; build one with: sketchsearch index FOLDER --db {db}")
    try:
        own = con is None
        con = con or _connect_ro(db)
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        finally:
            if own:
                con.close()
    except sqlite3.Error as e:
        raise IndexFormatError(f"{db}: unreadable catalog ({e}); {rebuild_hint(db)}") from None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise IndexFormatError(f"{db}: the catalog's meta table is damaged; {rebuild_hint(db)}")
    _check_meta(db, meta)
    return meta


read_meta = _read_meta


def read_settings(db: Path) -> SketchSettings:
    """Settings of an existing index (raises IndexNotFound / IndexFormatError)."""
    return SketchSettings.from_json(_read_meta(db)["settings"])


def content_hash(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """BLAKE2b (128-bit) of a file's bytes: the identity of a photo across renames and moves.

    Only a regular file is read (a FIFO or a device would never end): anything else raises OSError."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
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


def _atomic_write(path: Path, write) -> None:
    """``write(file)`` into ``path``'s temporary name (created exclusively, never through a link), fsync,
    rename.  Any failure (disk full...) becomes an IndexWriteError naming the index and the file; the
    temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        f = open(tmp, "xb")  # noqa: SIM115 -- O_EXCL: never an existing file, nor through a link
        try:
            with f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        why = e.strerror or str(e)
        raise IndexWriteError(f"{path.parent}: cannot write {path.name} ({why}); what was committed before is "
                              f"kept; free some space or fix the folder, then run again") from None


def save_array(path: Path, a: np.ndarray) -> None:
    """np.save, durable and atomic: temporary name, fsync, rename (IndexWriteError when it fails)."""
    _atomic_write(path, lambda f: np.save(f, a))


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez, durable and atomic, as :func:`save_array`."""
    _atomic_write(path, lambda f: np.savez(f, **arrays))


_save_array = save_array


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
        if _LAYOUT.match(name) and name not in _FIXED:
            try:
                os.unlink(Path(db) / name)
            except FileNotFoundError:
                pass
            except OSError:
                continue
        done.append(name)
    with con:
        con.executemany("DELETE FROM owned WHERE name = ?", [(n,) for n in done])


def _index_files(db: Path) -> list[str] | None:
    """Names in ``db`` that an index writes (the catalog's included), when it holds nothing else (besides a
    file browser's litter); None when it holds anything else, or any link or folder."""
    names = []
    for entry in os.scandir(db):
        if entry.name in _LITTER:
            continue
        if not entry.is_file(follow_symlinks=False):
            return None
        if entry.name not in _FIXED and not _LAYOUT.match(entry.name):
            return None
        names.append(entry.name)
    return names


def _folder_claim(db: Path) -> str:
    """Whether an index may be written in ``db``: "new" (absent, or empty), "own" (has the marker) or
    "adopt" (an index made before the marker: a catalog and nothing but index files).  Anything else is
    refused (IndexNotFound naming a file that is not the index's)."""
    if not db.exists():
        return "new"
    marker = db / MARKER
    if marker.is_symlink() or (marker.exists() and not marker.is_file()):
        raise IndexNotFound(f"{marker}: not a marker sketchsearch wrote (a link or a folder); "
                            f"choose another --db")
    if marker.exists():
        return "own"
    try:
        entries = sorted(n for n in os.listdir(db) if n not in _LITTER)
    except OSError as e:
        raise IndexNotFound(f"{db}: cannot read the folder ({e.strerror or e})") from None
    if not entries:
        return "new"
    if CATALOG in entries and _index_files(db) is not None:
        return "adopt"
    foreign = [n for n in entries if n not in _FIXED and not _LAYOUT.match(n)] or entries
    raise IndexNotFound(f"{db}: the folder is not empty and is not a sketchsearch index (it holds {foreign[0]!r}); "
                        f"an index needs a new or empty folder: choose another --db")


def _write_marker(db: Path) -> None:
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


def _array_spec(settings: SketchSettings, image_dim: int | None = None) -> dict[str, tuple[np.dtype, tuple | None]]:
    """dtype and row shape of each chunk array (None: any 1-D row)."""
    image = (image_dim,) if image_dim else None
    return {"codes": (np.dtype(np.int8), (settings.dim,)),
            "inv_norms": (np.dtype(np.float32), (len(settings.scales), 3)),
            "ids": (np.dtype(np.int64), ()), "polar": (np.dtype(np.float16), (POLAR_DIM,)),
            "gem": (np.dtype(np.float16), image), "sketch": (np.dtype(np.float16), image)}


def _open_array(path: Path, n: int, dtype, row: tuple | None) -> tuple[np.ndarray | None, str | None]:
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
        claim = _folder_claim(self.db)
        if claim == "new":
            self.db.mkdir(parents=True, exist_ok=True)
            _write_marker(self.db)
        self.settings = settings
        self.image_settings = image_settings
        self.image_dim = image_dim
        self.arrays = SKETCH_ARRAYS + (IMAGE_ARRAYS if image_settings else ())
        self._lock = _Lock(self.db)
        try:
            self._open(rebuild, adopt=claim == "adopt")
        except BaseException:
            self.close()
            raise

    @classmethod
    def existing(cls, db: str | os.PathLike) -> IndexWriter:
        """A writer of an existing index, with the settings it was built with."""
        meta = _read_meta(Path(db))
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
            _write_marker(self.db)
            self._open_catalog(adopt=False)

    def _open_catalog(self, adopt: bool) -> None:
        for name in (CATALOG, f"{CATALOG}-wal", f"{CATALOG}-shm"):
            if (self.db / name).is_symlink():
                raise IndexFormatError(f"{self.db / name}: a symbolic link, which sketchsearch does not make; "
                                       f"{rebuild_hint(self.db)}")
        if (self.db / CATALOG).exists():
            self._check(_read_meta(self.db))
        elif adopt:  # only the catalog made it an index; it is gone
            adopt = False
        with catalog_errors(self.db):
            self.con = sqlite3.connect(str(self.db / CATALOG), timeout=30)
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=NORMAL")
            with self.con:
                self.con.executescript(_SCHEMA)
                self.con.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                    ("format_version", str(FORMAT_VERSION)), ("settings", self.settings.to_json()),
                    ("image_settings", self.image_settings or "")])
            if adopt:  # an index made before the marker: its files (all index files) are recorded as its own
                record_owned(self.con, [n for n in _index_files(self.db) or () if n not in _FIXED])
                _write_marker(self.db)
            self._drop_damaged_chunks()
            self._delete_orphans()

    def _close_catalog(self) -> None:
        if self.con is not None:
            with contextlib.suppress(sqlite3.Error):
                self.con.close()
            self.con = None

    def _check(self, meta: dict[str, str]) -> None:
        theirs = SketchSettings.from_json(meta["settings"])
        if theirs.detector != self.settings.detector:
            raise IndexFormatError(f"{self.db}: index was built with {theirs.detector} edges, not "
                                   f"{self.settings.detector}; one index holds one kind of edges: index with "
                                   f"--edges {theirs.detector} (or leave --edges out), use another --db, or "
                                   f"rebuild it with {self.settings.detector} edges (--rebuild)")
        if theirs != self.settings:
            raise IndexFormatError(f"{self.db}: index was built with other sketch settings; use another --db, "
                                   f"or rebuild it with these (--rebuild)")
        if (meta.get("image_settings") or None) != self.image_settings:
            theirs = json.loads(meta["image_settings"])["backbone"] if meta.get("image_settings") else "none"
            raise IndexFormatError(f"{self.db}: index was built with another image backbone or settings "
                                   f"(--backbone {theirs}); index with --backbone {theirs} (or leave --backbone "
                                   f"out), use another --db, or rebuild it with these (--rebuild)")

    def _delete_all(self) -> None:
        """Remove an index that is rebuilt: the files its catalog recorded as its own, or, when the catalog
        cannot tell (made before those records, or unreadable), the index files of a folder that holds
        nothing else; then the catalog.  Files it cannot tell are its own stay."""
        names = None
        try:
            con = _connect_ro(self.db)
            try:
                names = [r[0] for r in con.execute("SELECT name FROM owned")]
            finally:
                con.close()
        except sqlite3.Error:
            names = _index_files(self.db)
            if names is None:
                log.warning("%s: the old index's files cannot be told from others; only its catalog is deleted",
                            self.db)
        for name in names or ():
            if name not in _FIXED and _LAYOUT.match(name):
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
        by this run (or the next over their folders); the files go with the orphans."""
        spec = _array_spec(self.settings, self.image_dim or None)
        damaged = {}
        for c, n in self.con.execute("SELECT id, n FROM chunks").fetchall():
            for a in self.arrays:
                arr, problem = _open_array(chunk_path(self.db, c, a), n, *spec[a])
                del arr
                if problem and problem.startswith(CANNOT_READ):  # not damage: the photos are not dropped
                    raise IndexWriteError(f"{chunk_path(self.db, c, a)}: {problem}; fix the folder's permissions "
                                          f"or the disk, then run again")
                if problem:
                    damaged[c] = f"{chunk_path(self.db, c, a).name} {problem}"
                    break
        if not damaged:
            return
        with self.con:
            lost = self.con.execute(f"SELECT COUNT(*) FROM files WHERE chunk IN ({','.join('?' * len(damaged))})",
                                    list(damaged)).fetchone()[0]
            self.con.executemany("DELETE FROM files WHERE chunk = ?", [(c,) for c in damaged])
            self.con.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in damaged])
            if "gem" in self.arrays:
                self._image_dirty()
        log.warning("%s: %d damaged descriptor chunks (%s): their %d photos are described again when their "
                    "folders are indexed", self.db, len(damaged), "; ".join(damaged.values()), lost)

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
        rows = self.con.execute("SELECT id, path, size, mtime, hash, status, reason FROM files")
        return {r[1]: Known(*r) for r in rows}

    @_writes
    def descriptor(self, file_id: int) -> dict[str, np.ndarray]:
        """The stored arrays of one indexed file (for a copy of it under another name)."""
        chunk, slot = self.con.execute("SELECT chunk, slot FROM files WHERE id = ?", (file_id,)).fetchone()
        return {a: np.array(np.load(chunk_path(self.db, chunk, a), mmap_mode="r")[slot]) for a in self.arrays}

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
        names = [chunk_path(self.db, cid, a).name for a in self.arrays]
        tmp = [f"{n}.tmp" for n in names]
        record_owned(self.con, names + tmp)
        try:
            for name in self.arrays:
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
            arrays["polar"] = np.stack([r.polar for r in records]).astype(np.float16)
            cid, tmp = self._new_chunk(arrays)
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
            arrays = {**arrays, "polar": np.zeros((len(paths), POLAR_DIM), np.float16)}
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
        from .imageindex import DIRTY

        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (DIRTY,))

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
            cid, tmp = self._new_chunk(arrays)
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


class CatalogReader:
    """``with CatalogReader(db) as con``: a read-only connection, closed after; SQLite errors become one-line
    IndexFormatErrors naming the index."""

    def __init__(self, db: Path) -> None:
        self.db = Path(db)
        self.con = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.con = _connect_ro(self.db)
        except sqlite3.Error as e:
            raise _catalog_error(self.db, e, writing=False) from None
        return self.con

    def __exit__(self, kind, e, tb) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.con.close()
        if isinstance(e, sqlite3.Error):
            raise _catalog_error(self.db, e, writing=False) from None


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
                sketch = load_sketch(sketch, max_side=self.settings.max_side).pixels
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
        try:
            max_side = GemSettings.from_json(summary["image_settings"]).max_side
        except (ValueError, TypeError) as e:
            raise IndexFormatError(f"{self.path}: the catalog's image settings are damaged ({e}); "
                                   f"{rebuild_hint(self.path)}") from None
        if isinstance(image, str | os.PathLike):
            try:
                image = load_image(image, max_side=max_side).pixels
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
                f"{self.path}: {self.n_damaged} photos are left out of searches: damaged descriptor files {names}; "
                f"describe them again with: sketchsearch index FOLDER --db {self.path}"), stacklevel=2)

    def _load(self, final: bool) -> list[tuple[str, str]] | None:
        """Read the catalog and map the chunks; returns the damaged chunk files (None: read again)."""
        _read_meta(self.path)  # raises the right error when there is no (valid) catalog
        try:
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
            finally:
                con.close()
        except sqlite3.Error as e:
            raise IndexFormatError(f"{self.path}: unreadable catalog ({e}); {rebuild_hint(self.path)}") from None
        self.meta = meta
        self.settings = SketchSettings.from_json(meta["settings"])
        self.image_settings = meta.get("image_settings") or None
        names = SKETCH_ARRAYS + (IMAGE_ARRAYS if self.image_settings else ())
        spec = _array_spec(self.settings)
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
                if a in ("gem", "sketch") and blocks["gem"]:
                    row = blocks["gem"][0].shape[1:]
                arrays[a], problem = _open_array(chunk_path(self.path, c, a), n, dtype, row)
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
        self.codes = _concat(blocks["codes"], (0, self.settings.dim), np.int8)
        self.inv_norms = _concat(blocks["inv_norms"], (0, k, 3), np.float32)
        ids = blocks["ids"]
        self.ids = np.concatenate(ids) if len(ids) > 1 else (np.asarray(ids[0]) if ids else np.zeros(0, np.int64))
        self.gem = _concat(blocks["gem"], (0, 0), np.float16) if "gem" in blocks else None
        self.polar = _concat(blocks["polar"], (0, POLAR_DIM), np.float16)  # (N, P) rotation descriptors
        self.chunk_files = sorted(chunk_path(self.path, c, a).name for c in good for a in names)
        image_gen = json.loads(meta["image_index"])["gen"] if meta.get("image_index") else None
        self.image_files = sorted(p.name for p in self.path.glob(f"image-{image_gen}.*")
                                  if not p.name.endswith(".tmp")) if image_gen else []
        return damaged

    def _catalog(self):
        """A read-only connection whose errors become one-line IndexFormatErrors (use with ``with``)."""
        return CatalogReader(self.path)

    def __len__(self) -> int:
        return len(self.ids)

    # -- per-row metadata, read on demand (an index of a million photos opens without reading them all)
    def lookup(self, rows: Sequence[int]) -> list[tuple[str, np.ndarray] | None]:
        """(path, geometry (width, height, work_width, work_height, work_scale)) of rows; None for a file
        a writer has removed since this view was opened."""
        ids = [int(self.ids[r]) for r in rows]
        if not ids:
            return []
        with self._catalog() as con:
            found = {r[0]: (r[1], np.array(r[2:], np.float64)) for r in con.execute(
                "SELECT id, path, width, height, work_width, work_height, work_scale FROM files "
                "WHERE status = 'indexed' AND id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))}
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
        with self._catalog() as con:
            return con.execute("SELECT path, reason FROM files WHERE status = 'skipped' ORDER BY path").fetchall()

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
        chunk_files, image_files = set(self.chunk_files), set(self.image_files)
        for p in self.path.iterdir():  # this view's files only (not what someone else put in the folder)
            m = _CHUNK_FILE.match(p.name)
            if m and p.name in chunk_files:
                key = m.group(2)
            elif p.name.startswith(CATALOG) and p.name in _FIXED:
                key = "catalog"
            elif p.name in image_files:  # image-<gen>.<part>; only this view's generation
                key = "image " + p.name.split(".", 1)[1].removesuffix(".npy").removesuffix(".npz")
            else:
                continue
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

