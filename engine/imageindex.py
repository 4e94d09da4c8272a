"""Image descriptors in an index: extracted while indexing, whitened and made searchable at the end of
each run, and searched by image or by the expansion of a sketch query (METHOD.md sections 6-7).

On disk, beside the catalog and the chunks (which keep the raw GeM vectors, float16):

    image-<gen>.vectors.npy   (N, d) float16, whitened (or plain) L2-normalised vectors
    image-<gen>.ids.npy       (N,) int64 catalog ids of those rows
    image-<gen>.whitening.npz the whitening learned on the collection (absent when it was too small)
    image-<gen>.faiss         an IVF-PQ index of the vectors, for collections of IVF_THRESHOLD photos or more

``meta.image_index`` names the generation; a new one is written completely before the catalog points at it,
and older ones are deleted after (the file names are recorded in the catalog's ``owned`` table before the
files are made: see ``engine.catalog``). A generation found damaged is rebuilt by the next index run. The
image index covers the photos of the last finished (or cancelled) index run; photos added by a run still
going are found by sketch, and by image once it ends.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .catalog import (
    IMAGE_INDEX_DIRTY,
    CatalogReader,
    chunk_path,
    read_meta,
    save_array,
)
from .cnn import GemDescriber, GemSettings
from .describe import drawing_settings
from .errors import Hint
from .imagesearch import VectorIndex, Whitening, alpha_qe, learn_whitening
from .vectors import l2n

log = logging.getLogger(__name__)

IVF_THRESHOLD = 200_000
MIN_WHITENING_IMAGES = 1000  # fewer photos: plain L2 (whitening learned on a few photos over-fits; see learn_whitening)
WHITEN_DIM = 512  # at most this many whitened components: searchable vectors of 1 KB per photo (float16)
DEFAULT_QE = 5  # alpha-QE neighbours of an image query: best or within 0.01 mAP of it, raw and whitened (bench)
ALPHA = 3.0
NPROBE = 32  # IVF cells visited per query
RERANK = 8  # IVF-PQ: candidates per result, re-ranked with the exact (memory-mapped) vectors


class Extractor:
    """Batches photos' network inputs and describes them on one device (CUDA when present)."""

    def __init__(self, settings: GemSettings, device=None, *, batch: int = 16) -> None:
        self.describer = GemDescriber(settings, device)
        self.drawer = GemDescriber(drawing_settings(settings.backbone), device)
        self.batch = batch

    def describe(self, inputs: list[np.ndarray], describer: GemDescriber | None = None) -> np.ndarray:
        """(n, d) float16 raw GeM vectors of uint8 network inputs."""
        d = describer or self.describer
        out = [d.describe(inputs[i:i + self.batch]) for i in range(0, len(inputs), self.batch)]
        return np.concatenate(out).astype(np.float16) if out else np.zeros((0, d.dim), np.float16)

    def describe_drawings(self, inputs: list[np.ndarray]) -> np.ndarray:
        """(n, d) float16 raw global sketch descriptors of photos' edge maps drawn (engine.fusion)."""
        return self.describe(inputs, self.drawer)


PARTS = ("vectors.npy", "ids.npy", "whitening.npz", "faiss", "sketch.npy", "sketch_mean.npy")


def generation_files(db: Path, gen: str) -> dict[str, Path]:
    return {k: Path(db) / f"image-{gen}.{k}" for k in PARTS}


@dataclass(frozen=True)
class Learned:
    """What an image index learns on its collection: the whitening (None: plain L2) and the mean of the
    global sketch descriptors.  The shards of a collection share one, learned on all of them
    (``engine.shards``); ``id`` names it in each shard's image-index record."""

    whitening: Whitening | None
    sketch_mean: np.ndarray | None
    id: str = ""


def learn(raw: np.ndarray | None, sketch_sum: np.ndarray | None, n: int, *, id: str = "") -> Learned:
    """Learn the whitening on raw GeM vectors (all of a collection's, or a random sample of up to 100,000
    of them) and the sketch-descriptor mean from the sum over the ``n`` photos."""
    white = None
    if raw is not None and len(raw):
        white = learn_whitening(raw, dim=WHITEN_DIM, min_images=MIN_WHITENING_IMAGES)
    mean = None if sketch_sum is None or n == 0 else (np.asarray(sketch_sum, np.float64) / n).astype(np.float32)
    return Learned(white, mean, id)


def row_sum(a: np.ndarray, block: int = 65536) -> np.ndarray:
    """Sum of the rows of ``a``, float64, in blocks (the same value however a collection is split)."""
    out = np.zeros(a.shape[1], np.float64)
    for i in range(0, len(a), block):
        out += np.asarray(a[i:i + block], np.float64).sum(axis=0)
    return out


def write_generation(db: Path, gen: str, files: dict[str, Path], ids, chunks, slots, ivf_threshold: int,
                      learned: Learned | None, save_npz) -> dict:
    n = len(ids)
    raw = _gather(db, chunks, slots, "gem")
    record: dict = {"gen": gen, "n": n, "kind": "flat"}
    if raw is None:
        record.update(whitened=False, dim=0, note="no photos")
        vectors = np.zeros((0, 0), np.float16)
    else:
        white = learned.whitening if learned is not None else learn_whitening(raw, dim=WHITEN_DIM,
                                                                                min_images=MIN_WHITENING_IMAGES)
        if white is None:
            vectors = l2n(raw)
            few = (f"the collection has fewer than {MIN_WHITENING_IMAGES} photos" if learned is not None
                   else f"{n} photos < {MIN_WHITENING_IMAGES}")
            record.update(whitened=False, dim=raw.shape[1], note=f"no whitening: {few}; plain L2-normalised GeM")
        else:
            save_npz(files["whitening.npz"], mean=white.mean, projection=white.projection)
            vectors = np.concatenate([white.apply(raw[i:i + 65536]) for i in range(0, n, 65536)])
            where = "the collection's shards" if learned is not None else f"{min(n, 100_000)} photos"
            record.update(whitened=True, dim=white.dim_out, note=f"PCA-whitening learned on {where}, "
                                                                  f"{white.dim_out}-D")
        if n >= ivf_threshold:
            try:
                VectorIndex(vectors, kind="ivfpq").save(files["faiss"])
            except (OSError, RuntimeError) as e:
                from .errors import IndexWriteError

                raise IndexWriteError(f"{db}: cannot write {files['faiss'].name} ({e}); what was committed before "
                                      f"is kept; free some space or fix the folder, then run again") from None
            record["kind"] = "ivfpq"
    save_array(files["vectors.npy"], vectors.astype(np.float16))
    del raw
    sketch = _gather(db, chunks, slots, "sketch")
    if sketch is not None:  # global sketch descriptors, centred on the collection's mean (engine.fusion)
        mean = learned.sketch_mean if learned is not None else (row_sum(sketch) / n).astype(np.float32)
        save_array(files["sketch_mean.npy"], mean.astype(np.float32))
        save_array(files["sketch.npy"], np.concatenate([l2n(sketch[i:i + 65536] - mean)
                                                   for i in range(0, n, 65536)]).astype(np.float16))
        record["sketch"] = True
    save_array(files["ids.npy"], ids)
    if learned is not None:
        record["learned"] = learned.id
    return record


def _gather(db: Path, chunks: np.ndarray, slots: np.ndarray, name: str) -> np.ndarray | None:
    """(n, d) float32 array ``name`` of the photos at (chunk, slot), in that order (None: no photos)."""
    out = None
    for c in np.unique(chunks):
        a = np.load(chunk_path(db, int(c), name), mmap_mode="r")
        if out is None:
            out = np.empty((len(chunks), a.shape[1]), np.float32)
        sel = chunks == c
        out[sel] = a[slots[sel]]
    return out


def stale(meta: dict[str, str], db: Path | None = None) -> bool:
    """Whether photos were described or removed since the image index was last built (also by a run that was
    killed or cancelled before building it), or, given the index folder ``db``, whether its files are missing or
    damaged; ``meta``: the catalog's meta table (``catalog.read_meta``)."""
    if IMAGE_INDEX_DIRTY in meta or "image_index" not in meta:
        return True
    if db is not None:
        from .errors import IndexFormatError

        try:
            open_generation(db, json.loads(meta["image_index"]))
        except IndexFormatError as e:
            log.warning("%s; rebuilding it", e)
            return True
    return False


@dataclass(frozen=True)
class Generation:
    """The files of one image-index generation, opened (the arrays memory-mapped) and checked."""

    vectors: np.ndarray  # (N, d) float16
    ids: np.ndarray  # (N,) int64
    whitening: Whitening | None
    sketch_vectors: np.ndarray | None  # (N, G) float16
    sketch_mean: np.ndarray | None  # (G,) float32
    knn: VectorIndex | None  # the IVF-PQ index of large collections


def open_generation(db: Path, record: dict) -> Generation:
    """Open and check one generation's files (IndexFormatError naming the file that is missing or damaged)."""
    from .errors import IndexFormatError, IndexNotFound

    files = generation_files(Path(db), record["gen"])
    n = record["n"]

    def fail(part: str, why) -> IndexFormatError:
        return IndexFormatError(f"{db}: image index file {files[part].name} is missing or damaged ({why})",
                                hint=Hint("repair", str(db)))

    def array(part: str, ndim: int, dtype=None) -> np.ndarray:
        try:
            a = np.load(files[part], mmap_mode="r" if n else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise fail(part, e) from None
        if a.ndim != ndim or (ndim and len(a) != n and part != "sketch_mean.npy") or (dtype and a.dtype != dtype):
            raise fail(part, f"{a.shape} {a.dtype}, expected {n} rows")
        return a

    vectors = array("vectors.npy", 2, np.float16)
    ids = np.asarray(array("ids.npy", 1, np.int64))
    whitening = None
    if record["whitened"]:
        try:
            whitening = Whitening.from_npz(files["whitening.npz"])
        except Exception as e:  # noqa: BLE001 -- any reading error of the file (zip, npy, keys) is damage
            raise fail("whitening.npz", e) from None
        if whitening.projection.shape[1] != vectors.shape[1]:
            raise fail("whitening.npz", f"projection {whitening.projection.shape} for {vectors.shape[1]}-D vectors")
    sketch = mean = None
    if record.get("sketch"):
        sketch = array("sketch.npy", 2, np.float16)
        mean = np.asarray(array("sketch_mean.npy", 1))
        if mean.shape != sketch.shape[1:]:
            raise fail("sketch_mean.npy", f"{mean.shape}, the sketch descriptors are {sketch.shape[1:]}")
    knn = None
    if record.get("kind") == "ivfpq":
        try:
            knn = VectorIndex.load(files["faiss"], device="cpu", nprobe=NPROBE)
        except (IndexNotFound, OSError, RuntimeError, ValueError) as e:
            raise fail("faiss", e) from None
        if len(knn) != n:
            raise fail("faiss", f"{len(knn)} vectors, expected {n}")
    return Generation(vectors, ids, whitening, sketch, mean, knn)


class ImageSearcher:
    """Search by image over a SketchIndex's image vectors (built lazily by SketchIndex.images)."""

    def __init__(self, index, device=None) -> None:
        from .errors import IndexFormatError, QueryError

        self.index = index
        meta = index.meta.get("image_index")
        if not index.image_settings:
            raise QueryError(f"{index.path}: this index has no image descriptors",
                             hint=Hint("image-descriptors", str(index.path)))
        if not meta:
            raise QueryError(f"{index.path}: the image descriptors are not ready yet (an index run has not "
                             f"finished)", hint=Hint("repair", str(index.path)))
        try:
            self.settings = GemSettings.from_json(index.image_settings)
        except (ValueError, TypeError) as e:
            raise IndexFormatError(f"{index.path}: the catalog's image settings are damaged ({e})",
                                   hint=Hint("rebuild", str(index.path))) from None
        try:
            ids = self._load(json.loads(meta))
        except IndexFormatError as first:
            # a writer replaced this view's generation since it was opened: take the current one (its
            # photos that this view does not have are left out below)
            fresh = read_meta(index.path).get("image_index")
            if not fresh or fresh == meta:
                raise first from None
            ids = self._load(json.loads(fresh))
        # rows of this view for the image index's ids (-1: not in this view)
        self.rows = np.full(len(ids), -1, np.int64)
        if len(index.ids) and len(ids):
            order = np.argsort(index.ids, kind="stable")
            pos = np.minimum(np.searchsorted(index.ids[order], ids), len(order) - 1)
            self.rows = np.where(index.ids[order][pos] == ids, order[pos], -1)
        self.row_to_vec = np.full(len(index), -1, np.int64)
        ok = self.rows >= 0
        self.row_to_vec[self.rows[ok]] = np.flatnonzero(ok)
        self.device = device
        self._describer: GemDescriber | None = None
        self._drawer: GemDescriber | None = None
        if len(ids) == 0:
            self.knn = None
        elif self.knn is None:
            self.knn = VectorIndex(np.asarray(self.vectors, np.float32), kind="auto", device=device,
                                   ivf_threshold=1 << 62)

    def _load(self, record: dict) -> np.ndarray:
        """Open the files of one generation; returns its ids."""
        g = open_generation(self.index.path, record)
        self.vectors, self.whitening, self.knn = g.vectors, g.whitening, g.knn
        self.sketch_vectors, self.sketch_mean = g.sketch_vectors, g.sketch_mean
        self.record = record
        return g.ids

    def embed_raw(self, raw: np.ndarray) -> np.ndarray:
        """Raw GeM vectors -> the index's space (whitened, L2)."""
        raw = np.asarray(raw, np.float32)
        if self.whitening is not None:
            return self.whitening.apply(raw)
        return l2n(raw)

    def describe(self, image) -> np.ndarray:
        """Query image (path or RGB array in [0, 1]) -> its vector in the index's space."""
        from .errors import QueryError
        from .imageio import ImageError, load_image, network_input

        if isinstance(image, str | Path):
            try:
                image = load_image(image, max_side=self.settings.max_side).pixels
            except ImageError as e:
                raise QueryError(str(e)) from None
        if self._describer is None:
            self._describer = GemDescriber(self.settings, self.device, backend="auto")
        raw = self._describer.describe([network_input(np.asarray(image, np.float32), self.settings.max_side)])[0]
        return self.embed_raw(raw)

    @property
    def has_sketch(self) -> bool:
        """Whether the photos have global sketch descriptors (engine.fusion)."""
        return self.sketch_vectors is not None and len(self.sketch_vectors) > 0

    def describe_sketch(self, edges) -> np.ndarray:
        """A query sketch's global descriptor in the index's space (centred on the collection, L2)."""
        from .fusion import drawing_input

        if self._drawer is None:
            self._drawer = GemDescriber(drawing_settings(self.settings.backbone), self.device, backend="auto")
        raw = self._drawer.describe([drawing_input(edges, query=True)])[0]
        v = raw - self.sketch_mean
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    def sketch_top(self, q: np.ndarray, k: int, *, with_scores: bool = False):
        """View rows of the ``k`` best global sketch cosines (candidates: one matrix-vector product over the
        collection's float16 vectors; exact scores of the rows kept come from :meth:`sketch_scores`); with
        ``with_scores``, (rows, their float32 scores)."""
        scores = f16_matvec(self.sketch_vectors, np.asarray(q, np.float32))
        top = np.argpartition(-scores, min(k, len(scores)) - 1)[:k] if k < len(scores) else np.arange(len(scores))
        rows = self.rows[top]
        ok = rows >= 0
        return (rows[ok], scores[top][ok]) if with_scores else rows[ok]

    def sketch_scores(self, q: np.ndarray, rows) -> np.ndarray:
        """Global sketch cosines of view rows; NaN for rows without a descriptor."""
        return self._cosines(self.sketch_vectors, q, np.asarray(rows, np.int64))

    def image_scores(self, q: np.ndarray, rows) -> np.ndarray:
        """Image cosines of view rows for a query vector in the index's space; NaN for rows without one."""
        return self._cosines(self.vectors, q, np.asarray(rows, np.int64))

    def _cosines(self, vectors: np.ndarray, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        v = self.row_to_vec[rows]
        out = np.full(len(rows), np.nan, np.float32)
        ok = np.flatnonzero(v >= 0)
        sel = v[ok]
        order = np.argsort(sel, kind="stable")  # memory maps read fastest in order
        sel, ok = sel[order], ok[order]
        q = np.asarray(q, np.float32)
        for s in range(0, len(ok), 65536):
            out[ok[s:s + 65536]] = np.asarray(vectors[sel[s:s + 65536]], np.float32) @ q
        return out

    def vectors_of_rows(self, rows) -> np.ndarray:
        """Image vectors of view rows (rows without one are left out)."""
        v = self.row_to_vec[np.asarray(rows, np.int64)]
        return np.asarray(self.vectors[v[v >= 0]], np.float32)

    def search_vector(self, q: np.ndarray, top_k: int, *, qe: int = 0, alpha: float = ALPHA) \
            -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the top ``top_k`` for a query vector, with alpha-QE over ``qe`` neighbours."""
        if self.knn is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.asarray(q, np.float32)[None]
        if qe > 0:
            nb, _ = self._search(q, qe)
            if len(nb):
                q = alpha_qe(q, self.vectors_of_rows(nb), np.arange(len(nb))[None], alpha)
        return self._search(q, top_k)

    def _search(self, q: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` rows of this view (vectors of photos the view lacks are skipped: asks for more
        until enough are found); IVF-PQ candidates are re-ranked with the exact vectors."""
        n = len(self.knn)
        k = min(n, top_k + 16)
        while True:
            kk = min(n, max(k, RERANK * top_k)) if self.knn.kind == "ivfpq" else k
            scores, ids = self.knn.search(q, kk)
            ids = ids[0][ids[0] >= 0]
            if self.knn.kind == "ivfpq" and len(ids):
                ids = np.sort(ids)
                exact = np.asarray(self.vectors[ids], np.float32) @ q[0]
                order = np.argsort(-exact, kind="stable")
                ids, sc = ids[order], exact[order]
            else:
                sc = scores[0][:len(ids)]
            rows = self.rows[ids]
            ok = rows >= 0
            if ok.sum() >= top_k or k >= n:
                return rows[ok][:top_k], sc[ok][:top_k].astype(np.float32)
            k = min(n, 4 * k)


def f16_matvec(mat: np.ndarray, q: np.ndarray, *, block: int = 256) -> np.ndarray:
    """``mat @ q`` of a (possibly memory-mapped) float16 matrix, in float32.

    Parameters
    ----------
    mat : (N, d) float16 ndarray
    q : (d,) float32 ndarray
    block : int
        Rows converted at a time: OpenCV converts float16 with the CPU's conversion instructions (numpy's
        ``astype`` is 5x slower), and blocks this small stay in cache and below the sizes at which
        OpenCV's and OpenBLAS's thread pools take turns (on a busy 2-core machine: 30x slower).

    Returns
    -------
    (N,) float32 ndarray
    """
    q = np.ascontiguousarray(q, np.float32)
    out = np.empty(len(mat), np.float32)
    for s in range(0, len(mat), block):
        part = np.ascontiguousarray(mat[s:s + block])
        out[s:s + len(part)] = cv2.add(part, 0.0, dtype=cv2.CV_32F) @ q
    return out


def collection_part(db: Path, max_rows: int | None = None, *, seed: int = 0) \
        -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """What one shard contributes to the collection's learned image parameters: its raw GeM vectors (all,
    or a random ``max_rows`` of them), the float64 sum of its global sketch descriptors, and its count.
    (None, None, 0) for an index without image descriptors or photos."""
    db = Path(db)
    with CatalogReader(db) as con:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        rows = con.execute("SELECT chunk, slot FROM files WHERE chunk IS NOT NULL ORDER BY chunk, slot").fetchall()
    if not meta.get("image_settings") or not rows:
        return None, None, 0
    chunks = np.array([r[0] for r in rows], np.int64)
    slots = np.array([r[1] for r in rows], np.int64)
    n = len(rows)
    total = None
    for c in np.unique(chunks):
        a = np.load(chunk_path(db, int(c), "sketch"), mmap_mode="r")
        part = row_sum(a[np.sort(slots[chunks == c])])
        total = part if total is None else total + part
    take = np.arange(n)
    if max_rows is not None and max_rows < n:
        take = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
    return _gather(db, chunks[take], slots[take], "gem"), total, n
