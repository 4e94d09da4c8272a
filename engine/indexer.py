"""Building a sketch index from folders of photos."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .afm import FeatureLayout, database_descriptor
from .edges import photo_edges
from .errors import Cancelled, IndexFormatError, IndexNotFound, SketchSearchError
from .imageio import IMAGE_EXTENSIONS, ImageError, load_image
from .settings import SketchSettings
from .store import PhotoRecord, SketchIndex, read_settings, write_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexSummary:
    """What an index run did."""

    indexed: int  # photos in the index after the run
    described: int  # photos whose descriptor was computed in this run
    reused: int  # unchanged photos whose descriptor was kept
    skipped: tuple[tuple[str, str], ...]  # (path, reason)
    removed: int  # photos no longer found


def scan(folders: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files (by extension) under the folders, sorted, each once; symlink loops are not followed.

    Returns
    -------
    files : list of Path
    skipped : list of (path, reason) for files that cannot be catalogued (a name that is not valid UTF-8)

    Raises
    ------
    FileNotFoundError naming the first folder that does not exist.
    """
    found: set[Path] = set()
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder")
        if root.is_file():
            found.add(root.resolve())
            continue
        for dirpath, _dirs, files in os.walk(root, followlinks=False):
            for name in files:
                if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                    found.add((Path(dirpath) / name).resolve())
    files, skipped = [], []
    for f in sorted(found):
        try:
            str(f).encode("utf-8")
            files.append(f)
        except UnicodeEncodeError:
            skipped.append((str(f).encode("utf-8", "replace").decode("utf-8"), "file name is not valid UTF-8"))
    return files, skipped


def describe_photo(path: Path, layout: FeatureLayout) -> PhotoRecord:
    """Load one photo, detect its edges and encode it (raises ImageError)."""
    st = path.stat()
    settings = layout.settings
    image = load_image(path, max_side=settings.max_side)
    # given the LoadedImage, edges.scale is working pixels per *original* pixel (reduced decoding included)
    edges = photo_edges(image, detector=settings.detector, max_side=settings.max_side,
                        min_strength=settings.min_strength)
    desc = database_descriptor(edges, layout)
    return PhotoRecord(str(path), st.st_size, st.st_mtime, image.original_size[0], image.original_size[1],
                       edges.width, edges.height, edges.scale, len(edges), desc.codes, desc.inv_norms)


_worker_layout: FeatureLayout | None = None


def _init_worker(settings_json: str, single_thread: bool = True) -> None:
    global _worker_layout
    if single_thread:  # worker processes share the cores: one OpenCV thread each
        import cv2

        cv2.setNumThreads(1)
    _worker_layout = FeatureLayout.from_settings(SketchSettings.from_json(settings_json))


def _describe_job(path: str) -> tuple[str, PhotoRecord | None, str | None]:
    try:
        return path, describe_photo(Path(path), _worker_layout), None
    except (ImageError, OSError) as e:
        return path, None, getattr(e, "reason", None) or str(e)
    except Exception as e:  # a bad file must never stop a run
        log.exception("failed on %s", path)
        return path, None, f"{type(e).__name__}: {e}"


def _previous(db: Path, settings: SketchSettings) -> dict[str, PhotoRecord]:
    """Records of an existing index with the same settings, by path (empty when there is none)."""
    try:
        old = read_settings(db)
    except IndexNotFound:
        return {}
    except IndexFormatError as e:
        log.warning("%s; rebuilding it from scratch", e)
        return {}
    if old != settings:
        raise IndexFormatError(f"{db}: index was built with other settings; use another --db or delete it")
    try:
        return SketchIndex(db).records()
    except (IndexFormatError, sqlite3.Error) as e:
        log.warning("%s: %s; rebuilding it from scratch", db, e)
        return {}


def index_folders(folders: Iterable[str | os.PathLike], db: str | os.PathLike, *,
                  settings: SketchSettings | None = None, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> IndexSummary:
    """Index every image under ``folders`` into the index folder ``db``.

    Unchanged files (same path, size and mtime) of an existing index keep their descriptors; files
    that no longer exist are dropped.  Unreadable files are skipped and listed with the reason.

    Parameters
    ----------
    folders : folders (or single files) to index
    db : index folder
    settings : descriptor settings (default: the existing index's, else the defaults)
    workers : worker processes (default: number of CPU cores)
    progress : called with (done, total) as photos are processed
    cancelled : polled between photos; when it returns True the run stops with ``Cancelled`` and the
        index on disk is left as it was
    """
    db = Path(db)
    if db.exists() and not db.is_dir():
        raise IndexNotFound(f"{db}: exists and is not a folder; an index is a folder")
    files, unnamed = scan(folders)
    if settings is None:
        try:
            settings = read_settings(db)
        except (IndexNotFound, IndexFormatError):  # none yet, or one that must be rebuilt
            settings = SketchSettings()
    previous = _previous(db, settings)
    keep: dict[str, PhotoRecord] = {}
    todo: list[str] = []
    for f in files:
        key = str(f)
        old = previous.get(key)
        st = f.stat() if f.exists() else None
        if old is not None and st is not None and old.size == st.st_size and old.mtime == st.st_mtime:
            keep[key] = old
        else:
            todo.append(key)
    total = len(files)
    done = len(keep)
    if progress:
        progress(done, total)
    records = dict(keep)
    skipped: list[tuple[str, str]] = list(unnamed)
    for path, record, reason in _run_jobs(todo, settings, workers):
        if cancelled is not None and cancelled():
            raise Cancelled("indexing cancelled; the index was left unchanged")
        if record is None:
            skipped.append((path, reason or "unknown error"))
        else:
            records[path] = record
        done += 1
        if progress:
            progress(done, total)
    n = write_index(db, settings, records.values(), skipped)
    removed = len(set(previous) - set(records))
    return IndexSummary(n, len(todo) - (len(skipped) - len(unnamed)), len(keep), tuple(skipped), removed)


def _run_jobs(paths: list[str], settings: SketchSettings, workers: int | None) -> Iterator[tuple]:
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(paths) < 4:
        _init_worker(settings.to_json(), single_thread=False)
        yield from map(_describe_job, paths)
        return
    ctx = mp.get_context("spawn")
    # one BLAS / OpenMP thread per worker: the workers already use every core, more threads only contend
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(settings.to_json(),))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pool:
        yield from pool.imap(_describe_job, paths, chunksize=4)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


__all__ = ["IndexSummary", "SketchSearchError", "describe_photo", "index_folders", "scan"]
