"""Image descriptors in an index: extracted while indexing, folded into the image index at the end of each
run, and searched by image or by the expansion of a sketch query (METHOD.md sections 6-7).

Workers describe each photo with two vectors of the backbone (``G`` = 1,280-D): the GeM of the photo (its
image descriptor) and the GeM of its edge map drawn (its global sketch descriptor, ``engine.fusion``).  The
chunks keep them raw (float16) only until the end of the run; then the writer folds them into a new
generation of the image index, which holds one compact copy of each (``engine.compact``):

    image-<gen>.ids.npy                  (N,) int64 catalog ids of its rows
    image-<gen>.basis.npz                the collection's PCA bases (mean + K = 256 directions) of both vectors
    image-<gen>.image_codes.npy          (N, K) int8 coordinates of the L2-normalised GeM in its basis,
    image-<gen>.image_scale.npy          (N,) float32 with one scale per photo,
    image-<gen>.image_norm.npy           (N,) float32 and each photo's norm in the searchable space
    image-<gen>.sketch_{codes,scale,norm}.npy   the same for the global sketch descriptors
    image-<gen>.sketch_mean.npy          (G,) float32 the collection's mean global sketch descriptor
    image-<gen>.whitening.npz            the whitening learned on the collection (absent when it was too small)
    image-<gen>.faiss                    an IVF-PQ index, for collections of IVF_THRESHOLD photos or more

so a photo costs 2 x (K + 8) bytes of image search.  The bases are learned on the collection (a random sample
of up to 100,000 photos) when it has none, while it is small, and when it has doubled since
(:func:`needs_bases`); in between, new photos are coded in the bases as they are and the others keep their
codes.  A query is scored against every code with one int8 matrix-vector product (``compact.AffineCodes``).

``meta.image_index`` names the generation; a new one is written completely before the catalog points at it,
and older ones (and the raw vectors it folded) are deleted after (the file names are recorded in the
catalog's ``owned`` table before the files are made: see ``engine.catalog``).  When the generation is found
damaged, the next index run describes again the photos whose vectors it held.  The image index covers the
photos of the last finished (or cancelled) index run; photos added by a run still going are found by
sketch, and by image once it ends.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalog import (
    IMAGE_INDEX_DIRTY,
    CatalogReader,
    chunk_path,
    read_meta,
    save_array,
)
from .cnn import GemDescriber, GemSettings
from .compact import AffineCodes, Basis, learn_basis
from .describe import drawing_settings
from .errors import Hint
from .imagesearch import VectorIndex, Whitening, alpha_qe, learn_whitening
from .search import cpu_threads
from .vectors import l2n, top_positions

log = logging.getLogger(__name__)

IVF_THRESHOLD = 200_000
MIN_WHITENING_IMAGES = 1000  # fewer photos: plain L2 (whitening learned on a few photos over-fits; see learn_whitening)
WHITEN_DIM = 512  # at most this many whitened components (the basis keeps fewer: compact.BASIS_DIM)
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


PARTS = ("ids.npy", "image_codes.npy", "image_scale.npy", "image_norm.npy", "sketch_codes.npy", "sketch_scale.npy",
         "sketch_norm.npy", "sketch_mean.npy", "basis.npz", "whitening.npz", "faiss")
#: a collection of at most this many photos learns its bases again whenever photos were added (cheap, and its
#: first bases were learned on few photos); a larger one when it has doubled since they were learned
RELEARN_SMALL = 2000
LEARN_SAMPLES = 100_000  # vectors the bases and the whitening are learned on, at most (a random sample)


def generation_files(db: Path, gen: str) -> dict[str, Path]:
    return {k: Path(db) / f"image-{gen}.{k}" for k in PARTS}


@dataclass(frozen=True)
class Learned:
    """What an image index learns on its collection: the bases its descriptors are stored in
    (``engine.compact``), the whitening (None: plain L2) and the mean of the global sketch descriptors.
    The shards of a collection share one, learned on all of them (``engine.shards``); ``id`` names it in
    each shard's image-index record."""

    whitening: Whitening | None
    sketch_mean: np.ndarray | None
    id: str = ""
    image_basis: Basis | None = None
    sketch_basis: Basis | None = None


def needs_bases(basis: Basis | None, n_total: int, n_new: int) -> bool:
    """Whether a collection of ``n_total`` photos, ``n_new`` of them not yet in its image index, learns new
    bases (and every photo's codes are computed again): none yet, a small collection that got new photos, or
    a collection that has doubled since its bases were learned.  Otherwise new photos are coded in the bases
    as they are, and the codes of the others are kept as they are."""
    return basis is None or n_total >= 2 * basis.n or (n_new > 0 and n_total <= RELEARN_SMALL)


def learn(gem: np.ndarray | None, sketch: np.ndarray | None, sketch_sum: np.ndarray | None, n: int, *,
          id: str = "", previous: Learned | None = None, n_new: int = 0) -> Learned:
    """Learn a collection's parameters from a sample of its photos' vectors (L2-normalised GeM ``gem`` and
    global sketch descriptors ``sketch``, up to :data:`LEARN_SAMPLES` rows) and the float64 sum of all ``n``
    photos' sketch descriptors; ``previous``'s bases are kept unless :func:`needs_bases`."""
    mean = None if sketch_sum is None or n == 0 else (np.asarray(sketch_sum, np.float64) / n).astype(np.float32)
    img_basis = previous.image_basis if previous is not None else None
    sk_basis = previous.sketch_basis if previous is not None else None
    if gem is not None and len(gem) and needs_bases(img_basis, n, n_new):
        img_basis, sk_basis = learn_basis(gem, n=n), None
    if sketch is not None and len(sketch) and mean is not None and sk_basis is None:
        sk_basis = learn_basis(sketch, center=mean, n=n)
    white = None
    if gem is not None and len(gem) and img_basis is not None:
        white = learn_whitening(as_kept(img_basis, gem), dim=min(WHITEN_DIM, img_basis.dim),
                                min_images=MIN_WHITENING_IMAGES)
    return Learned(white, mean, id, img_basis, sk_basis)


def as_kept(basis: Basis, x: np.ndarray) -> np.ndarray:
    """Rows ``x`` as the index keeps them: coded in ``basis`` and decoded."""
    return basis.decode(*basis.encode(x))


def row_sum(a: np.ndarray, block: int = 65536) -> np.ndarray:
    """Sum of the rows of ``a``, float64, in blocks (the same value however a collection is split)."""
    out = np.zeros(a.shape[1], np.float64)
    for i in range(0, len(a), block):
        out += np.asarray(a[i:i + block], np.float64).sum(axis=0)
    return out


class PhotoVectors:
    """Every photo's image and global sketch descriptors while an index folds new photos into its image
    index: raw (float16 in the chunks ``raw``) or coded in the previous generation ``previous``.

    ``ids``, ``chunks``, ``slots``: the photos (catalog order); photos of neither source are left out
    (``keep``)."""

    def __init__(self, db: Path, ids: np.ndarray, chunks: np.ndarray, slots: np.ndarray, raw: set[int],
                 previous: Generation | None) -> None:
        self.db = Path(db)
        self.is_raw = np.isin(chunks, np.array(sorted(raw), np.int64))
        self.prev_pos = np.full(len(ids), -1, np.int64)
        self.previous = previous
        if previous is not None and len(previous.ids):
            order = np.argsort(previous.ids, kind="stable")
            pos = np.minimum(np.searchsorted(previous.ids[order], ids), len(order) - 1)
            found = previous.ids[order][pos] == ids
            self.prev_pos = np.where(found & ~self.is_raw, order[pos], -1)
        self.keep = self.is_raw | (self.prev_pos >= 0)
        if (~self.keep).any():
            log.warning("%s: %d photos have no image descriptors (neither raw nor in the image index); they are "
                        "left out of image search", db, int((~self.keep).sum()))
        self.ids, self.chunks, self.slots = ids[self.keep], chunks[self.keep], slots[self.keep]
        self.is_raw, self.prev_pos = self.is_raw[self.keep], self.prev_pos[self.keep]
        self.n_new = int(self.is_raw.sum())

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, sel: np.ndarray, name: str) -> np.ndarray:
        """(len(sel), G) float32 vectors ``name`` ("gem": L2-normalised, or "sketch") of photos ``sel``."""
        sel = np.asarray(sel, np.int64)
        out = None
        raw = sel[self.is_raw[sel]]
        if len(raw):
            part = _gather(self.db, self.chunks[raw], self.slots[raw], name)
            out = np.empty((len(sel), part.shape[1]), np.float32)
            out[self.is_raw[sel]] = l2n(part) if name == "gem" else part
        old = sel[~self.is_raw[sel]]
        if len(old):
            g = self.previous
            codes, scales = (g.image_codes, g.image_scale) if name == "gem" else (g.sketch_codes, g.sketch_scale)
            basis = g.image_basis if name == "gem" else g.sketch_basis
            pos = self.prev_pos[old]
            order = np.argsort(pos, kind="stable")
            dec = np.empty((len(old), basis.components.shape[1]), np.float32)
            dec[order] = basis.decode(codes[pos[order]], scales[pos[order]])
            if out is None:
                out = np.empty((len(sel), dec.shape[1]), np.float32)
            out[~self.is_raw[sel]] = dec
        return out if out is not None else np.zeros((0, 0), np.float32)

    def sample(self, max_rows: int | None, seed: int = 0) -> np.ndarray:
        n = len(self)
        if max_rows is None or max_rows >= n:
            return np.arange(n)
        return np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))

    def sketch_sum(self, block: int = 65536) -> np.ndarray:
        total = None
        for s in range(0, len(self), block):
            part = row_sum(self.rows(np.arange(s, min(len(self), s + block)), "sketch"))
            total = part if total is None else total + part
        return total

    def codes(self, name: str, basis: Basis, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """int8 codes and scales of every photo in ``basis`` (the previous generation's codes as they are when
        it is the same basis)."""
        g = self.previous
        same = g is not None and same_basis(g.image_basis if name == "gem" else g.sketch_basis, basis)
        codes = np.empty((len(self), basis.dim), np.int8)
        scales = np.empty(len(self), np.float32)
        for s in range(0, len(self), block):
            sel = np.arange(s, min(len(self), s + block))
            if same and not self.is_raw[sel].any():
                pos = self.prev_pos[sel]
                src_c, src_s = (g.image_codes, g.image_scale) if name == "gem" else (g.sketch_codes, g.sketch_scale)
                codes[sel], scales[sel] = src_c[pos], src_s[pos]
            else:
                codes[sel], scales[sel] = basis.encode(self.rows(sel, name))
        return codes, scales


def same_basis(a: Basis | None, b: Basis | None) -> bool:
    """Whether two bases are the same (codes made in one are valid in the other)."""
    if a is None or b is None:
        return a is b
    return a is b or (a.n == b.n and np.array_equal(a.mean, b.mean) and np.array_equal(a.components, b.components))


def previous_learned(previous: Generation | None) -> Learned | None:
    """The bases of a generation, as a :class:`Learned` to start from."""
    if previous is None or previous.image_basis is None:
        return None
    return Learned(None, None, "", previous.image_basis, previous.sketch_basis)


def write_generation(db: Path, gen: str, files: dict[str, Path], vectors: PhotoVectors, ivf_threshold: int,
                     learned: Learned | None, save_npz) -> dict:
    """Write generation ``gen``: every photo's codes in the collection's bases (learned here from a sample of
    ``vectors`` unless ``learned`` is given), the whitening, each photo's searchable norm, and for large
    collections an IVF-PQ index."""
    n = len(vectors)
    record: dict = {"gen": gen, "n": n, "kind": "flat"}
    if n == 0:
        record.update(whitened=False, dim=0, note="no photos")
        save_array(files["ids.npy"], np.zeros(0, np.int64))
        return record
    if learned is None:
        take = vectors.sample(LEARN_SAMPLES)
        total = vectors.sketch_sum()
        learned = learn(vectors.rows(take, "gem"), vectors.rows(take, "sketch"), total, n,
                        previous=previous_learned(vectors.previous), n_new=vectors.n_new)
        shared = False
    else:
        shared = True
    basis = learned.image_basis
    codes, scales = vectors.codes("gem", basis)
    white = learned.whitening
    if white is None:
        offset, matrix = basis.mean, basis.components
        few = (f"the collection has fewer than {MIN_WHITENING_IMAGES} photos" if shared
               else f"{n} photos < {MIN_WHITENING_IMAGES}")
        record.update(whitened=False, dim=int(basis.mean.shape[0]),
                      note=f"no whitening: {few}; plain L2-normalised GeM")
    else:
        save_npz(files["whitening.npz"], mean=white.mean, projection=white.projection)
        offset, matrix = (basis.mean - white.mean) @ white.projection, basis.components @ white.projection
        where = "the collection's shards" if shared else f"{min(n, LEARN_SAMPLES)} photos"
        record.update(whitened=True, dim=white.dim_out, note=f"PCA-whitening learned on {where}, {white.dim_out}-D")
    image = AffineCodes(codes, scales, AffineCodes.norms_of(codes, scales, offset, matrix), offset, matrix)
    if n >= ivf_threshold:
        all_vectors = np.concatenate([image.vectors(np.arange(s, min(n, s + 65536))) for s in range(0, n, 65536)])
        try:
            VectorIndex(all_vectors, kind="ivfpq").save(files["faiss"])
        except (OSError, RuntimeError) as e:
            from .errors import IndexWriteError

            raise IndexWriteError(f"{db}: cannot write {files['faiss'].name} ({e}); what was committed before "
                                  f"is kept; free some space or fix the folder, then run again") from None
        del all_vectors
        record["kind"] = "ivfpq"
    # the directions in float16 (their rounding, 5e-4 relative, is well below the codes' int8 rounding)
    bases = {"image_mean": basis.mean, "image_components": basis.components.astype(np.float16),
             "image_n": np.int64(basis.n)}
    save_array(files["image_codes.npy"], codes)
    save_array(files["image_scale.npy"], scales)
    save_array(files["image_norm.npy"], image.norms)
    sk = learned.sketch_basis
    if sk is not None and learned.sketch_mean is not None:
        s_codes, s_scales = vectors.codes("sketch", sk)
        s_offset = sk.mean - learned.sketch_mean
        save_array(files["sketch_codes.npy"], s_codes)
        save_array(files["sketch_scale.npy"], s_scales)
        save_array(files["sketch_norm.npy"], AffineCodes.norms_of(s_codes, s_scales, s_offset, sk.components))
        save_array(files["sketch_mean.npy"], learned.sketch_mean.astype(np.float32))
        bases.update(sketch_mean=sk.mean, sketch_components=sk.components.astype(np.float16), sketch_n=np.int64(sk.n))
        record["sketch"] = True
    save_npz(files["basis.npz"], **bases)
    save_array(files["ids.npy"], vectors.ids)
    record["basis"] = {"dim": basis.dim, "learned_on": basis.n}
    if shared:
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

    ids: np.ndarray  # (N,) int64
    image_codes: np.ndarray  # (N, K) int8
    image_scale: np.ndarray  # (N,) float32
    image_norm: np.ndarray | None  # (N,) float32 (None: opened without what a build derives)
    image_basis: Basis | None
    whitening: Whitening | None
    sketch_codes: np.ndarray | None  # (N, K) int8
    sketch_scale: np.ndarray | None
    sketch_norm: np.ndarray | None
    sketch_basis: Basis | None
    sketch_mean: np.ndarray | None  # (G,) float32: the collection's mean global sketch descriptor
    knn: VectorIndex | None  # the IVF-PQ index of large collections

    def image(self) -> AffineCodes:
        """The searchable image vectors (whitened, or plain L2-normalised GeM)."""
        b, w = self.image_basis, self.whitening
        if w is None:
            offset, matrix = b.mean, b.components
        else:
            offset, matrix = (b.mean - w.mean) @ w.projection, b.components @ w.projection
        return AffineCodes(self.image_codes, self.image_scale, self.image_norm, offset, matrix)

    def sketch(self) -> AffineCodes | None:
        """The global sketch descriptors centred on the collection's mean (None: the index has none)."""
        if self.sketch_basis is None:
            return None
        b = self.sketch_basis
        return AffineCodes(self.sketch_codes, self.sketch_scale, self.sketch_norm, b.mean - self.sketch_mean,
                           b.components)


def open_generation(db: Path, record: dict, *, derived: bool = True) -> Generation:
    """Open and check one generation's files (IndexFormatError naming the file that is missing or damaged).

    ``derived=False`` opens only what holds the photos' descriptors (ids, codes, scales, bases), not what the
    next build computes again from them (norms, whitening, the sketch mean, the IVF-PQ index): those are left
    None, so their damage costs a rebuild, never the photos."""
    from .errors import ImageIndexDamaged, IndexNotFound

    files = generation_files(Path(db), record["gen"])
    n = record["n"]

    def fail(part: str, why) -> ImageIndexDamaged:
        return ImageIndexDamaged(f"{db}: image index file {files[part].name} is missing or damaged ({why})",
                                 hint=Hint("repair", str(db)))

    def array(part: str, ndim: int, dtype=None, rows: int | None = n) -> np.ndarray:
        try:
            a = np.load(files[part], mmap_mode="r" if n else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise fail(part, e) from None
        if a.ndim != ndim or (rows is not None and len(a) != rows) or (dtype and a.dtype != dtype):
            raise fail(part, f"{a.shape} {a.dtype}, expected {rows} rows")
        return a

    ids = np.asarray(array("ids.npy", 1, np.int64))
    if n == 0:
        return Generation(ids, np.zeros((0, 0), np.int8), *(np.zeros(0, np.float32),) * 2, None, None,
                          None, None, None, None, None, None)
    try:
        with np.load(files["basis.npz"], allow_pickle=False) as z:
            img_basis = Basis(np.asarray(z["image_mean"], np.float32), np.asarray(z["image_components"], np.float32),
                              int(z["image_n"]))
            sk_basis = (Basis(np.asarray(z["sketch_mean"], np.float32),
                              np.asarray(z["sketch_components"], np.float32), int(z["sketch_n"]))
                        if "sketch_components" in z else None)
    except Exception as e:  # noqa: BLE001 -- any reading error of the file (zip, npy, keys) is damage
        raise fail("basis.npz", e) from None
    codes = array("image_codes.npy", 2, np.int8)
    if codes.shape[1] != img_basis.dim or img_basis.components.shape[1] != img_basis.mean.shape[0]:
        raise fail("basis.npz", f"a {img_basis.components.shape} basis for {codes.shape[1]}-D codes")
    scale = array("image_scale.npy", 1, np.float32)
    norm = array("image_norm.npy", 1, np.float32) if derived else None
    whitening = None
    if record["whitened"] and derived:
        try:
            whitening = Whitening.from_npz(files["whitening.npz"])
        except Exception as e:  # noqa: BLE001 -- any reading error of the file (zip, npy, keys) is damage
            raise fail("whitening.npz", e) from None
        if whitening.projection.shape[0] != img_basis.mean.shape[0]:
            raise fail("whitening.npz", f"projection {whitening.projection.shape} for "
                                        f"{img_basis.mean.shape[0]}-D vectors")
    s_codes = s_scale = s_norm = mean = None
    if record.get("sketch"):
        if sk_basis is None:
            raise fail("basis.npz", "no sketch basis")
        s_codes = array("sketch_codes.npy", 2, np.int8)
        s_scale = array("sketch_scale.npy", 1, np.float32)
        if s_codes.shape[1] != sk_basis.dim:
            raise fail("basis.npz", f"a {sk_basis.components.shape} sketch basis for {s_codes.shape[1]}-D codes")
        if derived:
            s_norm = array("sketch_norm.npy", 1, np.float32)
            mean = np.asarray(array("sketch_mean.npy", 1, rows=None))
            if mean.shape != sk_basis.mean.shape:
                raise fail("sketch_mean.npy", f"{mean.shape}, the sketch basis is {sk_basis.components.shape}")
    else:
        sk_basis = None
    knn = None
    if record.get("kind") == "ivfpq" and derived:
        try:
            knn = VectorIndex.load(files["faiss"], device="cpu", nprobe=NPROBE)
        except (IndexNotFound, OSError, RuntimeError, ValueError) as e:
            raise fail("faiss", e) from None
        if len(knn) != n:
            raise fail("faiss", f"{len(knn)} vectors, expected {n}")
    return Generation(ids, codes, scale, norm, img_basis, whitening, s_codes, s_scale, s_norm, sk_basis, mean, knn)


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
        if len(index.ids) == len(ids) and np.array_equal(index.ids, ids):
            self.rows = np.arange(len(ids), dtype=np.int64)  # the usual case: nothing changed since the build
        elif len(index.ids) and len(ids):
            order = np.argsort(index.ids, kind="stable")
            pos = np.minimum(np.searchsorted(index.ids[order], ids), len(order) - 1)
            self.rows = np.where(index.ids[order][pos] == ids, order[pos], -1)
        self.row_to_vec = np.full(len(index), -1, np.int64)
        ok = self.rows >= 0
        self.row_to_vec[self.rows[ok]] = np.flatnonzero(ok)
        self.device = device
        self._describer: GemDescriber | None = None
        self._drawer: GemDescriber | None = None

    def _load(self, record: dict) -> np.ndarray:
        """Open the files of one generation; returns its ids."""
        g = open_generation(self.index.path, record)
        self.generation = g
        self.whitening, self.knn, self.sketch_mean = g.whitening, g.knn, g.sketch_mean
        self.image = g.image() if len(g.ids) else None
        self.sketch = g.sketch() if len(g.ids) else None
        self.record = record
        return g.ids

    def __len__(self) -> int:
        """Photos in the image index."""
        return len(self.rows)

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
        return self.sketch is not None and len(self.sketch) > 0

    def describe_sketch(self, edges) -> np.ndarray:
        """A query sketch's global descriptor in the index's space (centred on the collection, L2)."""
        from .adaptation import adapt_sketch
        from .fusion import drawing_input

        if self._drawer is None:
            self._drawer = GemDescriber(drawing_settings(self.settings.backbone), self.device, backend="auto")
        raw = adapt_sketch(self._drawer.describe([drawing_input(edges, query=True)])[0], self.settings.backbone)
        v = raw - self.sketch_mean
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    def sketch_top(self, q: np.ndarray, k: int, *, with_scores: bool = False):
        """View rows of the ``k`` best global sketch cosines (one int8 matrix-vector product over the
        collection's codes); with ``with_scores``, (rows, their float32 scores)."""
        scores = self.sketch.scores(np.asarray(q, np.float32), threads=cpu_threads())
        top = top_positions(scores, k) if k < len(scores) else np.arange(len(scores))
        rows = self.rows[top]
        ok = rows >= 0
        return (rows[ok], scores[top][ok]) if with_scores else rows[ok]

    def sketch_scores(self, q: np.ndarray, rows) -> np.ndarray:
        """Global sketch cosines of view rows; NaN for rows without a descriptor."""
        return self._cosines(self.sketch, q, np.asarray(rows, np.int64))

    def image_scores(self, q: np.ndarray, rows) -> np.ndarray:
        """Image cosines of view rows for a query vector in the index's space; NaN for rows without one."""
        return self._cosines(self.image, q, np.asarray(rows, np.int64))

    def _cosines(self, vectors: AffineCodes | None, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.full(len(rows), np.nan, np.float32)
        if vectors is None or not len(rows):
            return out
        v = self.row_to_vec[rows]
        ok = np.flatnonzero(v >= 0)
        out[ok] = vectors.scores_of(q, v[ok])
        return out

    def vectors_of_rows(self, rows) -> np.ndarray:
        """Image vectors of view rows (rows without one are left out)."""
        v = self.row_to_vec[np.asarray(rows, np.int64)]
        v = v[v >= 0]
        if not len(v):
            return np.zeros((0, self.image.matrix.shape[1] if self.image is not None else 0), np.float32)
        return self.image.vectors(v)

    def all_vectors(self) -> np.ndarray:
        """(N, d) float32 image vectors of every photo in the image index (its row ``i`` is view row
        ``rows[i]``)."""
        n = len(self.rows)
        if not n:
            return np.zeros((0, 0), np.float32)
        return np.concatenate([self.image.vectors(np.arange(s, min(n, s + 65536))) for s in range(0, n, 65536)])

    def decoded(self, name: str, rows) -> np.ndarray:
        """(n, G) float32 descriptors of view rows as the index keeps them, decoded: "gem" (L2-normalised GeM)
        or "sketch" (the raw global sketch descriptor); rows without one are left out."""
        v = self.row_to_vec[np.asarray(rows, np.int64)]
        v = v[v >= 0]
        order = np.argsort(v, kind="stable")  # memory maps read fastest in order
        g = self.generation
        basis, codes, scale = ((g.image_basis, g.image_codes, g.image_scale) if name == "gem"
                               else (g.sketch_basis, g.sketch_codes, g.sketch_scale))
        out = np.empty((len(v), basis.mean.shape[0]), np.float32)
        out[order] = basis.decode(codes[v[order]], scale[v[order]])
        return out

    def search_vector(self, q: np.ndarray, top_k: int, *, qe: int = 0, alpha: float = ALPHA) \
            -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the top ``top_k`` for a query vector, with alpha-QE over ``qe`` neighbours."""
        if self.image is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.asarray(q, np.float32)[None]
        if qe > 0:
            nb, _ = self._search(q, qe)
            if len(nb):
                q = alpha_qe(q, self.vectors_of_rows(nb), np.arange(len(nb))[None], alpha)
        return self._search(q, top_k)

    def _search(self, q: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` rows of this view (vectors of photos the view lacks are skipped): every code scored
        exactly, or for large collections IVF-PQ candidates re-ranked exactly."""
        if self.knn is None:
            scores = self.image.scores(q[0], threads=cpu_threads())
            scores[self.rows < 0] = -np.inf
            top = top_positions(scores, min(top_k, int((self.rows >= 0).sum())))
            return self.rows[top], scores[top].astype(np.float32)
        n = len(self.knn)
        k = min(n, top_k + 16)
        while True:
            _, ids = self.knn.search(q, min(n, max(k, RERANK * top_k)))
            ids = np.sort(ids[0][ids[0] >= 0])
            exact = self.image.vectors(ids) @ q[0] if len(ids) else np.zeros(0, np.float32)
            order = np.argsort(-exact, kind="stable")
            ids, sc = ids[order], exact[order]
            rows = self.rows[ids]
            ok = rows >= 0
            if ok.sum() >= top_k or k >= n:
                return rows[ok][:top_k], sc[ok][:top_k].astype(np.float32)
            k = min(n, 4 * k)


def collection_part(db: Path, max_rows: int | None = None, *, seed: int = 0):
    """What one shard contributes to the collection's learned image parameters: a sample of its photos'
    vectors (all, or a random ``max_rows`` of them: L2-normalised GeM, global sketch descriptors), the float64
    sum of all its global sketch descriptors, its count and how many of them are new (not yet in its image
    index).  (None, None, None, 0, 0) for an index without image descriptors or photos."""
    vectors = shard_vectors(Path(db))
    if vectors is None or not len(vectors):
        return None, None, None, 0, 0
    take = vectors.sample(max_rows, seed)
    return vectors.rows(take, "gem"), vectors.rows(take, "sketch"), vectors.sketch_sum(), len(vectors), vectors.n_new


def shard_vectors(db: Path) -> PhotoVectors | None:
    """The :class:`PhotoVectors` of an index (read-only; None without image descriptors)."""
    with CatalogReader(db) as con:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        # in path order: the bases learned on them do not depend on the order in which workers finished photos
        rows = con.execute("SELECT id, chunk, slot FROM files WHERE chunk IS NOT NULL ORDER BY path").fetchall()
        chunk_ids = [c for (c,) in con.execute("SELECT id FROM chunks")]
    if not meta.get("image_settings"):
        return None
    raw = {c for c in chunk_ids if all(chunk_path(db, c, a).exists() for a in ("gem", "sketch"))}
    previous = None
    if meta.get("image_index"):
        try:
            previous = open_generation(db, json.loads(meta["image_index"]), derived=False)
        except Exception as e:  # noqa: BLE001 -- a damaged generation: the writer drops its photos on opening
            log.warning("%s", e)
    a = np.array(rows, np.int64).reshape(-1, 3)
    return PhotoVectors(db, a[:, 0], a[:, 1], a[:, 2], raw, previous)
