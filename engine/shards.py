"""A collection split into shards: each a normal index, listed by a small manifest (issue "scale out").

A manifest is a JSON file (``--db photos.json``); its shards are index folders beside it
(``photos.shard-000``, ...), or wherever its ``shards`` list says inside the manifest's folder (relative
paths without ``..``; on a cluster, the manifest's folder is on a file system every worker sees)::

    {"format": "sketchsearch-manifest", "version": 1, "id": "...", "partition": "path-hash",
     "n_shards": 4, "settings": {...}, "image_settings": {...} | null,
     "shards": ["photos.shard-000", ...], "learned": "<id>" | null}

* **Partition.** A photo belongs to shard ``blake2b(absolute path) mod n_shards``: the same shard on
  every run, so each shard is indexed incrementally, resumed and pruned exactly like a single index.
  (A photo moved to another path may change shard: it is described again there, and the old entry stays
  in its shard until ``--prune``.)
* **Settings.** The manifest holds the collection's sketch and image settings; every shard records the
  manifest's id and its place in it, and a shard built with other settings or for another manifest is
  refused (``IndexFormatError`` naming it).
* **Learned parameters.** What an index learns on its own photos for image search (the bases its image
  descriptors are stored in, the whitening of the
  image descriptors) and for the fused sketch score (the mean of the global sketch descriptors) is
  learned once on all the shards (``learned-<id>.npz`` beside the manifest) and every shard's image index
  is built with it: the shards' vectors live in one space, and a sharded collection ranks as one index of
  the same photos.  A shard whose image index was built with other parameters (an interrupted run) counts
  as not ready: sketch search uses the alignment alone and image search asks for an index run, until
  the next run relearns them.
* **Searching** (``ShardedIndex``) opens the shards in this process (``engine.shardsearch``); on a cluster,
  ``engine.cluster`` keeps them open in Dask actors.  A shard that is not there yet (the first run is going
  on, or was killed) is left out of every search with a partial-results warning.
* **Validation.** Every field of a manifest is checked on loading (shard paths inside the manifest's
  folder, the learned parameters' id a plain token...): a crafted manifest gets a one-line
  ``IndexFormatError`` naming the field, never a file written or deleted outside the collection.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from .atomic import atomic_write
from .catalog import CatalogReader, RowBlocks, read_meta
from .collection import Collection, SketchIndex
from .describe import resolve_settings
from .errors import Hint, IndexFormatError, IndexNotFound, SketchSearchError
from .rotation import POLAR_DIM
from .settings import FORMAT_VERSION, SketchSettings
from .writer import IndexWriter

__all__ = ["LocalRunner", "Manifest", "ShardedIndex", "index_sharded", "is_manifest", "open_collection", "shard_of"]

MANIFEST_FORMAT = "sketchsearch-manifest"
MANIFEST_VERSION = 1
SHARD_META = "shard"  # meta key of a shard: {"manifest": id, "index": i, "of": n}
MAX_LEARN_SAMPLES = 100_000  # learn_whitening's own cap
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a manifest's id and its learned parameters' id


def shard_of(path: str, n: int) -> int:
    """The shard of a file (absolute path) in a collection of ``n`` shards."""
    h = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
    return int.from_bytes(h, "little") % n


def is_manifest(path: str | os.PathLike) -> bool:
    """Whether ``--db`` names a manifest: a JSON file (existing, or to be made: a ``.json`` name)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return False
    if p.is_file():
        try:
            with open(p, "rb") as f:
                return f.read(1) == b"{"
        except OSError:
            return False
    return p.suffix.lower() == ".json"


@dataclass
class Manifest:
    """The list of a collection's shards and its settings (see the module docstring)."""

    path: Path
    id: str
    n_shards: int
    settings: SketchSettings
    image_settings: str | None
    shards: list[str]
    learned: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        p = Path(path).expanduser().absolute()
        if not p.is_file():
            raise IndexNotFound(f"{p}: no such manifest", hint=Hint("build-sharded", str(p)))
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
                raise ValueError("not a sketchsearch manifest")
        except (ValueError, UnicodeDecodeError) as e:
            raise IndexFormatError(f"{p}: not a readable sketchsearch manifest ({e})") from None
        except OSError as e:
            raise IndexFormatError(f"{p}: cannot read the manifest ({e.strerror or e})") from None
        if d.get("version") != MANIFEST_VERSION:
            raise IndexFormatError(f"{p}: manifest version {d.get('version')}, this sketchsearch reads "
                                   f"{MANIFEST_VERSION}")

        def bad(field: str, why: str) -> IndexFormatError:
            return IndexFormatError(f"{p}: manifest field '{field}' {why}; this is not a manifest sketchsearch "
                                    f"wrote: remake it with sketchsearch index FOLDER --db NEW.json --shards N")

        for field in ("id", "n_shards", "settings", "shards"):
            if field not in d:
                raise bad(field, "is missing")
        if not isinstance(d["id"], str) or not _TOKEN.match(d["id"]):
            raise bad("id", "must be a plain name (letters, digits, - and _)")
        n = d["n_shards"]
        if type(n) is not int or n < 1:
            raise bad("n_shards", f"must be a whole number of at least 1, not {n!r}")
        shards = d["shards"]
        if not isinstance(shards, list) or not all(isinstance(x, str) for x in shards):
            raise bad("shards", "must be a list of folder names")
        if len(shards) != n:
            raise bad("n_shards", f"is {n} but 'shards' lists {len(shards)} folders")
        for x in shards:
            why = _inside_problem(x)
            if why:
                raise bad("shards", f"holds {x!r}, {why}")
        if len(set(shards)) != len(shards):
            raise bad("shards", "lists a folder twice")
        learned = d.get("learned")
        if learned is not None and (not isinstance(learned, str) or not _TOKEN.match(learned)):
            raise bad("learned", "must be a plain name (letters, digits, - and _) or null")
        try:
            if not isinstance(d["settings"], dict):
                raise TypeError("not a JSON object")
            settings = SketchSettings.from_json(json.dumps(d["settings"]))
        except (ValueError, TypeError) as e:
            raise bad("settings", f"is damaged ({e})") from None
        image = d.get("image_settings")
        if image is not None and (not isinstance(image, dict) or not isinstance(image.get("backbone"), str)):
            raise bad("image_settings", "must be an object naming a backbone, or null")
        return cls(p, d["id"], n, settings, json.dumps(image) if image else None, list(shards), learned)

    @classmethod
    def create(cls, path: str | os.PathLike, n_shards: int, settings: SketchSettings,
               image_settings: str | None) -> Manifest:
        p = Path(path).expanduser().absolute()
        if n_shards < 1:
            raise SketchSearchError(f"a collection needs at least 1 shard, not {n_shards}")
        stem = p.name[: -len(p.suffix)] if p.suffix else p.name
        m = cls(p, uuid.uuid4().hex[:12], n_shards, settings, image_settings,
                [f"{stem}.shard-{i:03d}" for i in range(n_shards)])
        m.save()
        return m

    def save(self) -> None:
        d = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "id": self.id, "partition": "path-hash",
             "n_shards": self.n_shards, "settings": json.loads(self.settings.to_json()),
             "image_settings": json.loads(self.image_settings) if self.image_settings else None,
             "shards": self.shards, "learned": self.learned}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:6]}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def shard_path(self, i: int) -> Path:
        p = Path(self.shards[i]).expanduser()
        return p if p.is_absolute() else self.path.parent / p

    def learned_path(self, lid: str | None = None) -> Path:
        stem = self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name
        return self.path.parent / f"{stem}.learned-{lid or self.learned}.npz"

    def shard_record(self, i: int) -> str:
        return json.dumps({"manifest": self.id, "index": i, "of": self.n_shards})

    def check_shard(self, i: int, meta: dict[str, str]) -> None:
        """Refuse a shard built with other settings or for another manifest (IndexFormatError)."""
        db = self.shard_path(i)
        if SketchSettings.from_json(meta["settings"]) != self.settings:
            raise IndexFormatError(f"{db}: shard {i} of {self.path} was built with other sketch settings than the "
                                   f"manifest's; rebuild it (delete the folder and run sketchsearch index FOLDER "
                                   f"--db {self.path})")
        if (meta.get("image_settings") or None) != self.image_settings:
            raise IndexFormatError(f"{db}: shard {i} of {self.path} was built with other image settings than the "
                                   f"manifest's; rebuild it (delete the folder and run sketchsearch index FOLDER "
                                   f"--db {self.path})")
        rec = meta.get(SHARD_META)
        if rec is not None and json.loads(rec) != json.loads(self.shard_record(i)):
            raise IndexFormatError(f"{db}: this index is shard {json.loads(rec)} of another collection, not shard "
                                   f"{i} of {self.n_shards} of {self.path}")


def _inside_problem(name: str) -> str | None:
    """Why a shard path of a manifest would lead out of the manifest's folder (None: it does not)."""
    win, posix = PureWindowsPath(name), PurePosixPath(name)
    if not name.strip() or name in (".", "./"):
        return "which is not a folder name"
    if posix.is_absolute() or win.is_absolute() or win.drive or win.root or name.startswith("~"):
        return "an absolute path (shards lie inside the manifest's folder)"
    if ".." in win.parts:
        return "which leads out of the manifest's folder (..)"
    return None


def _save_learned(path: Path, learned) -> None:
    arrays = {}
    if learned.whitening is not None:
        arrays.update(mean=learned.whitening.mean, projection=learned.whitening.projection)
    if learned.sketch_mean is not None:
        arrays["sketch_mean"] = learned.sketch_mean
    for name, basis in (("image", learned.image_basis), ("sketch", learned.sketch_basis)):
        if basis is not None:
            arrays.update({f"{name}_basis_mean": basis.mean, f"{name}_basis_components": basis.components,
                           f"{name}_basis_n": np.int64(basis.n)})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    with contextlib.suppress(FileNotFoundError):  # left by a run that was killed while writing it
        path.with_name(f".{path.name}.tmp").unlink()
    atomic_write(path, write, tmp=path.with_name(f".{path.name}.tmp"))


# --------------------------------------------------------------------------------------------------
# Searching a manifest in this process


class ShardedIndex(Collection):
    """A sharded collection opened in this process: the SketchIndex API (``search``, ``search_image``,
    ``lookup``, ``polar``, ``info``...) over all its shards, rows numbered shard after shard."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.manifest = Manifest.load(path)
        self.path = self.manifest.path
        self.settings = self.manifest.settings
        self.image_settings = self.manifest.image_settings
        self.indexes = []
        #: shards that are not there (yet): path -> why; every search leaves them out with a warning
        self.absent: dict[str, str] = {}
        for i in range(self.manifest.n_shards):
            db = self.manifest.shard_path(i)
            try:
                meta = read_meta(db)
            except IndexNotFound:
                self.absent[str(db)] = (f"shard {i} of {self.path} is not indexed yet; run: sketchsearch index "
                                        f"FOLDER --db {self.path}")
                continue
            self.manifest.check_shard(i, meta)
            self.indexes.append(SketchIndex(db))
        self.n_skipped = sum(ix.n_skipped for ix in self.indexes)

    def __len__(self) -> int:
        return sum(len(ix) for ix in self.indexes)

    @cached_property
    def shards(self):
        from .collection import LocalShards
        from .shardsearch import ShardSearcher

        shards = LocalShards([ShardSearcher(ix) for ix in self.indexes], [str(ix.path) for ix in self.indexes])
        mark_stale(shards.summaries, self.manifest)
        return shards

    def search(self, sketch, **kwargs):
        hits = super().search(sketch, **kwargs)
        self._warn_absent()
        return hits

    def search_image(self, image, **kwargs):
        hits = super().search_image(image, **kwargs)
        self._warn_absent()
        return hits

    def _warn_absent(self) -> None:
        """The partial-results warning of every search while shards are absent."""
        if self.absent:
            import warnings

            from .collection import PartialResults, PartialResultWarning

            names = [*(str(ix.path) for ix in self.indexes), *self.absent]
            missing = {len(self.indexes) + j: why for j, why in enumerate(self.absent.values())}
            warnings.warn(PartialResults(missing, self.manifest.n_shards).message(names), PartialResultWarning,
                          stacklevel=3)

    def lookup(self, rows: Sequence[int]):
        rows = np.asarray(list(rows), np.int64)
        out: list = [None] * len(rows)
        for i, local in self.shards.split(rows).items():
            where = np.flatnonzero(np.searchsorted(self.shards.offsets, rows, side="right") - 1 == i)
            for j, m in zip(where.tolist(), self.indexes[i].lookup(local.tolist()), strict=True):
                out[j] = m
        return out

    @cached_property
    def polar(self):
        from .compact import Dequantised

        views = [ix.polar for ix in self.indexes if len(ix)]
        if not views:
            return np.zeros((0, POLAR_DIM), np.float32)
        return views[0] if len(views) == 1 else Dequantised(RowBlocks([v.codes for v in views]),
                                                            RowBlocks([v.scales for v in views]))

    @property
    def paths(self) -> list[str]:
        return [p for ix in self.indexes for p in ix.paths]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return sorted(s for ix in self.indexes for s in ix.skipped)

    def images(self, device=None):
        raise SketchSearchError(f"{self.path}: a sharded collection's image descriptors stay in its shards")

    def info(self) -> dict:
        infos = [ix.info() for ix in self.indexes]
        first = infos[0] if infos else {  # no shard is there yet
            "settings": json.loads(self.settings.to_json()),
            "image_settings": json.loads(self.image_settings) if self.image_settings else None,
            "bytes_per_image": self.settings.dim + len(self.settings.scales) * 3 * 4 + 8,
            "rotation_bytes_per_image": POLAR_DIM * 2}
        parts: dict[str, int] = {}
        for inf in infos:
            for k, v in inf["bytes_on_disk"].items():
                parts[k] = parts.get(k, 0) + v
        with contextlib.suppress(OSError):
            parts["manifest"] = self.path.stat().st_size + (self.manifest.learned_path().stat().st_size
                                                            if self.manifest.learned else 0)
        ready = [s.image_index for s in self.shards.summaries]
        image_index = None
        if self.image_settings and all(ready):
            image_index = {"n": sum(r["n"] for r in ready), "note": f"{len(ready)} shards; " + ready[0]["note"]}
        return {"path": str(self.path), "images": len(self), "skipped": self.n_skipped, "image_index": image_index,
                "format_version": FORMAT_VERSION, "settings": first["settings"],
                "image_settings": first["image_settings"], "descriptor_dim": self.settings.dim,
                "bytes_on_disk": parts, "bytes_per_image": first["bytes_per_image"],
                "rotation_bytes_per_image": first["rotation_bytes_per_image"],
                "image_bytes_per_image": max([inf["image_bytes_per_image"] for inf in infos], default=0),
                "manifest": {"id": self.manifest.id, "n_shards": self.manifest.n_shards, "partition": "path-hash",
                             "learned": self.manifest.learned},
                "shards": [{"path": inf["path"], "images": inf["images"], "skipped": inf["skipped"]} for inf in infos]
                + [{"path": db, "images": 0, "skipped": 0, "missing": why} for db, why in self.absent.items()]}


def mark_stale(summaries: list, manifest: Manifest) -> None:
    """Shards whose image index was not built with the manifest's learned parameters: not ready (their
    ``ShardSummary`` in the list is replaced by one without an image index)."""
    for i, s in enumerate(summaries):
        rec = s.image_index
        if rec is not None and (manifest.learned is None or rec.get("learned") != manifest.learned):
            summaries[i] = dataclasses.replace(s, image_index=None)


def open_collection(db: str | os.PathLike):
    """An index folder (SketchIndex) or a manifest (ShardedIndex), opened for searching."""

    return ShardedIndex(db) if is_manifest(db) else SketchIndex(db)


# --------------------------------------------------------------------------------------------------
# Indexing a manifest


@dataclass(frozen=True)
class ShardJob:
    """Everything one shard's indexing needs (sent to a worker)."""

    folders: tuple[str, ...]
    db: str
    index: int
    n_shards: int
    record: str  # the shard's SHARD_META value
    settings: str
    image_settings: str | None
    device: str | None
    workers: int | None
    prune: bool
    rebuild: bool = False
    follow_links: bool = False


def index_shard(job: ShardJob, report: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None):
    """Index one shard's part of the folders (run by a worker, or in this process)."""
    from .indexer import index_folders

    settings = SketchSettings.from_json(job.settings)
    with IndexWriter(job.db, settings, image_settings=job.image_settings, rebuild=job.rebuild) as w:
        if w.meta().get(SHARD_META) not in (None, job.record):
            raise IndexFormatError(f"{job.db}: this index is shard {w.meta()[SHARD_META]} of another collection")
        w.set_meta(SHARD_META, job.record)
    backbone = json.loads(job.image_settings)["backbone"] if job.image_settings else "none"
    i, n = job.index, job.n_shards
    return index_folders(list(job.folders), job.db, settings=settings, backbone=backbone, device=job.device,
                         workers=job.workers, prune=job.prune, progress=report, cancelled=cancelled,
                         only=lambda p: shard_of(p, n) == i, image_index=False, follow_links=job.follow_links)


def shard_count(db: str) -> tuple[int, bool]:
    """(indexed photos, whether the image index must be rebuilt) of a shard."""
    from .imageindex import stale

    with CatalogReader(Path(db)) as con:
        n = con.execute("SELECT COUNT(*) FROM files WHERE status = 'indexed'").fetchone()[0]
    return n, stale(read_meta(Path(db)), Path(db))


def build_shard_image_index(db: str, learned_file: str, lid: str) -> dict:
    """Build a shard's image index with the collection's learned parameters (run by a worker)."""
    learned = _load_learned_file(Path(learned_file), lid)
    with IndexWriter.existing(db) as w:
        return w.build_image_index(learned=learned)


def _load_learned_file(path: Path, lid: str):
    """The collection's learned image parameters (``engine.imageindex.Learned``) from their file."""
    from .compact import Basis
    from .imageindex import Learned
    from .imagesearch import Whitening

    with np.load(path) as z:
        white = Whitening(z["mean"], z["projection"]) if "projection" in z else None
        mean = z["sketch_mean"] if "sketch_mean" in z else None
        bases = [Basis(z[f"{k}_basis_mean"], z[f"{k}_basis_components"], int(z[f"{k}_basis_n"]))
                 if f"{k}_basis_components" in z else None for k in ("image", "sketch")]
    return Learned(white, mean, lid, *bases)


class LocalRunner:
    """Runs shard jobs one after the other in this process (each with its own worker processes)."""

    def __init__(self, cancelled: Callable[[], bool] | None = None) -> None:
        self.cancelled = cancelled

    @property
    def n_workers(self) -> int:
        return 1

    def run_shards(self, jobs: list[ShardJob], progress: Callable[[int, int], None] | None, total: int | None):
        seen: dict[int, tuple[int, int]] = {}

        def report_for(i: int):
            def report(done: int, tot: int) -> None:
                seen[i] = (done, tot)
                if progress:
                    progress(sum(d for d, _ in seen.values()), max(total or 0, sum(t for _, t in seen.values())))
            return report

        return [index_shard(job, report_for(job.index), self.cancelled) for job in jobs]

    def map(self, fn: Callable, args: list[tuple]) -> list:
        return [fn(*a) for a in args]


def _manifest_for(manifest: Path, settings: SketchSettings | None, backbone: str | None, edges: str | None,
                      n_shards: int | None, *, default_shards: int = 2):
    """The manifest of the run: the existing one (refusing other settings) or a new one."""
    if manifest.is_dir():  # a plain index (or any folder) given with --shards or --cluster
        raise SketchSearchError(f"{manifest}: a folder, not a sharded collection's manifest: --shards and --cluster "
                                f"index into a .json manifest (e.g. --db {manifest}.json), a folder without them")
    if manifest.exists():
        m = Manifest.load(manifest)
        want, image = resolve_settings(manifest.parent / f".{manifest.name}.none", settings or m.settings, backbone
                                    if backbone != "auto" else None, edges)
        if backbone == "auto":
            image = m.image_settings
        if want != m.settings:
            raise IndexFormatError(f"{manifest}: the collection was built with other sketch settings "
                                   f"({m.settings.detector} edges); leave --preset/--edges out, or use another --db")
        if (image or None) != m.image_settings:
            theirs = json.loads(m.image_settings)["backbone"] if m.image_settings else "none"
            raise IndexFormatError(f"{manifest}: the collection was built with --backbone {theirs}; leave "
                                   f"--backbone out, or use another --db")
        if n_shards is not None and n_shards != m.n_shards:
            raise IndexFormatError(f"{manifest}: the collection has {m.n_shards} shards, not {n_shards}; leave "
                                   f"--shards out (a collection keeps its number of shards)")
        return m
    if manifest.suffix.lower() != ".json":
        raise SketchSearchError(f"{manifest}: a sharded collection's manifest is a .json file; name one, e.g. "
                                f"--db {manifest}.json")
    want, image = resolve_settings(manifest.parent / f".{manifest.name}.none", settings, backbone, edges)
    return Manifest.create(manifest, n_shards or default_shards, want, image)


def index_sharded(folders: Iterable[str | os.PathLike], manifest: str | os.PathLike, *, runner=None,
                  n_shards: int | None = None, settings: SketchSettings | None = None, backbone: str | None = "auto",
                  edges: str | None = None, device: str | None = None, workers: int | None = None,
                  prune: bool = False, progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None, rebuild: bool = False, follow_links: bool = False):
    """Index folders into a sharded collection (created if needed), shard by shard, then learn the image
    parameters on all shards and build every shard's image index with them.

    ``runner``: where the shards' jobs run -- ``LocalRunner`` (default: in this process, one after the
    other) or ``engine.cluster.DaskRunner``.  The rest as ``engine.indexer.index_folders``; ``n_shards``
    only for a new collection (default 2, or the cluster's workers).

    Returns an ``IndexSummary`` of the whole collection.
    """
    from .errors import Cancelled
    from .indexer import IndexSummary, check_apart, scan

    folders = [str(Path(f).expanduser().absolute()) for f in folders]
    for f in folders:
        if not Path(f).exists():
            raise FileNotFoundError(f"{f}: no such folder")
    runner = runner or LocalRunner(cancelled)
    manifest = Path(manifest).expanduser().absolute()
    for f in folders:  # the shards lie beside the manifest: never among the photos
        if Path(f).is_dir() and (Path(os.path.realpath(manifest.parent)) / "x").is_relative_to(os.path.realpath(f)):
            raise IndexNotFound(f"{manifest}: the collection's shards would lie inside the photo folder {f}; keep "
                                f"the manifest in a folder of its own (another --db)")
    m = _manifest_for(manifest, settings, backbone, edges, n_shards,
                          default_shards=runner.n_workers if runner.n_workers > 1 else 2)
    for i in range(m.n_shards):
        check_apart(m.shard_path(i), folders)
    jobs = [ShardJob(tuple(folders), str(m.shard_path(i)), i, m.n_shards, m.shard_record(i), m.settings.to_json(),
                     m.image_settings, device, workers, prune, rebuild, follow_links) for i in range(m.n_shards)]
    total = len(scan(folders, follow_links=follow_links)[0]) if isinstance(runner, LocalRunner) and progress else None
    try:
        summaries = runner.run_shards(jobs, progress, total)
    except Cancelled:
        update_learned(m, runner)
        raise
    update_learned(m, runner)
    seen_skip: set[tuple[str, str]] = set()
    skipped = []
    for s in summaries:
        for item in s.skipped:
            if item not in seen_skip:
                seen_skip.add(item)
                skipped.append(item)
    return IndexSummary(sum(s.indexed for s in summaries), sum(s.described for s in summaries),
                        sum(s.reused for s in summaries), tuple(skipped), sum(s.removed for s in summaries),
                        sum(s.moved for s in summaries), sum(s.missing for s in summaries),
                        sum(s.upgraded for s in summaries))


def update_learned(m: Manifest, runner) -> bool:
    """Relearn the collection's image parameters on all shards and rebuild every shard's image index with
    them, when any shard changed since (or was built with other parameters).  Returns whether it did."""
    from .imageindex import collection_part, learn

    if not m.image_settings:
        return False
    counts = runner.map(shard_count, [(str(m.shard_path(i)),) for i in range(m.n_shards)])
    stale = False
    for i in range(m.n_shards):
        rec = read_meta(m.shard_path(i)).get("image_index")
        stale |= counts[i][1] or not rec or json.loads(rec).get("learned") != m.learned or m.learned is None
    if not stale:
        return False
    n = sum(c for c, _ in counts)
    cap = [None if n <= MAX_LEARN_SAMPLES else math.ceil(MAX_LEARN_SAMPLES * c / n) for c, _ in counts]
    parts = runner.map(collection_part, [(str(m.shard_path(i)), cap[i]) for i in range(m.n_shards)])
    parts = [p for p in parts if p[0] is not None]
    gem = np.concatenate([p[0] for p in parts]) if parts else None
    sketch = np.concatenate([p[1] for p in parts]) if parts else None
    if gem is not None and len(gem) > MAX_LEARN_SAMPLES:
        take = np.sort(np.random.default_rng(0).choice(len(gem), MAX_LEARN_SAMPLES, replace=False))
        gem, sketch = gem[take], sketch[take]
    previous = None
    if m.learned is not None:
        with contextlib.suppress(OSError, KeyError, ValueError):
            previous = _load_learned_file(m.learned_path(), m.learned)
    lid = uuid.uuid4().hex[:12]
    learned = learn(gem, sketch, np.sum([p[2] for p in parts], axis=0) if parts else None,
                    sum(p[3] for p in parts), id=lid, previous=previous, n_new=sum(p[4] for p in parts))
    path = m.learned_path(lid)
    _save_learned(path, learned)
    runner.map(build_shard_image_index, [(str(m.shard_path(i)), str(path), lid) for i in range(m.n_shards)])
    old = m.learned_path() if m.learned else None
    m.learned = lid
    m.save()
    if old is not None:
        with contextlib.suppress(OSError):
            old.unlink()
    return True

