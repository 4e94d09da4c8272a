"""Scoring sketches against stored descriptors: shifts, scales, mirrors, shortlists (METHOD.md sections 5-6).

All heavy work is matrix products: in numpy (OpenBLAS) on the CPU, in torch on CUDA.  A query is turned once
into small coefficient matrices (``shifts.poly_matrix``); scoring a block of database codes is then
``codes @ W`` (every image's trigonometric polynomial) followed by ``@ T`` (its value at every
candidate shift), a max over shifts, mirrors and scales, and the stored inverse norms.

torch is imported only where a torch device is used (opening a collection and scoring a sketch on the CPU
never imports it: its import alone takes seconds).
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .afm import FeatureLayout, SketchQuery
from .errors import DeviceError
from .npnet import blas_threads
from .shifts import coarse_shift_values, grid_terms, poly_matrix, poly_matrix_1d, shift_values, trig_terms
from .vectors import top_positions

log = logging.getLogger(__name__)

#: rows of the database scored per block: a block's float codes, coefficients and scores stay in the CPU's cache
#: (the 2-D scoring holds ~2,500 floats per row, the 1-D ~300); ``rank`` scores blocks side by side (``cpu_threads``)
CHUNK = 256
CHUNK_1D = 2048
#: results that get an alignment (box)
MAX_ALIGN = 1000
#: scoring backends of :class:`QueryScorer`
BACKENDS = ("numpy", "torch")
#: temperature (cosine units) of the soft placement a box is drawn from: the mean scale and shift over every
#: placement, weighted ``exp((score - best) / BOX_SOFTNESS)`` (0: the best placement alone).  Fitted on
#: SYSU-Shapes' bicycles together with the box fit's reach and trim (``engine.boxes``) by
#: ``engine.bench.fusion.fit_box_rule`` (the other class's figures in docs/benchmarks.md): one placement's score
#: singles out the right scale and shift for 86 % of the correct top-5 hits while a placement of IoU >= 0.5 is
#: among the 20 best for 93 %
BOX_SOFTNESS = 0.05


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
        ``exhaustive`` scores every image with the 2-D polynomial (on CUDA in float16, then the best
        ``shortlist_size`` exactly: ``engine.torchscore``); ``fast`` ranks everything by the 1-D projections first
        and re-ranks a shortlist with the 2-D polynomial.
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
    candidates : int or None
        Of its shortlist, each shard of a collection sends the client only the photos that fewer than
        ``candidates * (top_k + seeds)`` others of the shortlist beat on both the alignment and the global
        score (``shard_cap``; ``engine.shardsearch.ShardSearcher.sketch_candidates``); None: the whole
        shortlist.
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
    candidates: int | None = 4

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "exhaustive"):
            raise ValueError(f"unknown search mode {self.mode!r} (fast, exhaustive)")
        if self.order not in ORDERS:
            raise ValueError(f"unknown shortlist order {self.order!r} ({', '.join(ORDERS)})")
        if self.shortlist is not None and self.shortlist < 1:
            raise ValueError("shortlist must be positive")
        if self.candidates is not None and self.candidates < 1:
            raise ValueError("candidates must be positive (None: no cap)")

    def shortlist_order(self, n: int) -> str:
        """The shortlist order used for a collection of ``n`` images."""
        if self.order == "auto":
            return "coarse" if n <= self.coarse_max else "sum"
        return self.order

    def shortlist_size(self, n: int) -> int:
        s = self.shortlist if self.shortlist is not None else max(
            self.min_shortlist, math.ceil(self.shortlist_fraction * n))
        return min(n, s)

    def shard_cap(self, top_k: int, seeds: int) -> int | None:
        """How many photos of its shortlist may beat one that a shard sends, for a query of ``top_k`` results
        and ``seeds`` expansion seeds (None: no cap)."""
        return None if self.candidates is None else self.candidates * (top_k + seeds)


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

    Both backends compute the same scores, in float32, to its rounding: ``numpy`` (OpenBLAS; the CPU's,
    without torch's seconds of import) and ``torch`` (any torch device; the default on CUDA).  The numpy
    backend does the products above with fewer multiply-adds: each image's polynomial coefficients come from
    the few stored columns of their frequencies (``_grouped_2d``, ``_grouped_1d``), and are evaluated on the
    grid one axis at a time (``_grids_2d``): 0.08x the multiply-adds of ``codes @ Q2`` (243-D: 29k instead of
    379k per image) and 0.27x those of the 1-D products (2.5k instead of 9.2k); ``rank`` scores its blocks on
    ``cpu_threads()`` threads.

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
    box_softness : float
        Temperature of the soft placement that :meth:`align` reports (``BOX_SOFTNESS``; 0: the best placement).
    """

    def __init__(self, query: SketchQuery, layout: FeatureLayout, *, mirror: bool = True,
                 device: str | Device | None = None, backend: str | None = None,
                 box_softness: float = BOX_SOFTNESS) -> None:
        if not box_softness >= 0:
            raise ValueError(f"box_softness must be >= 0, got {box_softness}")
        self.box_softness = float(box_softness)
        self.layout = layout
        self.device = pick_device(device)
        self.backend = default_backend(self.device) if backend is None else backend
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown scoring backend {self.backend!r} ({', '.join(BACKENDS)})")
        if self.backend == "numpy" and self.device.type != "cpu":
            raise ValueError(f"the numpy backend scores on the CPU only, not on {self.device}")
        #: threads that ``rank`` scores blocks on (the torch backend's device runs one at a time)
        self.threads = cpu_threads() if self.backend == "numpy" else 1
        settings = layout.settings
        self.scales = settings.scales
        self.mirrors = (False, True) if mirror else (False,)
        self.values = [shift_values(settings, s) for s in self.scales]
        self.n_proj = layout.n_projection_columns
        self.spread = query.spread
        order = layout.storage_order
        proj_index = {"x": layout.x_index, "y": layout.y_index}
        self.coarse_values = [coarse_shift_values(settings, s) for s in self.scales]
        w2, c1 = [], {"x": [], "y": []}
        self.segments2, self.segments2c, self.segments1 = [], [], []  # (start, stop) columns of each scale
        for k, g in enumerate(self.values):
            diag, pdiag = layout.kernel_diag(k), layout.projection_diag(k)
            for m in range(len(self.mirrors)):
                v = query.desc[k, m]
                qw = diag * v
                w2.append(poly_matrix(qw, layout)[order] / math.sqrt(max(v @ qw, 1e-300)))
                for axis in ("x", "y"):
                    p = v[proj_index[axis]]
                    c1[axis].append(poly_matrix_1d(pdiag * p, layout) / math.sqrt(max(p @ (pdiag * p), 1e-300)))
            self.segments2.append(_segment(self.segments2, len(self.mirrors) * len(g) ** 2))
            self.segments2c.append(_segment(self.segments2c, len(self.mirrors) * len(self.coarse_values[k]) ** 2))
            self.segments1.append(_segment(self.segments1, len(self.mirrors) * len(g)))
        # each (scale, mirror)'s coefficient matrices, float64: the dense products (``_q2t``, ``_qct``, ``_q1t``) are
        # made from them where they are used
        self._w2_parts, self._c1_parts = w2, c1
        # float32, as both backends multiply (numpy casts: torch.as_tensor of float64 is far slower on CPU)
        self.w2 = _f32(np.concatenate(w2, axis=1))  # (D, scales * mirrors * Dx^2) coefficients
        # the numpy backend's products, by frequency (``_grouped_2d``, ``_grouped_1d``)
        self._g2_rows, self._g2_w, self._g2_perm = _grouped_2d(self.w2, layout, len(self.scales), len(self.mirrors))
        self._g1_w = {axis: _grouped_1d(np.stack(c1[axis]), layout, len(self.scales), len(self.mirrors))
                      for axis in ("x", "y")}
        self._t1 = [_f32(trig_terms(layout.freqs_xy, g)) for g in self.values]
        self._t1_coarse = [_f32(trig_terms(layout.freqs_xy, g)) for g in self.coarse_values]
        self._t1_pad = [_f32(np.c_[np.zeros(len(g)), t]) for g, t in zip(self.values, self._t1, strict=True)]
        dphi = layout.dims[2]
        self._g1_columns = {"x": [(0, len(layout.x_columns))],
                            "y": [(0, dphi), (len(layout.x_columns), self.n_proj)]}  # stored, in (a, c) order
        self._torch = None
        if self.backend == "torch":
            from .torchscore import TorchScorer

            self._torch = TorchScorer(self)

    # -- the dense products (binary; the torch backend) -------------------------------------------------
    @functools.cached_property
    def t2(self) -> list[np.ndarray]:
        """Each scale's 2-D grid terms (Dx^2, g^2), float32."""
        return [_f32(grid_terms(self.layout.freqs_xy, g)) for g in self.values]

    @functools.cached_property
    def q2t(self) -> np.ndarray:
        """(scales * mirrors * shifts, D) float32: the query moved to every placement.  Transposed: scores come
        out (shifts, n), so the max over a scale's shifts reduces over contiguous rows."""
        return self._placements(self.values)

    @functools.cached_property
    def qct(self) -> np.ndarray:
        """``_q2t`` of the coarse grid."""
        return self._placements(self.coarse_values)

    def _placements(self, values: list[np.ndarray]) -> np.ndarray:
        n_mirrors = len(self.mirrors)
        return _f32(np.concatenate([w @ grid_terms(self.layout.freqs_xy, values[i // n_mirrors])
                                    for i, w in enumerate(self._w2_parts)], axis=1).T)

    @functools.cached_property
    def q1t(self) -> dict[str, np.ndarray]:
        """The 1-D projections moved to every 1-D shift, (scales * mirrors * shifts, columns) float32: ``x`` reads
        the first Dx * Dphi stored columns, ``y`` the first ``n_proj``, ``xy`` stacks both (the x rows padded to
        ``n_proj`` columns with zeros: S_x + S_y from one product)."""
        layout, n_mirrors = self.layout, len(self.mirrors)
        q1 = {}
        for axis, cols in (("x", layout.x_columns), ("y", layout.y_columns)):
            parts = []
            for i, c in enumerate(self._c1_parts[axis]):
                full = np.zeros((self.n_proj, len(self.values[i // n_mirrors])))
                full[cols] = c @ trig_terms(layout.freqs_xy, self.values[i // n_mirrors]).T
                parts.append(full)
            q1[axis] = np.concatenate(parts, axis=1).T
        return {"x": _f32(q1["x"][:, : len(layout.x_columns)]), "y": _f32(q1["y"]),
                "xy": _f32(np.concatenate([q1["x"], q1["y"]]))}

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
        codes = np.asarray(codes)
        inv = np.asarray(inv_norms, np.float32)
        best = np.full(codes.shape[0], -np.inf, np.float32)
        with blas_threads(1):  # small products: see _chunked
            if binary:
                x = codes.astype(np.float32)
                coef = (x @ self.w2).reshape(x.shape[0], len(self.scales), len(self.mirrors), -1)
                for k, t in enumerate(self.t2):
                    s = self._refine_binary(coef[:, k], t, len(self.values[k]))
                    np.maximum(best, s * inv[:, k, 0], out=best)
            else:
                terms = self._t1_coarse if coarse else self._t1
                for start in range(0, len(codes), CHUNK):  # a block's coefficients and grids stay in the cache
                    stop = start + CHUNK
                    self._grid_max_2d(codes[start:stop], inv[start:stop], best[start:stop], terms)
        return best

    def _grid_max_2d(self, codes: np.ndarray, inv: np.ndarray, best: np.ndarray, terms: list[np.ndarray]) -> None:
        """The best 2-D score on the grids of ``terms`` of each image of a block, maxed into ``best``."""
        n = codes.shape[0]
        for k, s in enumerate(self._grids_2d(codes, terms)):
            np.maximum(best, s.reshape(-1, n).max(axis=0) * inv[:, k, 0], out=best)

    def _grids_2d(self, codes: np.ndarray, terms: list[np.ndarray]) -> Iterator[np.ndarray]:
        """Each scale's 2-D scores before the inverse norms, (x shift, y shift, mirror, n), of a block of codes
        (n, D) on the grids of ``terms`` (each scale's (shifts, Dx) trigonometric terms).

        Every image's polynomial coefficients ``C`` (``_grouped_2d``: each is a product of the few stored columns
        of its frequencies), then per scale its values on the grid, ``t C t^T``, one axis at a time: the scores
        of ``q2t @ codes.T`` (``qct``) to float32 rounding, for 0.08x (0.24x) its multiply-adds (243-D: 29k
        instead of 379k per image; coarse, 12k instead of 48k).
        """
        n = codes.shape[0]
        x = np.ascontiguousarray(codes.T, dtype=np.float32)
        n_terms = self._t1[0].shape[1]
        per = n_terms * n_terms * len(self.mirrors)
        coef = np.matmul(self._g2_w, x[self._g2_rows]).reshape(-1, n)[self._g2_perm]  # rows (scale, x, y term, mirror)
        for k, t in enumerate(terms):
            ck = coef[k * per:(k + 1) * per].reshape(n_terms, n_terms, -1)  # (x term, y term, mirror * n)
            e = np.matmul(t, ck)  # (x term, y shift, mirror * n): the y terms summed, one product per x term
            yield (t @ e.reshape(n_terms, -1)).reshape(len(t), len(t), len(self.mirrors), n)

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

    def placement_scores(self, codes: np.ndarray, inv_norms: np.ndarray) -> np.ndarray:
        """Cosine of every placement of each image of a (small) block: (n, P) float32, columns as
        :attr:`placement_table`'s rows."""
        if self._torch is not None:
            return self._torch.placement_scores(codes, inv_norms)
        codes = np.asarray(codes)
        inv = np.asarray(inv_norms, np.float32)
        n = codes.shape[0]
        with blas_threads(1):
            grids = list(self._grids_2d(codes, self._t1))
        # each scale's columns (mirror, x, y shift), as ``_placements`` orders them
        return np.concatenate([s.transpose(3, 2, 0, 1).reshape(n, -1) * inv[:, k, 0, None]
                               for k, s in enumerate(grids)], axis=1)

    @functools.cached_property
    def placement_table(self) -> np.ndarray:
        """(P, 4) float64: scale index, mirror index, x shift, y shift of each placement (scales, then mirrors,
        then x shifts, then y shifts)."""
        parts = []
        for k, g in enumerate(self.values):
            m, ix, iy = np.meshgrid(np.arange(len(self.mirrors)), g, g, indexing="ij")
            parts.append(np.stack([np.full(m.size, k), m.ravel(), ix.ravel(), iy.ravel()], axis=1))
        return np.concatenate(parts).astype(np.float64)

    def align(self, codes: np.ndarray, inv_norms: np.ndarray, *, softness: float | None = None) -> list[Alignment]:
        """Where the sketch sits in each image of a (small) block: the best placement's score and mirror, and the
        scale and shift of the soft placement (``softness``, default ``box_softness``: the mean over every
        placement weighted by ``exp((score - best) / softness)``; 0: the best placement's)."""
        if not len(codes):
            return []
        return self.alignments_of(self.placement_scores(codes, inv_norms),
                                  self.box_softness if softness is None else softness)

    def alignments_of(self, scores: np.ndarray, softness: float = 0.0) -> list[Alignment]:
        """The alignments of placement scores (n, P) (:meth:`placement_scores`), see :meth:`align`."""
        scores = np.asarray(scores, np.float64)
        arg = scores.argmax(axis=1)  # the first of equal scores: the larger scale, as ``rank``'s strict max
        best = scores[np.arange(len(scores)), arg].astype(np.float32)
        out = self._at_placements(best, arg)
        if softness <= 0:
            return out
        table = self.placement_table
        w = np.exp((scores - best[:, None]) / softness)
        scale_of = np.asarray(self.scales, np.float64)[table[:, 0].astype(np.int64)]
        where = (w @ np.stack([scale_of, table[:, 2], table[:, 3]], axis=1)) / w.sum(axis=1)[:, None]
        return [replace(a, scale=float(sc), dx=float(dx), dy=float(dy))
                for a, (sc, dx, dy) in zip(out, where, strict=True)]

    def alignments(self, best: np.ndarray, info: np.ndarray) -> list[Alignment]:
        """The alignments of best scores (n,) and their (scale, placement column) (n, 2): the best placements."""
        return self._at_placements(best, [self.segments2[k][0] + j for k, j in np.asarray(info).tolist()])

    def _at_placements(self, best, columns) -> list[Alignment]:
        """Alignments with scores ``best`` at the placements of ``columns`` (:attr:`placement_table`'s rows)."""
        table = self.placement_table[np.asarray(columns, np.int64)]
        return [Alignment(float(b), self.scales[int(k)], self.mirrors[int(m)], float(dx), float(dy))
                for b, (k, m, dx, dy) in zip(best, table, strict=True)]

    # -- 1-D projections -----------------------------------------------------------------------------------
    def score_1d(self, codes: np.ndarray, inv_norms: np.ndarray, axes: str) -> np.ndarray:
        """Best cosine of a 1-D projection over 1-D shifts, scales and mirrors: (n,) float32.

        ``axes`` is ``"x"``, ``"y"`` or ``"xy"`` (S_x + S_y, each maxed on its own, from one product).
        ``codes`` may hold just the first ``n_proj`` stored columns.
        """
        if axes not in ("x", "y", "xy"):
            raise ValueError(f"axes must be 'x', 'y' or 'xy', got {axes!r}")
        if self._torch is not None:
            return self._torch.score_1d(codes, inv_norms, axes)
        inv = np.asarray(inv_norms, np.float32)
        if not len(inv):
            return np.zeros(0, np.float32)
        with blas_threads(1):  # small products: see _chunked
            x = self._projection_columns(codes, axes)
            coef = np.matmul(np.stack([self._g1_w[axis] for axis in axes]), x[:, None])  # (axes, K, F, 2M, n)
            n = inv.shape[0]
            best = np.full((len(axes), n), -np.inf, np.float32)
            for k, t in enumerate(self._t1_pad):
                s = np.matmul(t, coef[:, k].reshape(len(axes), t.shape[1], -1))  # (axes, shifts, mirror * n)
                for i, axis in enumerate(axes):
                    np.maximum(best[i], s[i].reshape(-1, n).max(axis=0) * inv[:, k, 1 if axis == "x" else 2],
                               out=best[i])
        return best.sum(axis=0)

    def _projection_columns(self, codes: np.ndarray, axes: str) -> np.ndarray:
        """The stored columns of each projection of ``axes``, float32 (axes, frequencies, 2 Dphi, n), in the
        order of ``_grouped_1d``: the constant's Dphi columns after Dphi zeros, then each frequency's (cos, sin)
        x Dphi.  Transposed, so that the products come out (shifts, n) and each max reduces contiguous rows."""
        dphi = self.layout.dims[2]
        out = np.empty((len(axes), len(self.layout.freqs_xy) * 2 * dphi, codes.shape[0]), np.float32)
        out[:, :dphi] = 0.0
        for i, axis in enumerate(axes):
            row = dphi
            for start, stop in self._g1_columns[axis]:
                out[i, row:row + stop - start] = codes[:, start:stop].T
                row += stop - start
        return out.reshape(len(axes), len(self.layout.freqs_xy), 2 * dphi, -1)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _segment(previous: list[tuple[int, int]], size: int) -> tuple[int, int]:
    start = previous[-1][1] if previous else 0
    return start, start + size


def _frequency_terms(n_freq: int) -> list[np.ndarray]:
    """The terms of each spatial frequency: ``[0]`` (the constant), then ``[2f - 1, 2f]`` (cos, sin)."""
    return [np.arange(1)] + [np.array([2 * f - 1, 2 * f]) for f in range(1, n_freq)]


def _grouped_2d(w2: np.ndarray, layout: FeatureLayout, n_scales: int, n_mirrors: int) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D coefficient matrix ``W`` (D, scales * mirrors * Dx * Dx) split by frequency.

    Moving a point rotates each frequency's (cos, sin) pair on its own (``shifts.rotation_basis``), so the
    coefficient of the terms (j, l) reads only the stored columns (a, b, any c) whose x and y terms a, b have
    the frequencies of j and l: 4 Dphi columns for 4 coefficients per frequency pair, where ``W`` is dense in
    D.  ``matmul(weights, x[rows])`` of codes ``x`` (D, n) gives every coefficient, and ``[perm]`` of its rows
    puts them in the order (scale, x term, y term, mirror).

    Returns
    -------
    rows : (F * F, 4 Dphi) int64
        Stored columns of each frequency pair (padded with column 0, weighted 0).
    weights : (F * F, scales * mirrors * 4, 4 Dphi) float32
        Rows (scale, mirror, coefficient of the pair).
    perm : (scales * Dx * Dx * mirrors,) int64
    """
    dx, dy, dphi = layout.dims
    n_freq = len(layout.freqs_xy)
    pos = np.argsort(layout.storage_order)  # stored column of each canonical index
    n_pairs, width = n_freq * n_freq, 4 * dphi
    rows = np.zeros((n_pairs, width), np.int64)
    terms_j, terms_l = np.zeros((n_pairs, 4), np.int64), np.zeros((n_pairs, 4), np.int64)
    used_rows, used_coefs = np.zeros((n_pairs, width), bool), np.zeros((n_pairs, 4), bool)
    pair_of, slot_of = np.zeros((dx, dx), np.int64), np.zeros((dx, dx), np.int64)
    terms = _frequency_terms(n_freq)
    for p, (tx, ty) in enumerate((tx, ty) for tx in terms for ty in terms):
        canonical = ((tx[:, None, None] * dy + ty[None, :, None]) * dphi + np.arange(dphi)).ravel()
        rows[p, :canonical.size], used_rows[p, :canonical.size] = pos[canonical], True
        j, l = np.repeat(tx, len(ty)), np.tile(ty, len(tx))
        terms_j[p, :j.size], terms_l[p, :j.size], used_coefs[p, :j.size] = j, l, True
        pair_of[j, l], slot_of[j, l] = p, np.arange(j.size)
    w = w2.reshape(-1, n_scales, n_mirrors, dx, dx).transpose(1, 2, 3, 4, 0)  # (scale, mirror, j, l, D)
    weights = w[:, :, terms_j[:, :, None], terms_l[:, :, None], rows[:, None, :]]  # (scale, mirror, pair, 4, 4 Dphi)
    weights = weights * (used_coefs[:, :, None] & used_rows[:, None, :])
    weights = weights.transpose(2, 0, 1, 3, 4).reshape(n_pairs, -1, width)
    k, m = np.arange(n_scales)[:, None, None, None], np.arange(n_mirrors)
    perm = ((pair_of[:, :, None] * n_scales + k) * n_mirrors + m) * 4 + slot_of[:, :, None]
    return rows, _f32(weights), perm.ravel()


def _grouped_1d(c1: np.ndarray, layout: FeatureLayout, n_scales: int, n_mirrors: int) -> np.ndarray:
    """A projection's polynomial coefficient matrices split by frequency (as ``_grouped_2d``): weights
    (scales, F, 2 mirrors, 2 Dphi) that give, from the 2 Dphi stored columns of each frequency
    (``QueryScorer._projection_columns``), its 2 coefficients (cos, sin; the constant's after a zero one) for
    each mirror.

    ``c1`` (scales * mirrors, Dx * Dphi, Dx): ``shifts.poly_matrix_1d`` of each scale and mirror, normalised.
    """
    dx, _, dphi = layout.dims
    n_freq = len(layout.freqs_xy)
    padded = np.zeros((len(c1), dx + 1, dphi, dx + 1))  # term dx: the zero placeholder beside the constant
    padded[:, :dx, :, :dx] = c1.reshape(len(c1), dx, dphi, dx)
    terms = np.r_[dx, np.arange(dx)].reshape(n_freq, 2)
    w = padded[:, terms[:, None, :, None], np.arange(dphi), terms[:, :, None, None]]  # (k m, F, j, a, Dphi)
    w = w.reshape(n_scales, n_mirrors, n_freq, 2, 2 * dphi).transpose(0, 2, 3, 1, 4)
    return _f32(w.reshape(n_scales, n_freq, 2 * n_mirrors, 2 * dphi))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it: ``taskset``, a container's
    CPU set), else the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@functools.cache
def cpu_threads() -> int:
    """Threads that score a query's blocks side by side on the CPU: the cores this process may run on, at most
    the limit ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` sets (1 in a Dask worker or an indexing worker)."""
    n = available_cores()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        limit = os.environ.get(var, "").strip()
        if limit.isdigit() and int(limit) > 0:
            return min(n, int(limit))
    return max(1, n)


def _chunked(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], codes: np.ndarray,
             inv_norms: np.ndarray, rows: np.ndarray | None = None, *, chunk: int = CHUNK,
             threads: int = 1) -> np.ndarray:
    """Apply a block scorer over all rows (or the given rows) in chunks, on ``threads`` threads.

    The threads share out the chunks; each chunk's products are small and run on one BLAS thread
    (``QueryScorer``'s numpy backend, ``npnet.blas_threads``).  Where the BLAS split each small product
    instead, its threads would wait for each other hundreds of times a query, and where other work competes
    for the cores (the app's other threads, an index run, other programs) a query would take several times
    as long as on one thread.
    """
    n = codes.shape[0] if rows is None else len(rows)
    out = np.empty(n, np.float32)

    def score(start: int) -> None:
        stop = min(n, start + chunk)
        if rows is None:
            out[start:stop] = fn(codes[start:stop], inv_norms[start:stop])
        else:
            r = np.sort(rows[start:stop])  # sorted reads are kind to memory maps
            inv_order = np.argsort(np.argsort(rows[start:stop]))
            out[start:stop] = fn(codes[r], inv_norms[r])[inv_order]

    starts = range(0, n, chunk)
    todo = iter(starts)  # shared: each thread takes the next chunk when it is done with one

    def work() -> None:
        for start in todo:
            score(start)

    workers = min(threads, len(starts))
    if workers <= 1:
        work()
    else:
        with ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(work) for _ in range(workers)]:
                done.result()
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


def score_rows(scorer: QueryScorer, codes: np.ndarray, inv_norms: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact 2-D scores (``QueryScorer.score_2d``) of the given rows of a collection's (memory-mapped) codes, in
    the given order: read in sorted blocks, scored on the scorer's threads.

    Returns
    -------
    (len(rows),) float32 ndarray
    """
    if scorer._torch is not None:
        return scorer._torch.score_rows(codes, inv_norms, rows)
    return _chunked(lambda c, i: scorer.score_2d(c, i), codes, inv_norms, np.asarray(rows, np.int64),
                    threads=scorer.threads)


def rank(scorer: QueryScorer, codes: np.ndarray, inv_norms: np.ndarray, options: SearchOptions,
         *, top_k: int, n_align: int | None = None, timings: dict[str, float] | None = None,
         subset: np.ndarray | None = None) -> Ranking:
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
    subset : (m,) int64 ndarray, optional
        Rank only these rows of ``codes`` (a filter's); the ranking's rows are then positions in ``subset``.
        The torch backend keeps the whole collection on its device (``torchscore.resident``) and ranks
        there.

    Returns
    -------
    Ranking
    """
    clock = _Clock(timings)
    n_align = MAX_ALIGN if n_align is None else n_align
    n = codes.shape[0] if subset is None else len(subset)
    if n == 0 or top_k <= 0:
        return Ranking(np.zeros(0, np.int64), np.zeros(0, np.float32), 0, ())
    if scorer._torch is not None:
        soft = scorer.box_softness > 0  # the device aligns only best placements; soft ones come from ``align``
        rows, scores, n_exact, best, info = scorer._torch.rank(codes, inv_norms, options, top_k=top_k,
                                                               n_align=0 if soft else n_align, subset=subset,
                                                               clock=clock)
        if soft:  # the soft placements of the aligned rows (few: one product)
            head = rows[: min(len(rows), n_align)]
            aligned = _align_rows(scorer, codes, inv_norms, head if subset is None else np.asarray(subset)[head])
        else:
            aligned = scorer.alignments(best, info)
        return Ranking(rows, scores, n_exact, tuple(aligned))
    if subset is not None:
        subset = np.asarray(subset, np.int64)
        codes, inv_norms = codes[subset], inv_norms[subset]
    binary = options.binary

    def two_d(c, i):
        return scorer.score_2d(c, i, binary=binary)

    threads = scorer.threads
    if options.mode == "exhaustive":
        scores = _chunked(two_d, codes, inv_norms, threads=threads)
        clock("2d_all")
        rows = top_positions(scores, top_k)
        ranked_scores = scores[rows]
        n_exact = len(rows)
    else:
        s = options.shortlist_size(n)
        proj = codes[:, : scorer.n_proj]
        order = options.shortlist_order(n)
        if order == "coarse":
            first = _chunked(lambda c, i: scorer.score_2d(c, i, coarse=True), codes, inv_norms, threads=threads)
            clock("2d_coarse")
            pre = top_positions(first, max(s, top_k))
            stage1 = first[pre]
        elif order == "sum":
            first = _chunked(lambda c, i: scorer.score_1d(c, i, "xy"), proj, inv_norms, chunk=CHUNK_1D,
                             threads=threads)
            clock("1d_both")
            pre = top_positions(first, max(s, top_k))
            stage1 = first[pre]
        else:
            axes = ("x", "y") if scorer.spread[0] >= scorer.spread[1] else ("y", "x")
            first = _chunked(lambda c, i: scorer.score_1d(c, i, axes[0]), proj, inv_norms, chunk=CHUNK_1D,
                             threads=threads)
            clock("1d_first")
            pre = top_positions(first, max(3 * s, top_k))
            head = pre[: min(n, 3 * s)]
            clock("select")
            second = _chunked(lambda c, i: scorer.score_1d(c, i, axes[1]), proj, inv_norms, head,
                              chunk=CHUNK_1D, threads=threads)
            clock("1d_second")
            both = first[head] + second
            by_score = np.argsort(-both, kind="stable")
            pre = np.concatenate([head[by_score], pre[head.size:]])
            stage1 = np.concatenate([both[by_score], first[pre[head.size:]]])
        short = pre[:s]
        clock("select")
        fine = _chunked(two_d, codes, inv_norms, short, threads=threads)
        clock("2d_shortlist")
        by_fine = np.argsort(-fine, kind="stable")
        rows = np.concatenate([short[by_fine], pre[s:]])[:top_k]
        ranked_scores = np.concatenate([fine[by_fine], stage1[s:]])[:top_k]
        n_exact = min(s, len(rows))
    alignments = _align_rows(scorer, codes, inv_norms, rows[: min(len(rows), n_align)])  # n_align may exceed MAX_ALIGN
    clock("align")
    return Ranking(np.asarray(rows, np.int64), np.asarray(ranked_scores, np.float32), n_exact, tuple(alignments))


def _align_rows(scorer: QueryScorer, codes: np.ndarray, inv_norms: np.ndarray, rows: np.ndarray) -> list[Alignment]:
    """``scorer.align`` of the given rows, in their order (read in row order, blocks of 256)."""
    out = []
    for start in range(0, len(rows), 256):
        block = np.asarray(rows[start:start + 256], np.int64)
        srt = np.argsort(block)
        al = scorer.align(codes[block[srt]], inv_norms[block[srt]])
        back = np.empty(len(block), np.int64)
        back[srt] = np.arange(len(block))
        out.extend(al[j] for j in back)
    return out
