"""Image -> image search with global descriptors: whitening, alpha query expansion, k-NN (METHOD.md section 7).

Descriptors are rows, ``(N, d)`` float32, L2-normalised (the layout of faiss; cirtorch's ``d x N`` columns
are not used here).  Similarity is the inner product.

- :class:`Whitening` / :func:`learn_whitening`: PCA-whitening learned on the collection's own descriptors,
  with shrinkage of the eigenvalues so that a small collection does not blow up its weak directions.
- :func:`alpha_qe`: alpha-weighted query expansion.
- :class:`VectorIndex`: exact (faiss ``IndexFlatIP``, or torch matmul + top-k on CUDA) or approximate
  (faiss IVF-PQ, chosen automatically for large collections) k-NN by inner product.

faiss and torch are imported where an index of their kind is made (torch only for the torch kind).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write
from .vectors import l2n

log = logging.getLogger(__name__)

__all__ = [
    "VECTOR_INDEX_KINDS",
    "VectorIndex",
    "Whitening",
    "alpha_qe",
    "learn_whitening",
]


# ---------------------------------------------------------------------------------------------------------------
# Whitening


@dataclass
class Whitening:
    """A learned linear whitening: ``x -> L2((x - mean) @ projection)``.

    Attributes
    ----------
    mean : (d,) float32 ndarray
        Mean of the learning descriptors.
    projection : (d, d_out) float32 ndarray
        Columns are the principal directions scaled by ``1 / sqrt(shrunk eigenvalue)``, strongest first.
    """

    mean: np.ndarray
    projection: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        self.projection = np.ascontiguousarray(self.projection, dtype=np.float32)
        if self.mean.ndim != 1 or self.projection.ndim != 2 or self.projection.shape[0] != self.mean.shape[0]:
            raise ValueError(f"whitening needs mean (d,) and projection (d, d_out); got {self.mean.shape} "
                             f"and {self.projection.shape}")

    @property
    def dim_in(self) -> int:
        return self.mean.shape[0]

    @property
    def dim_out(self) -> int:
        return self.projection.shape[1]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Whiten descriptors.

        Parameters
        ----------
        x : (n, d) or (d,) array_like
            Raw descriptors.

        Returns
        -------
        (n, d_out) or (d_out,) float32 ndarray
            ``(x - mean) @ projection``, L2-normalised per row.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.dim_in or x.ndim not in (1, 2):
            raise ValueError(f"expected descriptors (n, {self.dim_in}) or ({self.dim_in},), got {x.shape}")
        return l2n((x - self.mean) @ self.projection).astype(np.float32)

    def to_npz(self, path) -> None:
        """Write ``mean`` and ``projection`` to an ``.npz`` file, atomically (temporary file + rename)."""

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, mean=self.mean, projection=self.projection)
                f.flush()
                os.fsync(f.fileno())

        atomic_write(path, write)

    @classmethod
    def from_npz(cls, path) -> Whitening:
        """Read a file written by :meth:`to_npz`."""
        with np.load(path, allow_pickle=False) as z:
            return cls(mean=z["mean"], projection=z["projection"])


def learn_whitening(x: np.ndarray, *, dim: int | None = None, shrinkage: float = 0.5, min_images: int = 1000,
                    samples_per_dim: float = 20.0, max_samples: int = 100_000, seed: int = 0) -> Whitening | None:
    """Learn PCA-whitening on a collection's own descriptors.

    The covariance eigenvalues are shrunk towards their mean, ``lambda_i -> (1 - s) lambda_i + s mean(lambda)``,
    before ``1 / sqrt``, which bounds the gain of weak directions (the whitened variances are at most
    ``1 / (1 - s)``).  At most ``N / samples_per_dim`` components are kept.

    Why the limits: whitening learned on the very images it is then applied to over-fits when the kept
    dimension is not small against ``N``.  In the extreme (``s = 0``, ``N - 1`` components) the whitened
    collection is a regular simplex, every image equally far from every other, and retrieval is random.
    On the 1,250 Sketchy photos (category retrieval, raw GeM mAP 0.72) whitening learned on the same photos
    loses mAP unless ``N / dim`` is about 20 or more, while whitening learned on *other* photos helps at any
    dimension; stronger shrinkage never hurt there.

    Parameters
    ----------
    x : (N, d) array_like
        Raw L2-normalised descriptors of the collection.
    dim : int, optional, keyword-only
        Keep at most the top ``dim`` components.  The kept number is
        ``min(dim or d, N - 1, N // samples_per_dim)``.
    shrinkage : float
        ``s`` in [0, 1): 0 is plain PCA-whitening (identity covariance on the learning set).
    min_images : int
        Below this many descriptors no whitening is learned and None is returned (callers fall back to
        the raw L2-normalised descriptors).  1,000 by default, which with ``samples_per_dim = 20`` keeps
        at least 50 components.
    samples_per_dim : float
        Learning descriptors per kept component (> 0); 20 by default (see above).  Use 1 to keep every
        informative component (``N - 1`` when ``N <= d``), e.g. when learning on a separate set.
    max_samples : int
        Learn on a random subset of this many rows (fixed ``seed``) when ``N`` is larger.
    seed : int
        Seed of that subset.

    Returns
    -------
    Whitening or None
        None when ``N < max(min_images, 2)``.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"descriptors must be (N, d), got shape {x.shape}")
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1), got {shrinkage}")
    if dim is not None and dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not samples_per_dim > 0:
        raise ValueError(f"samples_per_dim must be > 0, got {samples_per_dim}")
    n, d = x.shape
    if n < max(int(min_images), 2):
        log.info("whitening not learned: %d images < min_images=%d", n, min_images)
        return None
    if n > max_samples:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
        x = x[rows]
        n = max_samples
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / max(n - 1, 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.maximum(eigval[order], 0.0), eigvec[:, order]
    keep = max(1, min(d if dim is None else dim, d, n - 1, int(n // samples_per_dim)))
    floor = 1e-12 * max(float(eigval[0]), 1e-30)
    shrunk = (1.0 - shrinkage) * eigval + shrinkage * eigval.mean()
    shrunk = np.maximum(shrunk, floor)
    projection = eigvec[:, :keep] / np.sqrt(shrunk[:keep])
    return Whitening(mean=mean.astype(np.float32), projection=projection.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Query expansion


def alpha_qe(query: np.ndarray, db: np.ndarray, neighbours: np.ndarray, alpha: float = 3.0) -> np.ndarray:
    """Alpha-weighted query expansion: ``q' = L2(q + sum_i max(q . d_i, 0) ** alpha d_i)``.

    Parameters
    ----------
    query : (m, d) or (d,) array_like
        L2-normalised queries.
    db : (N, d) array_like
        L2-normalised database descriptors.
    neighbours : (m, n) or (n,) int array_like
        Ids into ``db`` of each query's top ``n`` results; ``-1`` entries (missing results) are ignored.
    alpha : float
        Exponent of the weights; 0 gives plain average query expansion.

    Returns
    -------
    (m, d) or (d,) float32 ndarray
        The expanded, L2-normalised queries (the same layout as ``query``).
    """
    q = np.asarray(query, dtype=np.float32)
    single = q.ndim == 1
    q2 = q[None] if single else q
    nb = np.asarray(neighbours, dtype=np.int64)
    nb = nb[None] if nb.ndim == 1 else nb
    db = np.asarray(db, dtype=np.float32)
    if q2.ndim != 2 or db.ndim != 2 or db.shape[1] != q2.shape[1]:
        raise ValueError(f"query (m, d) and db (N, d) disagree: {q.shape} vs {db.shape}")
    if nb.ndim != 2 or nb.shape[0] != q2.shape[0]:
        raise ValueError(f"neighbours must be (m, n) with m = {q2.shape[0]}, got {nb.shape}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if np.any(nb >= db.shape[0]):
        raise ValueError("neighbour ids out of range")
    out = np.empty_like(q2)
    step = max(1, (1 << 24) // max(1, nb.shape[1] * db.shape[1]))  # bound the gathered (step, n, d) block
    for b0 in range(0, q2.shape[0], step):
        qb, nbb = q2[b0:b0 + step], nb[b0:b0 + step]
        valid = nbb >= 0
        d_nb = db[np.where(valid, nbb, 0)]  # (step, n, d)
        sims = np.maximum(np.einsum("md,mnd->mn", qb, d_nb), 0.0)
        w = np.where(valid, sims ** alpha, 0.0).astype(np.float32)
        out[b0:b0 + step] = l2n(qb + np.einsum("mn,mnd->md", w, d_nb)).astype(np.float32)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------------------------
# k-NN index

#: kinds of :class:`VectorIndex`
VECTOR_INDEX_KINDS = ("auto", "flat", "ivfpq", "torch")


def _choose_pq_m(d: int, target_sub_dim: int = 4) -> int:
    """Number of PQ sub-quantizers: a divisor of d giving sub-vectors of about ``target_sub_dim`` dims."""
    divisors = [m for m in range(1, d + 1) if d % m == 0]
    return min(divisors, key=lambda m: (abs(math.log(d / m / target_sub_dim)), -m))


class VectorIndex:
    """k-NN by inner product over L2-normalised vectors.

    Parameters
    ----------
    vectors : (N, d) float32 array_like
        L2-normalised database vectors; row i has id i.
    kind : {"auto", "flat", "ivfpq", "torch"}, keyword-only
        ``flat``: faiss ``IndexFlatIP`` (exact).  ``torch``: exact, a matrix product and top-k in torch
        (fp16 on CUDA, float32 on CPU).  ``ivfpq``: faiss ``IVF<nlist>,PQ<m>`` (approximate, compressed).
        ``auto``: ``torch`` when ``device`` names a CUDA device; else ``ivfpq`` when ``N >= ivf_threshold``;
        else ``torch`` when CUDA is available (and ``device`` is not ``"cpu"``); else ``flat``.
    device : str, optional
        Device of the torch kind; None: CUDA when available, else CPU.
    ivf_threshold : int
        Collection size from which ``auto`` picks IVF-PQ.
    nlist : int, optional
        IVF cells; default ``4 sqrt(N)`` (at least 1, at most N / 39 so each cell gets training points).
    pq_m : int, optional
        PQ sub-quantizers (8 bits each, so ``pq_m`` bytes per vector); must divide d.  Default: sub-vectors
        of about 4 dimensions.
    nprobe : int
        IVF cells visited per query.
    seed : int
        Seed of the IVF-PQ training sample.
    """

    def __init__(self, vectors: np.ndarray, *, kind: str = "auto", device: str | None = None,
                 ivf_threshold: int = 200_000, nlist: int | None = None, pq_m: int | None = None,
                 nprobe: int = 16, seed: int = 0):
        import faiss

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"vectors must be a non-empty (N, d) array, got shape {x.shape}")
        if kind not in VECTOR_INDEX_KINDS:
            raise ValueError(f"unknown index kind {kind!r}; known: {VECTOR_INDEX_KINDS}")
        n, d = x.shape
        self.d = d
        self.ntotal = n
        self._faiss = None
        self._tensor = None  # torch.Tensor of the torch kind
        self.device = None  # search.Device of the torch kind
        if kind == "auto":
            kind = self._auto_kind(n, device, ivf_threshold)
        self.kind = kind
        if kind == "torch":
            self._set_tensor(x, device)
        elif kind == "flat":
            self._faiss = faiss.IndexFlatIP(d)
            self._faiss.add(x)
        else:
            self._faiss = self._build_ivfpq(x, nlist=nlist, pq_m=pq_m, seed=seed)
            self.nprobe = nprobe
        log.info("vector index: %s, %d x %d", kind, n, d)

    @staticmethod
    def _auto_kind(n: int, device: str | None, ivf_threshold: int) -> str:
        if device not in (None, "auto"):
            from .search import pick_device

            if pick_device(device).type == "cuda":
                return "torch"
            return "ivfpq" if n >= ivf_threshold else "flat"
        if n >= ivf_threshold:
            return "ivfpq"
        from .search import cuda_available

        return "torch" if cuda_available() else "flat"

    def _set_tensor(self, x: np.ndarray, device: str | None) -> None:
        import torch

        from .search import pick_device

        self.device = pick_device(device)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self._tensor = torch.from_numpy(x).to(str(self.device), dtype=dtype)

    @staticmethod
    def _build_ivfpq(x: np.ndarray, *, nlist: int | None, pq_m: int | None, seed: int):
        import faiss

        n, d = x.shape
        if nlist is None:
            nlist = int(round(4 * math.sqrt(n)))
            nlist = max(1, min(nlist, n // 39))
        if pq_m is None:
            pq_m = _choose_pq_m(d)
        if d % pq_m:
            raise ValueError(f"pq_m={pq_m} must divide the dimension {d}")
        index = faiss.index_factory(d, f"IVF{nlist},PQ{pq_m}", faiss.METRIC_INNER_PRODUCT)
        # coarse k-means on up to 32 points per cell; the PQ codebooks on up to 40 points per centroid
        n_train = min(n, max(256 * 40, 32 * nlist))
        if n_train < 39 * 256:  # the coarse k-means gets 32 points per cell by design, the PQ codebooks less
            log.warning("IVF-PQ trained on %d vectors only (its PQ codebooks ask for %d); its recall may be poor",
                        n_train, 39 * 256)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.min_points_per_centroid = 1  # warned above, through logging (faiss would print)
        ivf.pq.cp.min_points_per_centroid = 1
        ivf.pq.cp.max_points_per_centroid = 40  # d / 4 small k-means: training time grows with their samples
        ivf.do_polysemous_training = False  # only for Hamming-filtered search, which is not used; slow
        train = x
        if n_train < n:
            rows = np.sort(np.random.default_rng(seed).choice(n, size=n_train, replace=False))
            train = x[rows]
        index.train(train)
        index.add(x)
        return index

    @property
    def nprobe(self) -> int:
        """IVF cells visited per query (IVF-PQ only; 0 for the exact kinds)."""
        if self.kind != "ivfpq":
            return 0
        import faiss

        return int(faiss.extract_index_ivf(self._faiss).nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind != "ivfpq":
            return
        import faiss

        if value < 1:
            raise ValueError(f"nprobe must be >= 1, got {value}")
        faiss.extract_index_ivf(self._faiss).nprobe = int(value)

    def __len__(self) -> int:
        return self.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors of each query by inner product.

        Parameters
        ----------
        queries : (m, d) array_like
            L2-normalised queries.
        k : int
            Results per query.

        Returns
        -------
        D : (m, k) float32 ndarray
            Inner products, best first; ``-inf`` where fewer than ``k`` results exist.
        I : (m, k) int64 ndarray
            Ids (row numbers of the database); ``-1`` where fewer than ``k`` results exist.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.d:
            raise ValueError(f"queries must be (m, {self.d}), got shape {q.shape}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        m = q.shape[0]
        if self.kind == "torch":
            import torch

            kk = min(k, self.ntotal)
            scores = np.full((m, k), -np.inf, np.float32)
            ids = np.full((m, k), -1, np.int64)
            with torch.inference_mode():
                t = self._tensor
                block = max(1, (1 << 26) // max(1, self.ntotal))  # bound the (block, N) score matrix
                for b0 in range(0, m, block):
                    qb = torch.from_numpy(q[b0:b0 + block]).to(t.device, dtype=t.dtype)
                    s = qb @ t.T
                    v, i = torch.topk(s.float(), kk, dim=1)
                    scores[b0:b0 + block, :kk] = v.cpu().numpy()
                    ids[b0:b0 + block, :kk] = i.cpu().numpy()
            return scores, ids
        scores, ids = self._faiss.search(q, k)
        scores = scores.astype(np.float32, copy=False)
        ids = ids.astype(np.int64, copy=False)
        scores[ids < 0] = -np.inf
        return scores, ids

    def vectors(self) -> np.ndarray:
        """The stored vectors (N, d) float32 (exact kinds only; IVF-PQ keeps only codes)."""
        if self.kind == "torch":
            return self._tensor.float().cpu().numpy()
        if self.kind == "flat":
            return self._faiss.reconstruct_n(0, self.ntotal)
        raise ValueError("an IVF-PQ index keeps compressed codes, not the vectors")

    def save(self, path) -> None:
        """Write the index as a faiss file, atomically (a torch index is written as ``IndexFlatIP``)."""
        import faiss

        if self.kind == "torch":
            index = faiss.IndexFlatIP(self.d)
            index.add(self.vectors())
        else:
            index = self._faiss
        atomic_write(path, lambda tmp: faiss.write_index(index, tmp))

    @classmethod
    def load(cls, path, *, mmap: bool = True, device: str | None = None, nprobe: int | None = None) -> VectorIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The faiss file.
        mmap : bool
            Memory-map the file (``IO_FLAG_MMAP``) instead of reading it into memory, where faiss can.
        device : str, optional
            A CUDA device turns an exact index into the torch kind on that device; None: CUDA when
            available; ``"cpu"``: keep faiss.
        nprobe : int, optional
            IVF cells visited per query (IVF-PQ); default: as saved.
        """
        import faiss

        path = os.fspath(path)
        if not os.path.isfile(path):
            from .errors import IndexNotFound

            raise IndexNotFound(f"no vector index at {path}")
        index = None
        if mmap:
            try:
                # IO_FLAG_MMAP maps IVF lists, IO_FLAG_MMAP_IFC the codes of flat indexes
                flags = faiss.IO_FLAG_MMAP | getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY
                index = faiss.read_index(path, flags)
            except RuntimeError:
                index = None  # this index type cannot be mapped
        if index is None:
            index = faiss.read_index(path)
        self = cls.__new__(cls)
        self.d = index.d
        self.ntotal = index.ntotal
        self._faiss = index
        self._tensor = None
        self.device = None
        is_ivf = faiss.try_extract_index_ivf(index) is not None
        self.kind = "ivfpq" if is_ivf else "flat"
        if not is_ivf and index.ntotal > 0:
            from .search import pick_device

            dev = pick_device(device)
            if dev.type == "cuda":
                self._set_tensor(index.reconstruct_n(0, index.ntotal), str(dev))
                self.kind = "torch"
                self._faiss = None
        if nprobe is not None:
            self.nprobe = nprobe
        return self


# ---------------------------------------------------------------------------------------------------------------
# Benchmark
