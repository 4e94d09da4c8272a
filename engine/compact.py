"""Compact per-photo vectors: int8 codes with one scale per vector, a PCA basis learned on the collection, and
the matrix-vector products that score them without decoding a whole collection.

An index stores each photo's image descriptor and global sketch descriptor as the int8 codes of its PCA
coordinates (``engine.imageindex``), and each photo's rotation descriptor as int8 codes (``engine.catalog``):

* :func:`quantise` / :func:`dequantise`: ``x ~ scale * codes``, the scale chosen per vector
  (``max |x| / 127``), so each vector keeps its own range.
* :class:`Basis`: a mean and ``K`` orthonormal principal directions of a collection's vectors;
  ``encode`` gives the int8 codes of a vector's coordinates, ``decode`` the vector back.
* :class:`AffineCodes`: what search needs of a code-stored collection: every photo's searchable vector is
  ``L2(offset + (scale * codes) @ matrix)`` (the decoded vector, whitened or centred), and a query's cosines
  with all of them are one int8 matrix-vector product (:func:`i8_matvec`) with the query brought into code
  space, divided by the photos' stored norms.
* :class:`Dequantised`: a read-only row view of int8 codes and scales that decodes the rows asked for.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from .npnet import blas_threads

#: PCA coordinates kept per photo for the image and the global sketch descriptors (bytes per photo each)
BASIS_DIM = 256


def quantise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes int8 (n, d), scales float32 (n,)) with ``x ~ scales[:, None] * codes``; a zero row has scale 0."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"quantise takes (n, d) rows, got {x.shape}")
    scale = (np.abs(x).max(axis=1) / 127.0 if x.shape[1] else np.zeros(len(x))).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    codes = np.rint(x / safe[:, None]).clip(-127, 127).astype(np.int8)
    return codes, scale


def dequantise(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 rows ``scale[:, None] * codes``."""
    return np.asarray(codes, np.float32) * np.asarray(scale, np.float32)[:, None]


def i8_matvec(codes: np.ndarray, w: np.ndarray, *, block: int = 1024, threads: int = 1) -> np.ndarray:
    """``codes @ w`` of a (possibly memory-mapped) int8 matrix, in float32.

    Parameters
    ----------
    codes : (N, K) int8 ndarray
    w : (K,) float32 ndarray
    block : int
        Rows converted at a time (OpenCV's vectorised int8 -> float32 conversion into a buffer that stays in
        cache, then one BLAS product per block).
    threads : int
        Threads that share the rows out in contiguous parts (OpenCV and the BLAS release the GIL), each
        converting and multiplying its blocks on one BLAS thread; a pass over 1,000,000 x 256 codes takes
        about 45 ms on one thread and 25-40 ms on two (AMD EPYC, a shared VM).  Fewer than
        ``MIN_ROWS_PER_THREAD`` rows per thread: fewer threads.

    Returns
    -------
    (N,) float32 ndarray
    """
    w = np.ascontiguousarray(w, np.float32)
    n = len(codes)
    out = np.empty(n, np.float32)

    def run(lo: int, hi: int) -> None:
        for s in range(lo, hi, block):
            part = np.ascontiguousarray(codes[s:min(hi, s + block)])
            out[s:s + len(part)] = cv2.add(part, 0.0, dtype=cv2.CV_32F) @ w

    parts = max(1, min(int(threads), n // MIN_ROWS_PER_THREAD))
    if parts == 1:
        run(0, n)
        return out
    step = -(-n // parts)
    step = -(-step // block) * block  # whole blocks per part
    with ThreadPoolExecutor(parts) as pool:
        for done in [pool.submit(_one_blas_thread, run, lo, min(n, lo + step)) for lo in range(0, n, step)]:
            done.result()
    return out


#: rows below which a thread of ``i8_matvec`` is not worth starting (a part takes about 1 ms)
MIN_ROWS_PER_THREAD = 20_000


def _one_blas_thread(fn, *args) -> None:
    with blas_threads(1):
        fn(*args)


@dataclass(frozen=True)
class Basis:
    """A mean and ``K`` orthonormal principal directions (rows of ``components``), learned on ``n`` vectors."""

    mean: np.ndarray  # (d,) float32
    components: np.ndarray  # (K, d) float32, orthonormal rows, strongest first
    n: int  # photos of the collection it was learned for

    @property
    def dim(self) -> int:
        return self.components.shape[0]

    def encode(self, x: np.ndarray, *, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """int8 codes and scales of the coordinates of rows ``x`` (n, d)."""
        codes = np.empty((len(x), self.dim), np.int8)
        scales = np.empty(len(x), np.float32)
        for s in range(0, len(x), block):
            y = (np.asarray(x[s:s + block], np.float32) - self.mean) @ self.components.T
            codes[s:s + len(y)], scales[s:s + len(y)] = quantise(y)
        return codes, scales

    def decode(self, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """(n, d) float32 vectors back from their codes."""
        return self.mean + dequantise(codes, scales) @ self.components


def learn_basis(x: np.ndarray, dim: int = BASIS_DIM, *, center: np.ndarray | None = None,
                n: int | None = None) -> Basis:
    """PCA of rows ``x`` (m, d): the mean (or ``center``) and the top ``min(dim, m, d)`` directions; ``n``: the
    size of the collection ``x`` samples (default m), recorded in the basis.

    With ``n <= dim`` the basis spans every vector it was learned on, so those are decoded exactly (up to
    the int8 rounding of their coordinates)."""
    x = np.asarray(x, np.float32)
    mean = x.mean(axis=0) if center is None else np.asarray(center, np.float32)
    k = max(1, min(dim, len(x), x.shape[1]))
    c = (x - mean).astype(np.float64)
    if len(c) <= x.shape[1]:  # few rows: the directions from the (n, n) Gram matrix
        _, _, vt = np.linalg.svd(c, full_matrices=False)
    else:
        vals, vecs = np.linalg.eigh(c.T @ c)
        vt = vecs[:, ::-1].T
    comp = np.zeros((k, x.shape[1]), np.float32)
    comp[:min(k, len(vt))] = vt[:k]
    # stored in float16 (engine.imageindex): rounded here, so codes are made and read with the same basis
    return Basis(mean.astype(np.float32), comp.astype(np.float16).astype(np.float32), len(x) if n is None else n)


@dataclass(frozen=True)
class AffineCodes:
    """A collection's searchable vectors ``L2(offset + (scale * codes) @ matrix)`` from their int8 codes.

    ``norms`` holds each row's norm before the L2, so a query ``q`` (a unit vector in the searchable space)
    is scored against every row with one int8 product: ``(q . offset + scale * (codes @ (matrix @ q))) / norm``.
    """

    codes: np.ndarray  # (N, K) int8
    scales: np.ndarray  # (N,) float32
    norms: np.ndarray  # (N,) float32
    offset: np.ndarray  # (D,) float32
    matrix: np.ndarray  # (K, D) float32

    def __len__(self) -> int:
        return len(self.codes)

    @staticmethod
    def norms_of(codes: np.ndarray, scales: np.ndarray, offset: np.ndarray, matrix: np.ndarray,
                 *, block: int = 65536) -> np.ndarray:
        out = np.empty(len(codes), np.float32)
        for s in range(0, len(codes), block):
            u = offset + dequantise(codes[s:s + block], scales[s:s + block]) @ matrix
            out[s:s + len(u)] = np.linalg.norm(u, axis=1)
        return out

    def scores(self, q: np.ndarray, *, threads: int = 1) -> np.ndarray:
        """(N,) cosines of the unit query ``q`` (D,) with every row (0 for a row whose vector is zero), the
        int8 pass on ``threads`` threads (``i8_matvec``)."""
        q = np.asarray(q, np.float32)
        dots = i8_matvec(self.codes, self.matrix @ q, threads=threads) * self.scales + float(self.offset @ q)
        return dots / np.maximum(self.norms, 1e-12)

    def scores_of(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosines of ``q`` with the given rows (read in ascending order, for memory maps)."""
        rows = np.asarray(rows, np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty(len(rows), np.float32)
        if len(rows):
            q = np.asarray(q, np.float32)
            r = rows[order]
            dots = (np.asarray(self.codes[r], np.float32) @ (self.matrix @ q)) * self.scales[r] + float(self.offset @ q)
            out[order] = dots / np.maximum(self.norms[r], 1e-12)
        return out

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """(n, D) float32 searchable (unit) vectors of the given rows."""
        rows = np.asarray(rows, np.int64)
        u = self.offset + dequantise(self.codes[rows], self.scales[rows]) @ self.matrix
        return u / np.maximum(self.norms[rows], 1e-12)[:, None]


class Dequantised:
    """Rows of int8 ``codes`` times their ``scales``, decoded (float32) when indexed: ``view[i]``,
    ``view[a:b]``, ``view[rows]``; ``np.asarray(view)`` decodes all of them."""

    def __init__(self, codes: np.ndarray, scales: np.ndarray) -> None:
        self.codes, self.scales = codes, scales

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    @property
    def ndim(self) -> int:
        return len(self.codes.shape)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return np.asarray(self.codes[key], np.float32) * np.float32(self.scales[key])
        return dequantise(self.codes[key], self.scales[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = dequantise(self.codes, self.scales)
        return a if dtype is None else a.astype(dtype)


__all__ = ["BASIS_DIM", "AffineCodes", "Basis", "Dequantised", "dequantise", "i8_matvec", "learn_basis",
           "quantise"]
