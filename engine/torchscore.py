"""The torch backend of sketch scoring (``search.QueryScorer`` with ``backend="torch"``; the default on CUDA).

The same steps as the numpy backend, as dense products on a torch device, and one thing more: a collection's
codes stay on the device between queries (:func:`resident`), and :meth:`TorchScorer.rank` runs a whole
query there (the 1-D or coarse pass over every photo, the shortlist, the exact 2-D scores, the alignments),
bringing back only the ranked rows.  Uploading 1M photos' codes takes longer than the query itself.

On CUDA the float32 products run on the tensor cores (TF32) split in two: each query matrix ``q`` is
``hi + lo``, ``hi`` its TF32 part (10 mantissa bits, exact in TF32) and ``lo`` the rest; the codes are
integers below 128, exact in TF32, so ``hi @ x + lo @ x`` is the float32 product to about 2^-21 of ``|q|``
(about float32 rounding), at twice the cost of one TF32 product and a fraction of a plain float32 one.

torch is imported by this module: it is loaded only where a torch device scores.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

#: collections whose codes stay on a device (the least recently used beyond this are dropped)
MAX_RESIDENT = 2
#: floats of a block's score matrix (rows of the query matrix x photos): 1 GiB of float32
BLOCK_FLOATS = 1 << 28
#: photos aligned per block
ALIGN_BLOCK = 4096

_lock = threading.Lock()
#: (id of the codes, id of the inverse norms, device) -> (weak references to both, their tensors)
_resident: OrderedDict[tuple, tuple[weakref.ref, weakref.ref, torch.Tensor, torch.Tensor]] = OrderedDict()


def _blocks_of(a) -> list[np.ndarray]:
    """The row blocks of an array or of a ``catalog.RowBlocks``."""
    return list(getattr(a, "blocks", [a]))


def _unchanging(a) -> bool:
    """Whether an array cannot change under us (read-only memory maps, as an opened index's): only those are
    kept on the device; a writable array is uploaded at each call."""
    return all(not np.asarray(b).flags.writeable for b in _blocks_of(a))


def _upload(a, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(tuple(a.shape), dtype=dtype, device=device)
    start = 0
    for b in _blocks_of(a):
        for s in range(0, len(b), 1 << 16):  # pieces: a memory map is read once, in order
            part = np.ascontiguousarray(b[s:s + (1 << 16)])
            if not part.flags.writeable:
                part = part.copy()
            out[start + s:start + s + len(part)] = torch.from_numpy(part).to(device, dtype)
        start += len(b)
    return out


def resident(codes, inv_norms, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A collection's codes (int8) and inverse norms (float32) on ``device``, uploaded once per pair of arrays
    and kept while the arrays live (at most ``MAX_RESIDENT`` pairs); arrays that can change are uploaded anew.
    """
    if not (_unchanging(codes) and _unchanging(inv_norms)):
        return _upload(codes, device, torch.int8), _upload(inv_norms, device, torch.float32)
    key = (id(codes), id(inv_norms), str(device))
    with _lock:
        hit = _resident.get(key)
        if hit is not None and hit[0]() is codes and hit[1]() is inv_norms:
            _resident.move_to_end(key)
            return hit[2], hit[3]
        _resident.pop(key, None)
        while len(_resident) >= MAX_RESIDENT:
            _resident.popitem(last=False)
        x, inv = _upload(codes, device, torch.int8), _upload(inv_norms, device, torch.float32)
        _resident[key] = (weakref.ref(codes), weakref.ref(inv_norms), x, inv)
        return x, inv


def forget_resident() -> None:
    """Drop every collection kept on a device (tests; freeing device memory)."""
    with _lock:
        _resident.clear()


def top_positions(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``vectors.top_positions`` on a device: positions of the ``k`` best scores, best first, ties in position
    order."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    kth = torch.topk(scores, k, sorted=False).values.min()
    head = torch.nonzero(scores >= kth).flatten()  # the k best and any ties with the k-th, in position order
    order = torch.sort(scores[head], descending=True, stable=True).indices
    return head[order][:k]


class TorchScorer:
    """The torch backend of a :class:`search.QueryScorer`: its matrices as tensors on its device, the same
    steps (``rank``: a whole query on the device)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.device = torch.device(str(scorer.device))
        self.split = self.device.type == "cuda"
        self.w2 = self._pair(np.ascontiguousarray(scorer.w2.T))  # used as x @ w2 = (w2.T @ x.T).T
        self.t2 = [self._tensor(t) for t in scorer.t2]
        self.q2t = self._pair(scorer.q2t)
        self.qct = self._pair(scorer.qct)
        self.q1t = {k: self._pair(v) for k, v in scorer.q1t.items()}
        self.q2h = self.q2t[0].to(torch.float16) if self.split else None  # exhaustive mode's first pass

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def _pair(self, a: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A query matrix as (hi, lo) on CUDA (module docstring), (itself, None) elsewhere."""
        a = np.ascontiguousarray(a, np.float32)
        if not self.split:
            return self._tensor(a), None
        hi = (a.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)  # 10 mantissa bits: exact in TF32
        return self._tensor(hi), self._tensor(a - hi)

    @contextlib.contextmanager
    def _tf32(self) -> Iterator[None]:
        """TF32 products on CUDA, around the split products only (``_pair`` keeps float32 accuracy; other float32
        products, as the binary refinement's, stay exact); nothing elsewhere."""
        if not self.split:
            yield
            return
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)

    def _mm(self, q: tuple[torch.Tensor, torch.Tensor | None], x: torch.Tensor) -> torch.Tensor:
        """``q @ x.T``: (rows of q, photos) float32."""
        hi, lo = q
        with self._tf32():
            out = hi @ x.T
            if lo is not None:
                out.addmm_(lo, x.T)
        return out

    def _half_mm(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``q @ x.T`` in float16 on the tensor cores, (rows of q, photos): the codes are exact in float16, ``q``
        and the products are rounded to it (about 1e-3 of a score): a first pass, re-scored exactly."""
        return q @ x.to(torch.float16).T

    def _codes(self, codes: np.ndarray) -> torch.Tensor:
        return _upload(codes, self.device, torch.int8)

    def _inv(self, inv_norms: np.ndarray) -> torch.Tensor:
        return _upload(inv_norms, self.device, torch.float32)

    # -- numpy in, numpy out (QueryScorer's methods) ----------------------------------------------------
    def score_2d(self, codes: np.ndarray, inv_norms: np.ndarray, *, binary: bool, coarse: bool) -> np.ndarray:
        with torch.inference_mode():
            return self.s2(self._codes(codes), self._inv(inv_norms), binary=binary, coarse=coarse).cpu().numpy()

    def placement_scores(self, codes: np.ndarray, inv_norms: np.ndarray) -> np.ndarray:
        """``QueryScorer.placement_scores``: (n, P) float32."""
        with torch.inference_mode():
            x, inv = self._codes(codes), self._inv(inv_norms)
            s = self._mm(self.q2t, x.to(torch.float32)).T
            for k, (a, b) in enumerate(self.scorer.segments2):
                s[:, a:b] *= inv[:, k, 0, None]
            return s.cpu().numpy()

    def score_1d(self, codes: np.ndarray, inv_norms: np.ndarray, axes: str) -> np.ndarray:
        n_cols = self.q1t[axes][0].shape[1]
        with torch.inference_mode():
            return self.s1(self._codes(np.asarray(codes)[:, :n_cols]), self._inv(inv_norms), axes).cpu().numpy()

    def _rows(self, codes, inv_norms, rows: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes and inverse norms of the given rows (None: all) on the device: gathered there from the
        collection kept there (:func:`resident`), or, for arrays that may change, only those rows uploaded."""
        if rows is not None and not (_unchanging(codes) and _unchanging(inv_norms)):
            rows = np.asarray(rows, np.int64)
            return self._codes(codes[rows]), self._inv(inv_norms[rows])
        x, inv = resident(codes, inv_norms, self.device)
        if rows is None:
            return x, inv
        idx = torch.as_tensor(np.asarray(rows, np.int64), device=self.device)
        return x[idx], inv[idx]

    def score_rows(self, codes, inv_norms, rows: np.ndarray) -> np.ndarray:
        """Exact 2-D scores of the given rows of a collection (kept on the device: :func:`resident`)."""
        with torch.inference_mode():
            x, inv = self._rows(codes, inv_norms, rows)
            return self._by_blocks(lambda a, b: self.s2(x[a:b], inv[a:b], binary=False, coarse=False),
                                   x.shape[0], self.q2t[0].shape[0]).cpu().numpy()

    # -- tensors in, tensors out --------------------------------------------------------------------------
    def s2(self, x: torch.Tensor, inv: torch.Tensor, *, binary: bool, coarse: bool) -> torch.Tensor:
        """Best 2-D score of each photo of a block: (n,) float32."""
        sc = self.scorer
        x = x.to(torch.float32)
        best = torch.full((x.shape[0],), -torch.inf, device=self.device)
        if binary:
            coef = self._mm(self.w2, x).T.reshape(x.shape[0], len(sc.scales), len(sc.mirrors), -1)
            for k, t in enumerate(self.t2):
                s = self._refine_binary(coef[:, k], t, len(sc.values[k]))
                best = torch.maximum(best, s * inv[:, k, 0])
        else:
            q, segments = (self.qct, sc.segments2c) if coarse else (self.q2t, sc.segments2)
            s = self._mm(q, x)
            for k, (a, b) in enumerate(segments):
                best = torch.maximum(best, s[a:b].amax(dim=0) * inv[:, k, 0])
        return best

    def s2_half(self, x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """``s2`` in float16 (``_half_mm``; CUDA): (n,) float32 scores to about 1e-3."""
        sc = self.scorer
        s = self._half_mm(self.q2h, x)
        best = torch.full((x.shape[0],), -torch.inf, device=self.device)
        for k, (a, b) in enumerate(sc.segments2):
            best = torch.maximum(best, s[a:b].amax(dim=0).float() * inv[:, k, 0])
        return best

    def _refine_binary(self, ck: torch.Tensor, t: torch.Tensor, g: int) -> torch.Tensor:
        approx = torch.sign(ck) @ torch.sign(t)  # (n, m, g*g)
        arg = approx.argmax(dim=2)
        ix, iy = arg // g, arg % g
        off = torch.arange(-1, 2, device=self.device)
        nx = (ix[..., None, None] + off[:, None]).clamp(0, g - 1)
        ny = (iy[..., None, None] + off[None, :]).clamp(0, g - 1)
        cols = (nx * g + ny).flatten(2)  # (n, m, 9)
        terms = t.T[cols]  # (n, m, 9, Dx^2)
        return torch.einsum("nmk,nmjk->nmj", ck, terms).amax(dim=(1, 2))

    def best_placement(self, x: torch.Tensor, inv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) best scores and (n, 2) (scale, column of the placements) of each photo of a block."""
        sc = self.scorer
        s = self._mm(self.q2t, x.to(torch.float32)).T
        n = x.shape[0]
        best = torch.full((n,), -torch.inf, device=self.device)
        info = torch.zeros((n, 2), dtype=torch.long, device=self.device)
        for k, (a, b) in enumerate(sc.segments2):
            val, arg = (s[:, a:b] * inv[:, k, 0, None]).max(dim=1)
            better = val > best
            best = torch.where(better, val, best)
            info = torch.where(better[:, None], torch.stack([torch.full_like(arg, k), arg], dim=1), info)
        return best, info

    def s1(self, x: torch.Tensor, inv: torch.Tensor, axes: str) -> torch.Tensor:
        """Best 1-D score of each photo (``axes``: ``x``, ``y`` or ``xy``, the sum): (n,) float32."""
        sc = self.scorer
        q = self.q1t[axes]
        s = self._mm(q, x[:, : q[0].shape[1]].to(torch.float32))
        total = torch.zeros((x.shape[0],), device=self.device)
        rows_per_axis = sc.segments1[-1][1]
        for i, axis in enumerate(axes):
            col, off = (1 if axis == "x" else 2), i * rows_per_axis
            best = torch.full((x.shape[0],), -torch.inf, device=self.device)
            for k, (a, b) in enumerate(sc.segments1):
                best = torch.maximum(best, s[off + a:off + b].amax(dim=0) * inv[:, k, col])
            total += best
        return total

    @staticmethod
    def _by_blocks(fn: Callable[[int, int], torch.Tensor], n: int, rows: int) -> torch.Tensor:
        """``fn(start, stop)`` over blocks of photos whose score matrix (``rows`` x block) stays under
        ``BLOCK_FLOATS``, concatenated."""
        step = max(1024, BLOCK_FLOATS // max(rows, 1))
        parts = [fn(a, min(n, a + step)) for a in range(0, n, step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # -- a whole query --------------------------------------------------------------------------------------
    def rank(self, codes, inv_norms, options: Any, *, top_k: int, n_align: int, subset: np.ndarray | None,
             clock) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
        """``search.rank`` on the device, over the collection kept there (:func:`resident`): the ranked rows, their
        scores, how many lead with exact 2-D scores, and the best score and (scale, placement column) of the
        first ``n_align`` (``QueryScorer.alignments``)."""
        with torch.inference_mode():
            x, inv = self._rows(codes, inv_norms, subset)
            clock("upload")
            rows, scores, n_exact = self._rank(x, inv, options, top_k, clock)
            head = rows[: min(len(rows), n_align)]
            best = torch.zeros(0, device=self.device)
            info = torch.zeros((0, 2), dtype=torch.long, device=self.device)
            for a in range(0, len(head), ALIGN_BLOCK):
                b, i = self.best_placement(x[head[a:a + ALIGN_BLOCK]], inv[head[a:a + ALIGN_BLOCK]])
                best, info = torch.cat([best, b]), torch.cat([info, i])
            out = (rows.cpu().numpy().astype(np.int64), scores.cpu().numpy().astype(np.float32), n_exact,
                   best.cpu().numpy(), info.cpu().numpy())
        clock("align")
        return out

    def _rank(self, x: torch.Tensor, inv: torch.Tensor, options: Any, top_k: int, clock) \
            -> tuple[torch.Tensor, torch.Tensor, int]:
        sc, n = self.scorer, x.shape[0]
        r2, r1 = self.q2t[0].shape[0], self.q1t["xy"][0].shape[0]

        def two_d(rows: torch.Tensor | None = None, *, coarse: bool = False) -> torch.Tensor:
            xs, invs = (x, inv) if rows is None else (x[rows], inv[rows])
            binary = options.binary and not coarse
            return self._by_blocks(lambda a, b: self.s2(xs[a:b], invs[a:b], binary=binary, coarse=coarse),
                                   xs.shape[0], r2)

        if options.mode == "exhaustive":
            if self.q2h is None:
                scores = two_d()
                clock("2d_all")
                rows = top_positions(scores, top_k)
                return rows, scores[rows], len(rows)
            # CUDA: every photo in float16, then the best max(shortlist, top_k) exactly (module docstring)
            approx = self._by_blocks(lambda a, b: self.s2_half(x[a:b], inv[a:b]), n, r2)
            clock("2d_all_fp16")
            cand = torch.sort(top_positions(approx, max(options.shortlist_size(n), top_k))).values
            fine = two_d(cand)
            clock("2d_exact")
            order = torch.sort(fine, descending=True, stable=True).indices[:top_k]  # ties in position order
            return cand[order], fine[order], int(order.shape[0])
        s = options.shortlist_size(n)
        order = options.shortlist_order(n)
        proj = x[:, : sc.n_proj]
        if order == "coarse":
            first = two_d(coarse=True)
            clock("2d_coarse")
            pre = top_positions(first, max(s, top_k))
            stage1 = first[pre]
        elif order == "sum":
            first = self._by_blocks(lambda a, b: self.s1(proj[a:b], inv[a:b], "xy"), n, r1)
            clock("1d_both")
            pre = top_positions(first, max(s, top_k))
            stage1 = first[pre]
        else:
            axes = ("x", "y") if sc.spread[0] >= sc.spread[1] else ("y", "x")
            first = self._by_blocks(lambda a, b: self.s1(proj[a:b], inv[a:b], axes[0]), n, r1)
            clock("1d_first")
            pre = top_positions(first, max(3 * s, top_k))
            head = pre[: min(n, 3 * s)]
            second = self._by_blocks(lambda a, b: self.s1(proj[head[a:b]], inv[head[a:b]], axes[1]), len(head), r1)
            clock("1d_second")
            both = first[head] + second
            by_score = torch.sort(both, descending=True, stable=True).indices
            pre = torch.cat([head[by_score], pre[head.shape[0]:]])
            stage1 = torch.cat([both[by_score], first[pre[head.shape[0]:]]])
        short = pre[:s]
        clock("select")
        fine = two_d(short)
        clock("2d_shortlist")
        by_fine = torch.sort(fine, descending=True, stable=True).indices
        rows = torch.cat([short[by_fine], pre[s:]])[:top_k]
        scores = torch.cat([fine[by_fine], stage1[s:]])[:top_k]
        return rows, scores, min(s, rows.shape[0])
