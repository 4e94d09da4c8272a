"""Building and updating an index from folders of photos: incremental, resumable, parallel.

A run scans the folders, keeps every catalogued file whose size and mtime are unchanged, recognises
moved or renamed files by their content hash (they keep their descriptors), and describes the rest in
worker processes.  The one writer commits results every few seconds, so a run that is killed loses at
most those seconds: the next run finds the committed files unchanged and goes on from there.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import multiprocessing as mp
import os
import stat
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .afm import FeatureLayout
from .catalog import FOLDERS_META
from .describe import (
    Deferred,
    PhotoRecord,
    content_hash,
    defer_edges,
    describe_file,
    drawing_settings,
    finish_deferred,
    resolve_settings,
)
from .edges import get_detector
from .errors import Cancelled, Hint, IndexNotFound, WorkerError
from .imageio import IMAGE_EXTENSIONS, ImageError
from .settings import SketchSettings
from .writer import NOT_REGULAR, TOO_LARGE, IndexWriter

log = logging.getLogger(__name__)

# results are committed every FLUSH_EVERY photos and at least every FLUSH_SECONDS (what a killed run loses)
FLUSH_EVERY = int(os.environ.get("SKETCHSEARCH_COMMIT_EVERY", 512))
FLUSH_SECONDS = float(os.environ.get("SKETCHSEARCH_COMMIT_SECONDS", 2.0))
#: larger files are skipped (no photo is this large; a huge file named .jpg would only cost memory and time)
MAX_FILE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class IndexSummary:
    """What an index run did."""

    indexed: int  # photos in the index after the run
    described: int  # photos whose descriptor was computed in this run
    reused: int  # photos whose descriptor was kept: unchanged, touched (same bytes) or moved
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of files under the folders that are not indexed
    removed: int  # catalogued photos dropped because their files are gone (``prune``)
    moved: int = 0  # photos found under a new path by their content
    missing: int = 0  # catalogued photos under the folders whose files are gone and were kept (no ``prune``)
    upgraded: int = 0  # of ``described``: unchanged photos described again for the edge cells an earlier version
    # did not keep (their boxes are fitted from now on, ``engine.boxes``)


def _reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno == errno.ENOENT:
        return "broken link or file vanished"
    if e.errno == errno.EACCES:
        return "permission denied"
    if e.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return e.strerror or str(e)


@dataclass(frozen=True)
class Scan:
    """What a scan of folders found."""

    files: list[Path]  # image files (absolute; links resolved), sorted, each once
    skipped: list[tuple[str, str]]  # (path, reason) of what cannot be catalogued
    unreadable: list[str]  # folders that could not be read (as walked, and resolved): not a deletion


def scan_folders(folders: Iterable[str | os.PathLike], *, follow_links: bool = False,
                 exclude: Iterable[str | os.PathLike] = ()) -> Scan:
    """Image files (by extension) under the folders, sorted, each once.

    Symbolic links to folders inside the folders are followed, each real folder visited once (so link loops
    end); links to folders outside them are not (a link to ``/`` would walk the whole file system), unless
    ``follow_links``.  Only regular files of at most MAX_FILE_BYTES are taken (a FIFO or a device named
    ``.jpg`` would never end).

    What cannot be catalogued is listed in ``skipped`` with the reason: a name that is not valid UTF-8, a
    folder that cannot be read, a link loop, a broken link, a link out of the folders, not a regular file,
    too large.  Nothing under ``exclude`` (the index folder) is taken, however it is reached (a link into it
    from a photo folder, followed with ``follow_links``): its own files are no photos of the collection.

    Raises
    ------
    FileNotFoundError naming the first folder that does not exist.
    """
    found: set[Path] = set()
    skipped: list[tuple[str, str]] = []
    unreadable: list[str] = []
    visited: set[tuple[int, int]] = set()
    typed = [Path(f).expanduser() for f in folders]
    # absolute (links kept): what is skipped is recorded the same whatever the working folder was (relative, a
    # broken link was listed again under each way of typing its folder, and never dropped)
    folders = [Path(os.path.abspath(f)) for f in typed]
    roots = [os.path.realpath(f) for f in folders if f.is_dir()]
    barred = [os.path.realpath(Path(e).expanduser()) for e in exclude]

    def cannot_read(e: OSError) -> None:
        skipped.append((_printable(e.filename), f"cannot read folder: {_reason(e)}"))
        unreadable.extend({os.fsdecode(e.filename), os.path.realpath(e.filename)})

    def regular(p: Path | str) -> os.stat_result | None:
        """The file's stat when it can be read as a photo, else None (and it is listed as skipped)."""
        try:
            st = os.stat(p)
        except (OSError, RuntimeError) as e:
            skipped.append((_printable(p), _reason(e) if isinstance(e, OSError) else "symbolic link loop"))
            return None
        if not stat.S_ISREG(st.st_mode):
            skipped.append((_printable(p), NOT_REGULAR))
            return None
        if st.st_size > MAX_FILE_BYTES:
            skipped.append((_printable(p), f"{TOO_LARGE} {MAX_FILE_BYTES / 2**20:g} MB"))
            return None
        return st

    for root, as_typed in zip(folders, typed, strict=True):
        if not root.exists():
            raise FileNotFoundError(f"{as_typed}: no such folder")
        if not root.is_dir():
            if regular(root) is not None:
                found.add(root.resolve())
            continue
        for dirpath, dirs, files in os.walk(root, followlinks=True, onerror=cannot_read):
            try:
                st = os.stat(dirpath)
            except OSError as e:
                skipped.append((_printable(dirpath), _reason(e)))
                dirs[:] = []
                continue
            if (st.st_dev, st.st_ino) in visited:  # reached again through a link: a loop or a second path
                dirs[:] = []
                continue
            visited.add((st.st_dev, st.st_ino))
            if barred and _under(os.path.realpath(dirpath), barred):  # reached through a link
                skipped.append((_printable(dirpath), INDEX_FOLDER))
                dirs[:] = []
                continue
            if not follow_links:
                for name in [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                    link = os.path.join(dirpath, name)
                    if not _under(os.path.realpath(link), roots):
                        dirs.remove(name)
                        skipped.append((_printable(link), "link to a folder outside the indexed folders: not "
                                                          "followed (--follow-links follows it)"))
            for name in files:
                if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                p = Path(dirpath) / name
                if regular(p) is not None:
                    try:
                        real = p.resolve()
                        if barred and _under(str(real), barred):  # a link to a file of the index folder
                            skipped.append((_printable(p), INDEX_FOLDER))
                            continue
                        found.add(real)
                    except (OSError, RuntimeError):
                        skipped.append((_printable(p), "symbolic link loop"))
    files = []
    for f in sorted(found):
        try:
            str(f).encode("utf-8")
            files.append(f)
        except UnicodeEncodeError:
            skipped.append((_printable(f), "file name is not valid UTF-8"))
    return Scan(files, skipped, unreadable)


def scan(folders: Iterable[str | os.PathLike], *, follow_links: bool = False) \
        -> tuple[list[Path], list[tuple[str, str]]]:
    """(files, skipped) of :func:`scan_folders`."""
    found = scan_folders(folders, follow_links=follow_links)
    return found.files, found.skipped


def _printable(p) -> str:
    return os.fsdecode(p).encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class JobResult:
    """A worker's answer for one file: a record, a reason it was skipped, or ``same`` (bytes unchanged)."""

    path: str
    size: int
    mtime: float
    record: PhotoRecord | None = None
    reason: str | None = None
    same: bool = False
    net_input: tuple | None = None  # uint8 CNN inputs (photo, edges drawn), when the index has image descriptors
    deferred: Deferred | None = None  # the writer computes the edges (batched on a GPU)


_worker_layout: FeatureLayout | None = None
_worker_net_side: int | None = None
_worker_cnn = None
_worker_draw = None
_worker_defer_edges = False
_worker_failed: str | None = None  # why this worker process could not get ready (its jobs raise WorkerError)


def _init_worker(settings_json: str, single_thread: bool = True, net_side: int | None = None,
                 cnn_json: str | None = None, defer_edges: bool = False, int8: bool = True) -> None:
    """``_set_up_worker`` in a worker process (``single_thread``), where a failure is kept for the jobs to raise:
    an initializer that raises makes ``multiprocessing.Pool`` start new workers for ever, and the run would hang;
    in the caller's process it raises."""
    global _worker_failed
    if not single_thread:
        _set_up_worker(settings_json, single_thread, net_side, cnn_json, defer_edges, int8)
        return
    try:
        _set_up_worker(settings_json, single_thread, net_side, cnn_json, defer_edges, int8)
        _worker_failed = None
    except Exception as e:
        log.exception("a describing worker could not start")
        _worker_failed = f"{type(e).__name__}: {e}"


def _keep_freed_memory(mmap_threshold: int = 16 << 20, trim_threshold: int = 32 << 20) -> bool:
    """Let this process's allocator keep the memory it frees (glibc's ``mallopt``); True where it did.

    Describing a photo allocates and frees a few dozen arrays of 0.1 to 2 MB.  glibc hands the free top of its
    heap back to the system as soon as it exceeds twice the largest block freed so far, and each page it takes
    back later is faulted in and zeroed again: 2,800 page faults and 6 ms of system time per 12-megapixel
    JPEG, 45 ms in all (one core, Zen 4).  Blocks below ``mmap_threshold`` taken from the heap and up to
    ``trim_threshold`` of free heap kept: no fault, 39 ms, and the same peak memory (83 MB).  For the describing
    worker processes (a process of their own); elsewhere (not glibc: macOS, Windows, musl) nothing changes."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    # the mmap threshold first: setting either one ends glibc's own adjustment of both
    return bool(mallopt(m_mmap_threshold, int(mmap_threshold))) and bool(mallopt(m_trim_threshold, int(trim_threshold)))


def _set_up_worker(settings_json: str, single_thread: bool = True, net_side: int | None = None,
                   cnn_json: str | None = None, defer_edges: bool = False, int8: bool = True) -> None:
    """Per-process state of the describing jobs.  ``single_thread``: one OpenCV thread (a worker process; not
    for jobs run in the caller's process, whose setting stays); ``net_side``: return the CNN input for the
    writer to describe (batched on a GPU); ``cnn_json``: run the CNN here, on the CPU, in ONNX Runtime on one
    thread (the photos' GeM in its int8 graph where ``int8`` and the backbone has one that agrees with the float
    one here: ``cnn.int8_agrees``; the edge drawings in float, as the queries' drawings are described; each
    worker process takes one core; jobs run in the caller's process are one worker too);
    ``defer_edges``: leave the edge detection to the writer (batched on a GPU)."""
    global _worker_layout, _worker_net_side, _worker_cnn, _worker_draw, _worker_defer_edges
    _worker_defer_edges = defer_edges
    if single_thread:  # worker processes share the cores: one OpenCV thread each
        import cv2

        cv2.setNumThreads(1)
        _keep_freed_memory()
    _worker_layout = FeatureLayout.from_settings(SketchSettings.from_json(settings_json))
    _worker_net_side = net_side
    _worker_cnn = None
    if cnn_json:
        from .cnn import GemDescriber, GemSettings, photo_backend

        gem = GemSettings.from_json(cnn_json)
        _worker_cnn = GemDescriber(gem, "cpu", num_threads=1, backend=photo_backend(gem.backbone, int8))
        # The drawings stay in float: the expansion of the fused sketch search is anchored on the best hit of
        # the global sketch score, and int8 drawings moved it enough to cost 3-5 % of its mAP on held classes
        # (docs/benchmarks.md), where int8 photos cost nothing measurable.
        _worker_draw = GemDescriber(drawing_settings(gem.backbone), "cpu", num_threads=1, backend="onnx")
        _worker_net_side = gem.max_side


def _describe_job(job: tuple[str, str | None]) -> JobResult:
    if _worker_failed is not None:  # not a bad file: every job would fail the same way
        raise WorkerError(f"a worker process could not start describing photos: {_worker_failed}")
    path, old_hash = job
    size, mtime = 0, 0.0
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime
        h = content_hash(path)
        if h == old_hash:
            return JobResult(path, size, mtime, same=True)
        record, net = describe_file(Path(path), _worker_layout, h, _worker_net_side, _worker_defer_edges)
        if isinstance(record, Deferred):
            return JobResult(path, size, mtime, net_input=net, deferred=record)
        if _worker_cnn is not None:
            record = dataclasses.replace(record, gem=_worker_cnn.describe([net[0]])[0].astype(np.float16),
                                         sketch=_worker_draw.describe([net[1]])[0].astype(np.float16))
            net = None
        return JobResult(path, size, mtime, record=record, net_input=net)
    except ImageError as e:
        return JobResult(path, size, mtime, reason=e.reason)
    except OSError as e:
        return JobResult(path, size, mtime, reason=_reason(e))
    except Exception as e:  # a bad file must never stop a run
        log.exception("failed on %s", path)
        return JobResult(path, size, mtime, reason=f"{type(e).__name__}: {e}")


#: why a file or folder reached through a link into the index folder is not taken
INDEX_FOLDER = "inside the index folder: not a photo of the collection"


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _vanished(path: str) -> bool:
    """Whether a file no longer exists (not: cannot be reached now, e.g. permission denied)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return not os.path.lexists(path) or os.path.islink(path)
    except OSError:
        return False
    return False


def check_apart(db: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> None:
    """Refuse an index folder that is, or lies inside, or holds one of the photo folders (IndexNotFound):
    the index's files and the photos never share a folder."""
    d = os.path.realpath(Path(db).expanduser())
    for f in folders:
        f = Path(f).expanduser()
        if not f.is_dir():
            continue
        r = os.path.realpath(f)
        if _under(d, [r]) or _under(r, [d]):
            where = "is" if d == r else ("lies inside" if _under(d, [r]) else "holds")
            raise IndexNotFound(f"{db}: the index folder {where} the photo folder {f}; keep the index in a "
                                f"folder of its own", hint=Hint("other-folder", str(db)))


def index_folders(folders: Iterable[str | os.PathLike], db: str | os.PathLike, *,
                  settings: SketchSettings | None = None, backbone: str | None = "auto",
                  device: str | None = None, workers: int | None = None, prune: bool = False,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None, edges: str | None = None,
                  only: Callable[[str], bool] | None = None, image_index: bool = True, rebuild: bool = False,
                  follow_links: bool = False, int8: bool = True) -> IndexSummary:
    """Add every image under ``folders`` to the index folder ``db`` (created if needed).

    Unchanged files (same path, size and mtime) keep their descriptors, as do files whose bytes are
    unchanged (a touched file) and files moved or renamed (found by content hash).  Unreadable files
    are recorded as skipped with the reason.  Results are committed every few seconds, so a killed or
    cancelled run keeps what it did and the next run continues from there.

    Parameters
    ----------
    folders : folders (or single files) to index
    db : index folder
    settings : descriptor settings (default: the existing index's, else the defaults)
    backbone : CNN of the image descriptors ("efficientnet-lite0"), None / "none" for no image
        descriptors, "auto" (default): the existing index's, else efficientnet-lite0
    device : torch device of the CNN and of a learned edge detector (default: CUDA when present, else CPU)
    workers : worker processes (default: number of CPU cores)
    prune : drop catalogued photos under ``folders`` whose files no longer exist (default: keep them,
        e.g. for a drive that is not plugged in); what is under a folder that cannot be read is kept
    progress : called with (done, total) as photos are processed
    cancelled : polled between photos; when it returns True the run commits what it has and stops
        with ``Cancelled``
    edges : photo edge detector ("classical", "hed"); default: the existing index's (or ``settings``'),
        else "classical".  An index holds one kind of edges: another kind is refused (IndexFormatError)
    only : keep the files (absolute paths) for which it returns True (a shard's part of the folders)
    image_index : build the image index at the end (False: the caller builds it, ``engine.shards``)
    rebuild : rebuild an index of another format version, or one whose catalog is damaged, from scratch
        (default: refuse it with IndexFormatError)
    follow_links : also follow links to folders outside ``folders`` (default: only links inside them)
    int8 : on the CPU, describe the photos with the network's int8 graph where it agrees with the float one on
        this machine (``cnn.int8_agrees``; about twice as fast, mean cosine 0.993 to the float vectors); False: the
        float graph

    Raises
    ------
    FileNotFoundError : a folder does not exist
    IndexNotFound : ``db`` is a folder that is not an index (not empty), or is (or holds) a photo folder
    IndexLocked : another process is writing the index
    IndexFormatError : the index was built with other settings or another format version
    IndexWriteError : the index cannot be written (disk full...); what was committed before is kept
    Cancelled
    """
    db = Path(db)
    if db.exists() and not db.is_dir():
        raise IndexNotFound(f"{db}: exists and is not a folder; an index is a folder")
    folders = list(folders)
    check_apart(db, folders)
    found = scan_folders(folders, follow_links=follow_links, exclude=[db])
    files, skipped = found.files, found.skipped
    if only is not None:  # a shard's part: its files, and what the scan skipped among them
        files = [f for f in files if only(str(f))]
        skipped = [s for s in skipped if only(s[0])]
    scan_skipped = list(skipped)
    roots = sorted({str(Path(f).expanduser().resolve()) for f in folders}
                   | {os.path.abspath(Path(f).expanduser()) for f in folders})  # as scan_folders records skips
    settings, image_json = resolve_settings(db, settings, backbone, edges)
    defer = defer_edges(settings.detector, device)
    layout = FeatureLayout.from_settings(settings) if defer else None
    detector = get_detector(settings.detector) if defer else None
    extractor = None
    if image_json:
        from .cnn import GemSettings
        from .imageindex import Extractor

        extractor = Extractor(GemSettings.from_json(image_json), device)
    # the writer runs the CNN in batches on a GPU; on the CPU each job runs it on its own photo, on one thread,
    # in the worker processes or, with one worker, in this one (the writer's CNN on every core, alternating
    # with the edge code photo by photo, kept its threads spinning: 6 to 10 times slower on two busy cores)
    batched = extractor is not None and extractor.describer.device.type != "cpu"
    net_side = extractor.describer.settings.max_side if batched else None
    cnn_json = image_json if extractor is not None and not batched else None
    with IndexWriter(db, settings, image_settings=image_json, image_dim=extractor.describer.dim if extractor
                     else 0, rebuild=rebuild) as w:
        _record_folders(w, folders)
        known = w.known()
        todo, stats, reused, upgrade = _compare(files, known, skipped, scan_skipped)
        todo, moves = _find_moves(todo, stats, known)
        w.rename(moves)
        w.note_skipped(scan_skipped)
        total = len(files)
        done = total - len(todo)
        if progress:
            progress(done, total)
        described, same, upgraded = 0, 0, 0
        pending = _Pending(w, extractor if batched else None, layout, detector)
        try:
            for res in run_jobs(todo, settings, workers, net_side, cnn_json, defer, int8=int8):
                if res.same:
                    pending.touched.append((res.path, res.size, res.mtime))
                    same += 1
                elif res.record is None and res.deferred is None and res.path in upgrade:
                    # described again for its edge cells and failed now: the photo keeps what it had
                    pending.touched.append((res.path, res.size, res.mtime))
                    same += 1
                elif res.record is None and res.deferred is None:
                    pending.skipped.append((res.path, res.size, res.mtime, res.reason or "unknown error"))
                    skipped.append((res.path, res.reason or "unknown error"))
                else:
                    pending.records.append(res.record if res.record is not None else res.deferred)
                    pending.net.append(res.net_input)
                    described += 1
                    upgraded += res.path in upgrade
                done += 1
                if progress:
                    progress(done, total)
                if pending.due():
                    pending.flush()
                if cancelled is not None and cancelled():
                    pending.flush()
                    w.compact()
                    if image_index:
                        _update_image_index(w, db, extractor)
                    raise Cancelled(f"indexing cancelled after {done} of {total} files; what was indexed is "
                                    f"kept and the next run continues from there")
            pending.flush()
        except KeyboardInterrupt:
            pending.flush()  # keep what was done
            raise
        gone = _gone(w, known, set(stats) | {p for p, _ in skipped}, _moved_from(moves, known), roots,
                     found.unreadable)
        removed = w.remove(gone) if prune else 0
        w.compact()
        w.fill_dates()
        if image_index:
            _update_image_index(w, db, extractor)
        n = w.con.execute("SELECT COUNT(*) FROM files WHERE status = 'indexed'").fetchone()[0]
    missing = 0 if prune else len(gone)
    return IndexSummary(n, described, reused + same + len(moves), tuple(skipped), removed, len(moves), missing,
                        upgraded)


def _record_folders(w: IndexWriter, folders) -> None:
    """Add the folders of this run to the catalog's list of indexed folders (meta ``folders``: what the app's
    folder filter offers)."""
    import json

    try:
        had = set(json.loads(w.meta().get(FOLDERS_META, "[]")))
    except (ValueError, TypeError):
        had = set()
    now = sorted(had | {os.path.realpath(f) for f in folders})
    if now != sorted(had):
        w.set_meta(FOLDERS_META, json.dumps(now))


def _compare(files: list, known: dict, skipped: list, scan_skipped: list):
    """The scanned files against the catalog: (jobs (path, catalogued hash or None), stat of each file, files kept
    as they are, unchanged photos described again because an earlier version kept no edge cells of them (their
    boxes are fitted once they have them: ``engine.boxes``)).  Files gone since the scan, and unchanged files
    catalogued as skipped, join ``skipped`` (and the former ``scan_skipped``)."""
    todo: list[tuple[str, str | None]] = []
    stats: dict[str, os.stat_result] = {}
    upgrade: set[str] = set()
    reused = 0
    for f in files:
        key = str(f)
        try:
            st = os.stat(f)
        except OSError as e:  # gone since the scan
            skipped.append((key, _reason(e)))
            scan_skipped.append((key, _reason(e)))
            continue
        stats[key] = st
        k = known.get(key)
        if k is not None and k.size == st.st_size and k.mtime == st.st_mtime:
            if k.status == "skipped":
                skipped.append((key, k.reason or "unreadable"))
            elif not k.cells:  # described by an earlier version, without the edge cells its boxes are fitted to
                todo.append((key, None))
                upgrade.add(key)
            else:
                reused += 1
        else:
            todo.append((key, k.hash if k is not None else None))
    return todo, stats, reused, upgrade


class _Pending:
    """The workers' results waiting for the writer, committed by :meth:`flush` (every ``FLUSH_EVERY`` photos or
    ``FLUSH_SECONDS``: :meth:`due`).  ``extractor``: the CNN runs here, batched on the writer's device (None: the
    workers ran it); ``layout`` / ``detector``: the edge detector runs here on deferred photos (a GPU)."""

    def __init__(self, writer: IndexWriter, extractor, layout: FeatureLayout | None, detector) -> None:
        self.writer, self.extractor, self.layout, self.detector = writer, extractor, layout, detector
        self.records: list = []  # PhotoRecord, or Deferred until flushed
        self.net: list = []  # the records' CNN inputs (photo, edges drawn) where the CNN runs here
        self.skipped: list = []
        self.touched: list = []
        self.last = time.monotonic()

    def due(self) -> bool:
        return len(self.records) >= FLUSH_EVERY or time.monotonic() - self.last >= FLUSH_SECONDS

    def flush(self) -> None:
        records, batched = self.records, self.extractor is not None
        deferred = [i for i, r in enumerate(records) if isinstance(r, Deferred)]
        if deferred:  # the edge detector, batched, on the writer's GPU
            done = finish_deferred([records[i] for i in deferred], self.layout, self.detector, drawings=batched)
            for i, (r, draw) in zip(deferred, done, strict=True):
                records[i] = r
                if batched:
                    self.net[i] = (self.net[i][0], draw)
        if batched and records:  # the CNN, batched, on the writer's device
            gem = self.extractor.describe([n[0] for n in self.net])
            sketch = self.extractor.describe_drawings([n[1] for n in self.net])
            records[:] = [dataclasses.replace(r, gem=g, sketch=k) for r, g, k in zip(records, gem, sketch, strict=True)]
        self.writer.add(records, self.skipped, self.touched)
        for v in (self.records, self.net, self.skipped, self.touched):
            v.clear()
        self.last = time.monotonic()


def _gone(w: IndexWriter, known: dict, seen: set[str], moved_from: set[str], roots: list[str],
          unreadable: list[str]) -> list[str]:
    """Catalogued photos under the run's folders that it did not see and whose files no longer exist -- not
    those under a folder that could not be read (not a deletion), nor those that still exist (a scan race).
    Files catalogued as skipped that the run did not see are forgotten here (deleted, or no longer skipped)."""
    unseen = [p for p, k in known.items() if p not in seen and p not in moved_from and _under(p, roots)
              and not _under(p, unreadable)]
    w.forget_skipped([p for p in unseen if known[p].status == "skipped"])
    return [p for p in unseen if known[p].status == "indexed" and _vanished(p)]


def _moved_from(moves, known) -> set[str]:
    by_id = {k.id: p for p, k in known.items()}
    return {by_id[m[0]] for m in moves}


def _find_moves(todo: list[tuple[str, str | None]], stats: dict[str, os.stat_result], known: dict) \
        -> tuple[list[tuple[str, str | None]], list[tuple[int, str, int, float]]]:
    """New files that are catalogued photos under another path that no longer exists (same size and
    content hash): returns the files still to describe and the moves (id, new path, size, mtime)."""
    new = [p for p, old in todo if p not in known]
    if not new:
        return todo, []
    seen = set(stats)
    by_size: dict[int, list] = defaultdict(list)
    for p, k in known.items():
        if k.status == "indexed" and k.hash and p not in seen:
            by_size[k.size].append(k)
    moves, taken = [], set()
    for p in new:
        size = stats[p].st_size
        candidates = [k for k in by_size.get(size, ()) if k.id not in taken]
        if not candidates:
            continue
        candidates = [k for k in candidates if not os.path.exists(k.path)]
        if not candidates:
            continue
        try:
            h = content_hash(p)
        except OSError:
            continue
        for k in candidates:
            if k.hash == h:
                moves.append((k.id, p, size, stats[p].st_mtime))
                taken.add(k.id)
                break
    moved = {m[1] for m in moves}
    return [t for t in todo if t[0] not in moved], moves


def _update_image_index(w: IndexWriter, db, extractor) -> None:
    """Rebuild the image index when photos were described or removed since it was built (also by an
    earlier run that was killed before building it)."""
    if extractor is None:
        return
    if w.image_index_stale():
        w.build_image_index()


def _use_pool(workers: int | None, n_jobs: int) -> bool:
    """Whether jobs run in worker processes (else in this process)."""
    return worker_count(workers) > 1 and n_jobs >= 4


def worker_count(workers: int | None) -> int:
    """The describing processes of a run: ``workers`` (None: one per core this process may use), at most one per
    core (at least 2 where 2 or more were asked for): more only contend for the cores (200 on 2: 15 times slower)."""
    from .search import available_cores

    cores = available_cores()
    return max(1, min(workers or cores, max(cores, 2)))


def run_jobs(jobs: list[tuple[str, str | None]], settings: SketchSettings, workers: int | None,
              net_side: int | None = None, cnn_json: str | None = None,
              defer_edges: bool = False, *, int8: bool = True) -> Iterator[JobResult]:
    """Describe files in worker processes (results in completion order); ``int8``: as in ``index_folders``."""
    if not _use_pool(workers, len(jobs)):
        _init_worker(settings.to_json(), single_thread=False, net_side=net_side, cnn_json=cnn_json,
                     defer_edges=defer_edges, int8=int8)
        yield from map(_describe_job, jobs)
        return
    workers = worker_count(workers)
    ctx = mp.get_context("spawn")
    # one BLAS / OpenMP thread per worker: the workers already use every core, more threads only contend
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(settings.to_json(), True, net_side, cnn_json,
                                                                         defer_edges, int8))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pool:  # leaving the block (also by an exception) terminates the workers
        yield from pool.imap_unordered(_describe_job, jobs, chunksize=2)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


__all__ = ["IndexSummary", "JobResult", "index_folders", "run_jobs", "scan"]
