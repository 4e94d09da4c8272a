"""Scoring sketches against stored descriptors: shifts, scales, mirrors, shortlists (METHOD.md sections 5-6).

All heavy work is matrix products: in numpy (OpenBLAS) on the CPU, in torch on CUDA.  A query is turned once
into small coefficient matrices (``shifts.poly_matrix``); scoring a block of database codes is then
``codes @ W`` (every image's trigonometric polynomial) followed by ``@ T`` (its value at every
candidate shift), a max over shifts, mirrors and scales, and the stored inverse norms.

torch is imported only where a torch device is used (opening a collection and scoring a sketch on the CPU
never imports it: its import alone takes seconds).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .afm import FeatureLayout, SketchQuery
from .errors import DeviceError
from .shifts import coarse_shift_values, grid_terms, poly_matrix, poly_matrix_1d, shift_values, trig_terms
from .vectors import top_positions

log = logging.getLogger(__name__)

#: rows of the database scored per matrix product (the 2-D product makes ~1,500 scores per row,
#: the 1-D one ~100)
CHUNK = 4096
CHUNK_1D = 32768
#: results that get an alignment (box)
MAX_ALIGN = 1000
#: scoring backends of :class:`QueryScorer`
BACKENDS = ("numpy", "torch")


@dataclass(frozen=True)
class Device:
    """A compute device, named without importing torch.

    Attributes
    ----------
    type : str
        ``"cpu"``, ``"cuda"`` or another torch device type.
    index : int or None
        Device number (None: the current one).
    """

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def _torch_build_has_gpu() -> bool | None:
    """Whether the installed torch was built with CUDA or ROCm, read from ``torch/version.py`` without
    importing torch (None: unknown; False also when torch is not installed)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = {}
    for key in ("cuda", "hip"):
        m = re.search(rf"^{key}\b[^=\n]*=\s*(.+)$", text, re.MULTILINE)
        if m is None:
            return None
        found[key] = m.group(1).strip() != "None"
    return found["cuda"] or found["hip"]


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, answered without importing torch where it cannot be true: a CPU-only
    torch build, or (Linux) a machine without a GPU driver's device files."""
    if "torch" not in sys.modules:
        gpu_build = _torch_build_has_gpu()
        if gpu_build is False:
            return False
        if gpu_build and sys.platform.startswith("linux") and not any(
                os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")):
            return False
    import torch

    return bool(torch.cuda.is_available())


def pick_device(name: str | Device | None = None) -> Device:
    """``None`` or ``"auto"``: CUDA when available, else CPU; otherwise the named device (a string, a
    :class:`Device` or a ``torch.device``).  torch is imported only to check a device other than the CPU.

    Raises
    ------
    DeviceError
        Naming the device, when it is unknown or not available (``cuda`` without CUDA, ``cuda:3`` of two).
    """
    if name is not None and not isinstance(name, str):
        name = str(name)  # Device, torch.device
    if name in (None, "auto"):
        return Device("cuda") if cuda_available() else Device("cpu")
    if name == "cpu":
        return Device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m is None:
        import torch

        try:
            dev = torch.device(name)
        except RuntimeError as e:
            raise DeviceError(f"unknown device {name!r} ({e})") from None
        return Device(dev.type, dev.index)
    if not cuda_available():
        import torch

        raise DeviceError(f"device {name!r} asked for, but torch {torch.__version__} sees no CUDA device")
    index = None if m.group(1) is None else int(m.group(1))
    if index is not None:
        import torch

        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return Device("cuda", index)


def default_backend(device: Device) -> str:
    """Scoring backend of a device: numpy on the CPU (as fast as torch there, see ``QueryScorer``), torch
    elsewhere."""
    return "numpy" if device.type == "cpu" else "torch"


#: shortlist orders of the fast mode
ORDERS = ("auto", "coarse", "sum", "discriminative")


@dataclass(frozen=True)
class SearchOptions:
    """How a sketch query is run.

    Parameters
    ----------
    mode : {"fast", "exhaustive"}
        ``exhaustive`` scores every image with the 2-D polynomial; ``fast`` ranks everything by the 1-D
        projections first and re-ranks a shortlist with the 2-D polynomial.
    order : {"auto", "coarse", "sum", "discriminative"}
        Fast mode's shortlist: ``sum`` scores both 1-D projections on everything (S_x + S_y);
        ``discriminative`` scores the projection along which the sketch spreads more on everything,
        keeps ``3 * shortlist`` and scores the other projection on those only; ``coarse`` scores the
        2-D polynomial on a coarse shift grid (about 3x the cost of ``sum``, and nearly the exhaustive
        ranking); ``auto`` is ``coarse`` up to ``coarse_max`` images, ``sum`` above.
    shortlist : int or None
        Number of images re-ranked in 2-D; None: ``max(min_shortlist, shortlist_fraction * N)``.
    binary : bool
        Find the best shift of each shortlisted image with the sign-binarised polynomial, then evaluate
        the exact polynomial on the 3x3 neighbourhood of it.
    mirror : bool
        Also try the horizontally mirrored sketch.
    device : str or None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available (``pick_device``).  Scores are
        computed in numpy on the CPU, in torch elsewhere (``QueryScorer``).
    """

    mode: str = "fast"
    order: str = "auto"
    shortlist: int | None = None
    min_shortlist: int = 1000
    shortlist_fraction: float = 0.02
    coarse_max: int = 50_000
    binary: bool = False
    mirror: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "exhaustive"):
            raise ValueError(f"unknown search mode {self.mode!r} (fast, exhaustive)")
        if self.order not in ORDERS:
            raise ValueError(f"unknown shortlist order {self.order!r} ({', '.join(ORDERS)})")
        if self.shortlist is not None and self.shortlist < 1:
            raise ValueError("shortlist must be positive")

    def shortlist_order(self, n: int) -> str:
        """The shortlist order used for a collection of ``n`` images."""
        if self.order == "auto":
            return "coarse" if n <= self.coarse_max else "sum"
        return self.order

    def shortlist_size(self, n: int) -> int:
        s = self.shortlist if self.shortlist is not None else max(
            self.min_shortlist, math.ceil(self.shortlist_fraction * n))
        return min(n, s)


@dataclass(frozen=True)
class Alignment:
    """Where and how a sketch matched one image (working-frame pixels of the photo)."""

    score: float
    scale: float
    mirrored: bool
    dx: float
    dy: float


@dataclass(frozen=True)
class Ranking:
    """Result of a search: database rows best first, their scores and alignments.

    ``scores[:n_exact]`` are 2-D similarities (max over shifts, scales, mirrors); rows after them were
    not re-ranked and carry their 1-D projection score, which only orders them among themselves.
    ``alignments`` covers the first ``n_align`` rows (see ``rank``).
    """

    rows: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) float32
    n_exact: int
    alignments: tuple[Alignment, ...]


class QueryScorer:
    """A sketch query prepared for scoring blocks of stored descriptors.

    For every query scale ``k`` and mirror ``m`` the weighted, normalised query descriptor is moved to
    every candidate shift (``shifts.poly_matrix @ shifts.grid_terms``: the trigonometric polynomial
    evaluated on the grid), giving one matrix ``Q2`` (D, all shifts); scoring a block of codes is then
    one product ``codes @ Q2`` and a max per scale.  The 1-D projections work the same way with the
    projection columns only.

    Both backends compute the same float32 products and maxima: ``numpy`` (OpenBLAS; the CPU's, as fast
    as torch there at 10k to 1M photos and without torch's seconds of import) and ``torch`` (any torch
    device; the default on CUDA).

    Parameters
    ----------
    query : SketchQuery
    layout : FeatureLayout
    mirror : bool
        Include the mirrored sketch.
    device : str, Device or torch.device, optional
        None: CUDA when available, else the CPU (``pick_device``).
    backend : {"numpy", "torch"}, optional
        None: numpy on the CPU, torch elsewhere (``default_backend``); numpy runs on the CPU only.
    """

    def __init__(self, query: SketchQuery, layout: FeatureLayout, *, mirror: bool = True,
                 device: str | Device | None = None, backend: str | None = None) -> None:
        self.layout = layout
        self.device = pick_device(device)
        self.backend = default_backend(self.device) if backend is None else backend
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown scoring backend {self.backend!r} ({', '.join(BACKENDS)})")
        if self.backend == "numpy" and self.device.type != "cpu":
            raise ValueError(f"the numpy backend scores on the CPU only, not on {self.device}")
        settings = layout.settings
        self.scales = settings.scales
        self.mirrors = (False, True) if mirror else (False,)
        self.values = [shift_values(settings, s) for s in self.scales]
        self.n_proj = layout.n_projection_columns
        self.spread = query.spread
        order = layout.storage_order
        proj_cols = {"x": layout.x_columns, "y": layout.y_columns}
        proj_index = {"x": layout.x_index, "y": layout.y_index}
        self.coarse_values = [coarse_shift_values(settings, s) for s in self.scales]
        w2, q2, qc, t2s, q1 = [], [], [], [], {"x": [], "y": []}
        self.segments2, self.segments2c, self.segments1 = [], [], []  # (start, stop) columns of each scale
        for k, g in enumerate(self.values):
            diag, pdiag = layout.kernel_diag(k), layout.projection_diag(k)
            t2 = grid_terms(layout.freqs_xy, g)
            t2s.append(t2)
            t2c = grid_terms(layout.freqs_xy, self.coarse_values[k])
            t1 = trig_terms(layout.freqs_xy, g).T
            for m in range(len(self.mirrors)):
                v = query.desc[k, m]
                qw = diag * v
                w = poly_matrix(qw, layout)[order] / math.sqrt(max(v @ qw, 1e-300))
                w2.append(w)
                q2.append(w @ t2)
                qc.append(w @ t2c)
                for axis in ("x", "y"):
                    p = v[proj_index[axis]]
                    full = np.zeros((self.n_proj, len(g)))
                    full[proj_cols[axis]] = (poly_matrix_1d(pdiag * p, layout) @ t1
                                             / math.sqrt(max(p @ (pdiag * p), 1e-300)))
                    q1[axis].append(full)
            self.segments2.append(_segment(self.segments2, len(self.mirrors) * len(g) ** 2))
            self.segments2c.append(_segment(self.segments2c, len(self.mirrors) * len(self.coarse_values[k]) ** 2))
            self.segments1.append(_segment(self.segments1, len(self.mirrors) * len(g)))
        # float32, as both backends multiply (numpy casts: torch.as_tensor of float64 is far slower on CPU)
        self._w2 = _f32(np.concatenate(w2, axis=1))  # (D, scales * mirrors * Dx^2) coefficients
        self._t2 = [_f32(t) for t in t2s]
        # transposed, (scales * mirrors * shifts, D): scores come out (shifts, n), so the max over a scale's
        # shifts reduces over contiguous rows
        self._q2t = _f32(np.concatenate(q2, axis=1).T)
        self._qct = _f32(np.concatenate(qc, axis=1).T)
        # the x projection lives in the first Dx * Dphi stored columns; the y projection needs n_proj
        # (S_x + S_y: one product with both stacked, the x rows padded to n_proj columns with zeros)
        q1x, q1y = np.concatenate(q1["x"], axis=1).T, np.concatenate(q1["y"], axis=1).T
        self._q1t = {"x": _f32(q1x[:, : len(layout.x_columns)]), "y": _f32(q1y),
                     "xy": _f32(np.concatenate([q1x, q1y]))}
        self._torch = _TorchScorer(self) if self.backend == "torch" else None

    # -- 2-D ---------------------------------------------------------------------------------------------
    def score_2d(self, codes: np.ndarray, inv_norms: np.ndarray, *, binary: bool = False,
                 coarse: bool = False) -> np.ndarray:
        """Best cosine over shifts, scales and mirrors for a block of images.

        Parameters
        ----------
        codes : (n, D) int8, storage order
        inv_norms : (n, K, 3) float32
        binary : bool
            Use the binarised polynomial to find each image's best shift, then refine exactly.
        coarse : bool
            Only the coarse shift grid (``shifts.coarse_shift_values``): about 8x cheaper, for shortlists.

        Returns
        -------
        scores : (n,) float32 ndarray
        """
        if self._torch is not None:
            return self._torch.score_2d(codes, inv_norms, binary=binary, coarse=coarse)
        x = np.asarray(codes).astype(np.float32)
        inv = np.asarray(inv_norms, np.float32)
        best = np.full(x.shape[0], -np.inf, np.float32)
        if binary:
            coef = (x @ self._w2).reshape(x.shape[0], len(self.scales), len(self.mirrors), -1)
            for k, t in enumerate(self._t2):
                s = self._refine_binary(coef[:, k], t, len(self.values[k]))
                np.maximum(best, s * inv[:, k, 0], out=best)
        else:
            q, segments = (self._qct, self.segments2c) if coarse else (self._q2t, self.segments2)
            s = q @ x.T
            for k, (a, b) in enumerate(segments):
                np.maximum(best, s[a:b].max(axis=0) * inv[:, k, 0], out=best)
        return best

    @staticmethod
    def _refine_binary(ck: np.ndarray, t: np.ndarray, g: int) -> np.ndarray:
        """Max of the exact polynomial on the 3x3 shifts around the binarised polynomial's arg-max.

        ``ck`` (n, m, Dx^2) coefficients, ``t`` (Dx^2, g*g) grid terms; returns (n,) float32.
        """
        approx = np.sign(ck) @ np.sign(t)  # (n, m, g*g)
        arg = approx.argmax(axis=2)
        ix, iy = arg // g, arg % g
        off = np.arange(-1, 2)
        nx = np.clip(ix[..., None, None] + off[:, None], 0, g - 1)
        ny = np.clip(iy[..., None, None] + off[None, :], 0, g - 1)
        cols = (nx * g + ny).reshape(*arg.shape, 9)  # (n, m, 9)
        terms = np.ascontiguousarray(t.T)[cols]  # (n, m, 9, Dx^2)
        return (terms @ ck[..., None])[..., 0].max(axis=(1, 2))

    def align(self, codes: np.ndarray, inv_norms: np.ndarray) -> list[Alignment]:
        """Best (score, scale, mirror, shift) of each image of a (small) block."""
        if self._torch is not None:
            best, info = self._torch.align(codes, inv_norms)
        else:
            x = np.asarray(codes).astype(np.float32)
            inv = np.asarray(inv_norms, np.float32)
            s = x @ self._q2t.T
            n = x.shape[0]
            best = np.full(n, -np.inf, np.float32)
            info = np.zeros((n, 2), np.int64)
            for k, (a, b) in enumerate(self.segments2):
                v = s[:, a:b] * inv[:, k, 0, None]
                arg = v.argmax(axis=1)
                val = v[np.arange(n), arg]
                better = val > best
                best = np.where(better, val, best)
                info[better] = np.stack([np.full_like(arg, k), arg], axis=1)[better]
        out = []
        for score, (k, j) in zip(best, info, strict=True):
            g = self.values[k]
            m, rest = divmod(int(j), len(g) ** 2)
            ix, iy = divmod(rest, len(g))
            out.append(Alignment(float(score), self.scales[k], self.mirrors[m], float(g[ix]), float(g[iy])))
        return out

    # -- 1-D projections -----------------------------------------------------------------------------------
    def score_1d(self, codes: np.ndarray, inv_norms: np.ndarray, axes: str) -> np.ndarray:
        """Best cosine of a 1-D projection over 1-D shifts, scales and mirrors: (n,) float32.

        ``axes`` is ``"x"``, ``"y"`` or ``"xy"`` (S_x + S_y, each maxed on its own, from one product).
        ``codes`` may hold just the first ``n_proj`` stored columns.
        """
        if axes not in self._q1t:
            raise ValueError(f"axes must be 'x', 'y' or 'xy', got {axes!r}")
        if self._torch is not None:
            return self._torch.score_1d(codes, inv_norms, axes)
        q = self._q1t[axes]
        x = np.asarray(codes[:, : q.shape[1]]).astype(np.float32)
        inv = np.asarray(inv_norms, np.float32)
        s = q @ x.T
        total = np.zeros(x.shape[0], np.float32)
        rows_per_axis = self.segments1[-1][1]
        for i, axis in enumerate(axes):
            col, off = (1 if axis == "x" else 2), i * rows_per_axis
            best = np.full(x.shape[0], -np.inf, np.float32)
            for k, (a, b) in enumerate(self.segments1):
                np.maximum(best, s[off + a:off + b].max(axis=0) * inv[:, k, col], out=best)
            total += best
        return total


class _TorchScorer:
    """The torch backend of a :class:`QueryScorer`: its matrices as tensors on its device, the same steps."""

    def __init__(self, scorer: QueryScorer) -> None:
        import torch

        self.torch = torch
        self.scorer = scorer
        self.device = torch.device(str(scorer.device))
        self.w2 = self._tensor(scorer._w2)
        self.t2 = [self._tensor(t) for t in scorer._t2]
        self.q2t = self._tensor(scorer._q2t)
        self.qct = self._tensor(scorer._qct)
        self.q1t = {k: self._tensor(v) for k, v in scorer._q1t.items()}

    def _tensor(self, a: np.ndarray):
        return self.torch.from_numpy(a).to(self.device)

    def _codes(self, codes: np.ndarray):
        return self.torch.from_numpy(_writable(codes)).to(self.device).to(self.torch.float32)

    def _inv(self, inv_norms: np.ndarray):
        return self.torch.from_numpy(_writable(inv_norms)).to(self.device, self.torch.float32)

    def score_2d(self, codes: np.ndarray, inv_norms: np.ndarray, *, binary: bool, coarse: bool) -> np.ndarray:
        torch, sc = self.torch, self.scorer
        x = self._codes(codes)
        inv = self._inv(inv_norms)
        best = torch.full((x.shape[0],), -torch.inf, device=self.device)
        if binary:
            coef = (x @ self.w2).view(x.shape[0], len(sc.scales), len(sc.mirrors), -1)
            for k, t in enumerate(self.t2):
                s = self._refine_binary(coef[:, k], t, len(sc.values[k]))
                best = torch.maximum(best, s * inv[:, k, 0])
        else:
            q, segments = (self.qct, sc.segments2c) if coarse else (self.q2t, sc.segments2)
            s = q @ x.T
            for k, (a, b) in enumerate(segments):
                best = torch.maximum(best, s[a:b].amax(dim=0) * inv[:, k, 0])
        return best.cpu().numpy()

    def _refine_binary(self, ck, t, g: int):
        torch = self.torch
        approx = torch.sign(ck) @ torch.sign(t)  # (n, m, g*g)
        arg = approx.argmax(dim=2)
        ix, iy = arg // g, arg % g
        off = torch.arange(-1, 2, device=self.device)
        nx = (ix[..., None, None] + off[:, None]).clamp(0, g - 1)
        ny = (iy[..., None, None] + off[None, :]).clamp(0, g - 1)
        cols = (nx * g + ny).flatten(2)  # (n, m, 9)
        terms = t.T[cols]  # (n, m, 9, Dx^2)
        return torch.einsum("nmk,nmjk->nmj", ck, terms).amax(dim=(1, 2))

    def align(self, codes: np.ndarray, inv_norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) best scores and (n, 2) (scale, column) of each image."""
        torch, sc = self.torch, self.scorer
        x = self._codes(codes)
        inv = self._inv(inv_norms)
        s = x @ self.q2t.T
        n = x.shape[0]
        best = torch.full((n,), -torch.inf, device=self.device)
        info = torch.zeros((n, 2), dtype=torch.long, device=self.device)
        for k, (a, b) in enumerate(sc.segments2):
            val, arg = (s[:, a:b] * inv[:, k, 0, None]).max(dim=1)
            better = val > best
            best = torch.where(better, val, best)
            info = torch.where(better[:, None], torch.stack([torch.full_like(arg, k), arg], dim=1), info)
        return best.cpu().numpy(), info.cpu().numpy()

    def score_1d(self, codes: np.ndarray, inv_norms: np.ndarray, axes: str) -> np.ndarray:
        torch, sc = self.torch, self.scorer
        q = self.q1t[axes]
        x = self._codes(codes[:, : q.shape[1]])
        inv = self._inv(inv_norms)
        s = q @ x.T
        total = torch.zeros((x.shape[0],), device=self.device)
        rows_per_axis = sc.segments1[-1][1]
        for i, axis in enumerate(axes):
            col, off = (1 if axis == "x" else 2), i * rows_per_axis
            best = torch.full((x.shape[0],), -torch.inf, device=self.device)
            for k, (a, b) in enumerate(sc.segments1):
                best = torch.maximum(best, s[off + a:off + b].amax(dim=0) * inv[:, k, col])
            total += best
        return total.cpu().numpy()


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _writable(a: np.ndarray) -> np.ndarray:
    """A contiguous array torch may wrap (blocks of read-only memory maps are copied)."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


def _segment(previous: list[tuple[int, int]], size: int) -> tuple[int, int]:
    start = previous[-1][1] if previous else 0
    return start, start + size


def _chunked(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], codes: np.ndarray,
             inv_norms: np.ndarray, rows: np.ndarray | None = None, *, chunk: int = CHUNK) -> np.ndarray:
    """Apply a block scorer over all rows (or the given rows) in chunks."""
    n = codes.shape[0] if rows is None else len(rows)
    out = np.empty(n, np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        if rows is None:
            out[start:stop] = fn(codes[start:stop], inv_norms[start:stop])
        else:
            r = np.sort(rows[start:stop])  # sorted reads are kind to memory maps
            inv_order = np.argsort(np.argsort(rows[start:stop]))
            out[start:stop] = fn(codes[r], inv_norms[r])[inv_order]
    return out


class _Clock:
    """Accumulates the time since the last call under a stage name (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
            self.last = now


def rank(scorer: QueryScorer, codes: np.ndarray, inv_norms: np.ndarray, options: SearchOptions,
         *, top_k: int, n_align: int | None = None, timings: dict[str, float] | None = None) -> Ranking:
    """Rank stored descriptors for a prepared query and align the top ``top_k``.

    Parameters
    ----------
    scorer : QueryScorer
    codes : (N, D) int8 ndarray (may be a memory map)
    inv_norms : (N, K, 3) float32 ndarray
    options : SearchOptions
    top_k : int
        Number of results returned (images beyond the shortlist are ranked by their projection score,
        after every shortlisted image).
    n_align : int, optional
        Number of leading results that get an alignment (default ``min(top_k, MAX_ALIGN)``).
    timings : dict, optional
        Filled with the seconds spent per stage (for the benchmark's profile).

    Returns
    -------
    Ranking
    """
    clock = _Clock(timings)
    n = codes.shape[0]
    if n == 0 or top_k <= 0:
        return Ranking(np.zeros(0, np.int64), np.zeros(0, np.float32), 0, ())
    binary = options.binary

    def two_d(c, i):
        return scorer.score_2d(c, i, binary=binary)

    if options.mode == "exhaustive":
        scores = _chunked(two_d, codes, inv_norms)
        clock("2d_all")
        rows = top_positions(scores, top_k)
        ranked_scores = scores[rows]
        n_exact = len(rows)
    else:
        s = options.shortlist_size(n)
        proj = codes[:, : scorer.n_proj]
        order = options.shortlist_order(n)
        if order == "coarse":
            first = _chunked(lambda c, i: scorer.score_2d(c, i, coarse=True), codes, inv_norms)
            clock("2d_coarse")
            pre = top_positions(first, max(s, top_k))
            stage1 = first[pre]
        elif order == "sum":
            first = _chunked(lambda c, i: scorer.score_1d(c, i, "xy"), proj, inv_norms, chunk=CHUNK_1D)
            clock("1d_both")
            pre = top_positions(first, max(s, top_k))
            stage1 = first[pre]
        else:
            axes = ("x", "y") if scorer.spread[0] >= scorer.spread[1] else ("y", "x")
            first = _chunked(lambda c, i: scorer.score_1d(c, i, axes[0]), proj, inv_norms, chunk=CHUNK_1D)
            clock("1d_first")
            pre = top_positions(first, max(3 * s, top_k))
            head = pre[: min(n, 3 * s)]
            clock("select")
            second = _chunked(lambda c, i: scorer.score_1d(c, i, axes[1]), proj, inv_norms, head,
                              chunk=CHUNK_1D)
            clock("1d_second")
            both = first[head] + second
            by_score = np.argsort(-both, kind="stable")
            pre = np.concatenate([head[by_score], pre[head.size:]])
            stage1 = np.concatenate([both[by_score], first[pre[head.size:]]])
        short = pre[:s]
        clock("select")
        fine = _chunked(two_d, codes, inv_norms, short)
        clock("2d_shortlist")
        by_fine = np.argsort(-fine, kind="stable")
        rows = np.concatenate([short[by_fine], pre[s:]])[:top_k]
        ranked_scores = np.concatenate([fine[by_fine], stage1[s:]])[:top_k]
        n_exact = min(s, len(rows))
    head = rows[: min(len(rows), MAX_ALIGN if n_align is None else n_align)]  # n_align may exceed MAX_ALIGN
    alignments = []
    for start in range(0, len(head), 256):
        block = np.asarray(head[start:start + 256])
        srt = np.argsort(block)
        al = scorer.align(codes[block[srt]], inv_norms[block[srt]])
        back = np.empty(len(block), np.int64)
        back[srt] = np.arange(len(block))
        alignments.extend(al[j] for j in back)
    clock("align")
    return Ranking(np.asarray(rows, np.int64), np.asarray(ranked_scores, np.float32), n_exact, tuple(alignments))
