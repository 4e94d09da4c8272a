"""The query facade: a ``Collection`` (one index, ``SketchIndex``; or a sharded one) answers sketch and image
queries with ``Hit``s, running the client half of the search protocol (``engine.shardsearch`` is the shard half).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np

from . import fusion as fusion_steps
from .afm import FeatureLayout
from .boxes import fitted_box
from .edges import EdgeMap, sketch_edges
from .errors import DamagedIndexWarning, Hint, ImageIndexDamaged, IndexFormatError, QueryError
from .fusion import FusionParams, ReferenceScores, leave_one_out_cosines, load_params, reference_weight
from .hits import Hit, photo_box
from .imageio import ImageError, load_image, load_sketch
from .imagesearch import alpha_qe
from .indexview import IndexView
from .settings import SketchSettings
from .shardsearch import Candidates, Expansion, ReferenceReply, ShardSearcher, ShardSummary
from .vectors import top_positions

# --------------------------------------------------------------------------------------------------
# The client half of the search protocol (the shard half: engine.shardsearch)

class PartialResultWarning(UserWarning):
    """Some shards did not answer: the results come from the others."""


@dataclasses.dataclass(frozen=True)
class PartialResults:
    """Which shards a query had to leave out, and why."""

    missing: dict[int, str]  # shard -> reason
    n_shards: int

    def message(self, names: Sequence[str] | None = None) -> str:
        which = ", ".join(f"{names[i] if names else i} ({why})" for i, why in sorted(self.missing.items()))
        return (f"partial results: {len(self.missing)} of {self.n_shards} shards did not answer and their photos "
                f"are missing from these results: {which}")


class Shards:
    """The shards of a collection as the client sees them.

    Subclasses implement :meth:`_call`.  ``call`` leaves out shards that fail (``missing``: shard ->
    reason), except for errors of the query itself (``SketchSearchError``), which it raises.
    """

    def __init__(self, summaries: Sequence[ShardSummary], names: Sequence[str] | None = None) -> None:
        self.summaries = list(summaries)
        self.sizes = [int(s.n) for s in self.summaries]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.names = list(names) if names is not None else [s.path for s in self.summaries]
        self.missing: dict[int, str] = {}
        self._background: dict[int, dict[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.summaries)

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @property
    def images_ready(self) -> bool:
        """Whether every shard has a built image index with global sketch descriptors."""
        return all(s.image_settings and s.image_index and s.image_index.get("sketch")
                   for s in self.summaries if s.n)

    def begin(self) -> None:
        """A new query: shards that failed an earlier one are tried again."""
        self.missing = {}

    def call(self, step: Callable, args: dict[int, tuple]) -> dict[int, object]:
        """``step(*args[i])`` on each shard ``i`` in ``args`` that has not failed in this query; ``step`` is a
        ``ShardSearcher`` method (``ShardSearcher.expand``...)."""
        todo = {i: a for i, a in args.items() if i not in self.missing}
        got, failed = self._call(step, todo)
        self.missing.update(failed)
        return got

    def first(self, step: Callable, *args):
        """``step(*args)`` on one shard that answers (query descriptors)."""
        for i in range(len(self)):
            if i in self.missing or not self.sizes[i]:
                continue
            got = self.call(step, {i: args})
            if i in got:
                return got[i]
        raise QueryError("no shard answered: " + "; ".join(f"{self.names[i]}: {w}" for i, w in self.missing.items()))

    def soon(self, step: Callable, *args) -> Future:
        """``first(step, *args)`` as a future: computed here at once; shards in this process compute it on a
        thread while the client goes on (``LocalShards``)."""
        fut: Future = Future()
        fut.set_result(self.first(step, *args))
        return fut

    def sent(self, fut: Future | None):
        """What the shards' steps are given for a value computed with :meth:`soon`: the value itself (shards in
        another process); ``LocalShards`` give them the future, which they await where they need the value."""
        return None if fut is None else fut.result()

    def _call(self, step: Callable, args: dict[int, tuple]) -> tuple[dict[int, object], dict[int, str]]:
        raise NotImplementedError

    def partial(self) -> PartialResults | None:
        return PartialResults(dict(self.missing), len(self)) if self.missing else None

    def background(self, size: int) -> dict[int, np.ndarray]:
        """Local rows, per shard, of the collection's background sample: the ``size`` photos with the smallest
        background keys over all shards (cached while every shard answered)."""
        if size in self._background:
            return self._background[size]
        got = self.call(ShardSearcher.background_keys, {i: (size,) for i in range(len(self)) if self.sizes[i]})
        keys = [(k, i, int(r)) for i, (ks, rs) in got.items() for k, r in zip(ks, rs.tolist(), strict=True)]
        keys.sort()
        out: dict[int, list[int]] = {i: [] for i in got}
        for _, i, r in keys[:size]:
            out[i].append(r)
        bg = {i: np.sort(np.array(v, np.int64)) for i, v in out.items()}
        if not self.missing:
            self._background[size] = bg
        return bg

    def split(self, rows: np.ndarray) -> dict[int, np.ndarray]:
        """Collection rows -> local rows per shard (in the given order)."""
        rows = np.asarray(rows, np.int64)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        return {int(i): rows[shard == i] - self.offsets[i] for i in np.unique(shard)}


class LocalShards(Shards):
    """Shards in this process (one index, or the shards of a manifest opened locally)."""

    def __init__(self, searchers: Sequence[ShardSearcher], names: Sequence[str] | None = None) -> None:
        self.searchers = list(searchers)
        super().__init__([s.summary() for s in self.searchers], names)

    def _call(self, step, args):
        return {i: step(self.searchers[i], *a) for i, a in args.items()}, {}

    def soon(self, step: Callable, *args) -> Future:
        """``first(step, *args)`` on a thread: a sketch's global descriptor (the CNN, 7-10 ms; at a collection's
        first query, also its network's and image index's loading) is computed while the shards rank the
        alignment's shortlist, on the other core (``docs/benchmarks.md``)."""
        return _pool().submit(self.first, step, *args)

    def sent(self, fut: Future | None):
        return fut


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads that compute a query's descriptors beside its alignment (``LocalShards.soon``)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(2, thread_name_prefix="sketchsearch-query")
        return _POOL


def _forget_pool() -> None:
    """In a child made by ``fork``: the parent's threads do not exist here, so the child makes its own."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _neutral(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rows without a descriptor (added since the image index was built) get the background mean."""
    return np.where(np.isnan(x), np.nanmean(ref) if np.isfinite(ref).any() else 0.0, x)


def _warn(shards: Shards) -> None:
    p = shards.partial()
    if p is not None:
        warnings.warn(p.message(shards.names), PartialResultWarning, stacklevel=3)


def sketch_search(shards: Shards, edges: EdgeMap, options, *, top_k: int, params: FusionParams | None = None,
                  expand: int | None = None, fusion: bool = True, filt=None) -> list[Hit]:
    """Fused sketch search over shards (``engine.fusion``; the steps in ``engine.shardsearch``'s docstring),
    of the photos a filter (``engine.filters.PhotoFilter``) lets through.

    Returns hits best first, ``row`` being the collection row; warns with :class:`PartialResultWarning`
    when shards were left out.
    """
    params = params or load_params()
    if expand is not None:
        params = dataclasses.replace(params, qe_n=int(expand))
    shards.begin()
    off = shards.offsets
    n = shards.n
    if n == 0:
        return []
    images = fusion and shards.images_ready
    s = options.shortlist_size(n)
    extra_k = min(s, max(4 * top_k, 200))  # rows the global descriptor and the expansion add
    qid = uuid.uuid4().hex
    bg = shards.background(params.background)
    # the sketch's global descriptor is computed while the shards rank the alignment's shortlist (in this process)
    q_soon = shards.soon(ShardSearcher.describe_sketch, edges, options.device) if images else None
    cap = options.shard_cap(top_k, params.qe_n if images else 0)  # the shortlist rows a shard sends
    got: dict[int, Candidates] = shards.call(ShardSearcher.sketch_candidates, {
        i: (qid, edges, options, shards.sent(q_soon), bg.get(i, np.zeros(0, np.int64)), extra_k, filt, cap)
        for i in range(len(shards)) if shards.sizes[i]})
    q_glob = q_soon.result() if q_soon is not None else None
    if not got:
        _warn(shards)
        return []
    parts = sorted(got)
    rows = np.concatenate([got[i].rows + off[i] for i in parts])
    afm = np.concatenate([got[i].afm for i in parts])
    keep = np.concatenate([got[i].core for i in parts])
    barred = np.zeros(0, np.int64)  # candidates a filter does not let through (background rows)
    if any(got[i].allowed is not None for i in parts):
        allowed = [np.ones(len(got[i].rows), bool) if got[i].allowed is None else got[i].allowed for i in parts]
        barred = rows[~np.concatenate(allowed)]
    glob = np.concatenate([got[i].glob for i in parts]) if q_glob is not None else None
    if q_glob is not None:  # the collection's best extra_k global rows (each shard sent its own best)
        gtop = np.concatenate([got[i].gtop + off[i] for i in parts])
        gsc = np.concatenate([got[i].gtop_scores for i in parts])
        keep |= np.isin(rows, gtop[top_positions(gsc, extra_k)])
        rows, afm, glob = rows[keep], afm[keep], glob[keep]
    bg_rows = np.concatenate([bg[i] + off[i] for i in parts if i in bg] or [np.zeros(0, np.int64)])
    bgi = np.searchsorted(rows, bg_rows)
    glob_bg = None
    if glob is not None:
        glob_bg = glob[bgi]
        glob = _neutral(glob, glob_bg)
    reference = _reference(shards, qid, q_glob, len(bg_rows), params, options.device)
    whitened = all(bool((s.image_index or {}).get("whitened")) for s in shards.summaries if s.n)
    calibration = params.calibration_for(fused=glob is not None, whitened=whitened)
    stage = fusion_steps.begin(rows, afm, glob, bgi, dataclasses.replace(params, calibration=calibration),
                               reference=reference)
    if stage.expands:
        fused = fusion_steps.finish_expanded(stage, *_expand(
            shards, qid, fusion_steps.seed_rows(stage), rows, afm, glob, glob_bg, bgi, parts, extra_k, params,
            reference, options.device, filt))
    else:
        fused = fusion_steps.finish(stage)
    answered = np.isfinite(fused.final)
    if shards.missing:  # the best rows of the shards still answering (those of the others cannot be finished)
        answered &= ~np.isin(np.searchsorted(off, fused.rows, side="right") - 1, list(shards.missing))
    eligible = answered & ~np.isin(fused.rows, barred) if len(barred) else answered
    final = fusion_steps.confirmed_first(fused, params, n, eligible)
    # likely matches only where the hits stand out from what n photos without the shape show (engine.fusion);
    # judged on the whole collection's hits, so that a filter only narrows what is shown
    stands_out = glob is None or not answered.any() or params.stands_out(
        n, whitened=whitened, best_z=float(fused.z[answered].max()),
        count=int(params.counted(fused.score, fused.za)[answered].sum()))
    order = top_positions(final, top_k)
    order = order[final[order] > -np.inf]
    top = fused.rows[order]
    meta = _finish(shards, qid, top)
    hits = []
    for row, j in zip(top.tolist(), order.tolist(), strict=True):
        m = meta.get(row)
        if m is None:  # removed since the shard was opened, or the shard died at the last step
            continue
        path, geometry, al, cells = m
        # the extent of the photo's edges along the placed sketch, or the placed frame (engine.boxes)
        w, h = edges.width * al.scale, edges.height * al.scale
        box = (fitted_box(geometry, edges, al.scale, al.mirrored, al.dx, al.dy, cells)
               or photo_box(geometry, w, h, al.dx, al.dy))
        frame = photo_box(geometry, w, h, al.dx, al.dy, clip=False)
        hits.append(Hit(len(hits) + 1, path, float(fused.score[j]), box, al.scale, al.mirrored, int(row),
                        float(al.score), box_sure=bool(fused.za[j] >= params.sure_z),
                        likely=bool(stands_out and fused.score[j] >= params.likely), frame=frame))
    _warn(shards)
    return hits


def _expand(shards: Shards, qid: str, seeds: np.ndarray, rows: np.ndarray, afm: np.ndarray, glob: np.ndarray,
            glob_bg: np.ndarray, bgi: np.ndarray, parts: list[int], extra_k: int, params: FusionParams,
            reference: ReferenceScores | None, device, filt=None):
    """Steps 3 and 4 of a sketch query: the seeds' image vectors, the alpha-expanded query, its image cosines for
    the candidates and the rows it finds best -> the arguments of ``fusion.finish_expanded`` after ``stage``
    (rows2, cos, afm2, glob2, ref_cos); where no seed has an image vector, the candidates with image cosines 0."""
    off = shards.offsets
    per = shards.split(seeds)
    vec = shards.call(ShardSearcher.seed_vectors, {i: (r, device) for i, r in per.items()})
    dim = next((v[0].shape[1] for v in vec.values() if len(v[0])), 0)
    ordered, with_vec = [], []  # back in seed order
    pos = {i: 0 for i in vec}
    for row, sh in zip(seeds.tolist(), (np.searchsorted(off, seeds, side="right") - 1).tolist(), strict=True):
        if sh in vec:
            vs, ok = vec[sh]
            j = pos[sh]
            pos[sh] += 1
            if ok[j]:
                ordered.append(vs[int(ok[:j].sum())])
                with_vec.append(row)
    if not ordered:
        return rows, np.zeros(len(rows)), afm, glob, None
    seed_vecs = np.stack(ordered).reshape(-1, dim)
    q = alpha_qe(seed_vecs[0], seed_vecs, np.arange(len(seed_vecs)), alpha=params.qe_alpha)
    seed_rows = np.array(with_vec, np.int64)
    cand = shards.split(rows)
    ex: dict[int, Expansion] = shards.call(ShardSearcher.expand, {
        i: (qid, q, cand.get(i, np.zeros(0, np.int64)), extra_k, device, filt) for i in parts})
    cos = np.concatenate([ex[i].cos if i in ex else np.full(len(cand.get(i, ())), np.nan) for i in parts])
    found = np.concatenate([ex[i].found + off[i] for i in ex] or [np.zeros(0, np.int64)])
    fsc = np.concatenate([ex[i].found_scores for i in ex] or [np.zeros(0)])
    best = found[top_positions(fsc, extra_k)]  # the collection's best extra_k rows for the expanded query
    extra = np.concatenate([ex[i].extra + off[i] for i in sorted(ex)] or [np.zeros(0, np.int64)])
    take = np.isin(extra, best)

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(ex[i], field) for i in sorted(ex)] or [np.zeros(0)])[take]

    rows2 = np.concatenate([rows, extra[take]])
    cos = np.concatenate([cos, cat("cos_extra")])
    cos = _neutral(cos, cos[bgi])
    ref_cos = None
    if reference is not None:
        ref_cos = shards.first(ShardSearcher.reference_image_scores, q, device)
        if params.qe_loo:  # the seeds' cosines with the expansion of the others (fusion.leave_one_out_cosines)
            where = {r: k for k, r in enumerate(rows2.tolist())}
            at = np.array([where[r] for r in seed_rows.tolist()], np.int64)
            cos[at] = leave_one_out_cosines(seed_vecs[0], seed_vecs, params.qe_alpha)
    return rows2, cos, np.concatenate([afm, cat("afm_extra")]), np.concatenate(
        [glob, _neutral(cat("glob_extra"), glob_bg)]), ref_cos


def _reference(shards: Shards, qid: str, q_glob: np.ndarray | None, n_background: int, params: FusionParams,
               device) -> ReferenceScores | None:
    """The reference sample's scores for this query with their weight beside a background of
    ``n_background`` photos (``fusion.reference_weight``); None when the weight is 0 (large collections: no
    cost) or the shipped reference does not fit the collection's settings."""
    w = reference_weight(n_background, params)
    if w <= 0:
        return None
    got: ReferenceReply | None = shards.first(ShardSearcher.reference_scores, qid, q_glob, device)
    if got is None:
        return None
    return ReferenceScores(got.afm, got.glob, w)


def merge_top(got: dict[int, tuple], offsets: np.ndarray, k: int):
    """Merge per-shard (rows, scores, vectors) into the collection's top ``k``: (rows, scores, vectors)."""
    parts = sorted(got)
    rows = np.concatenate([got[i][0] + offsets[i] for i in parts] or [np.zeros(0, np.int64)])
    scores = np.concatenate([got[i][1] for i in parts] or [np.zeros(0, np.float32)])
    order = top_positions(scores, k)
    vecs = None
    if parts and got[parts[0]][2] is not None:
        vecs = np.concatenate([got[i][2] for i in parts])[order]
    return rows[order], scores[order], vecs


def _finish(shards: Shards, qid: str | None, rows: np.ndarray) -> dict[int, object]:
    """Step 5 on the shards holding ``rows``: collection row -> what ``ShardSearcher.finish`` gives (rows of
    shards that did not answer are absent)."""
    per = shards.split(rows)
    done = shards.call(ShardSearcher.finish, {i: (qid, r) for i, r in per.items()})
    meta = {}
    for i, r in per.items():
        if i in done:
            meta.update(zip((r + shards.offsets[i]).tolist(), done[i], strict=True))
    return meta


def hits_of_rows(shards: Shards, rows: np.ndarray, scores: np.ndarray) -> list[Hit]:
    """Hits (box: the whole photo) of collection rows, e.g. of an image query."""
    meta = _finish(shards, None, rows)
    hits = []
    for row, sc in zip(np.asarray(rows).tolist(), np.asarray(scores).tolist(), strict=True):
        m = meta.get(row)
        if m is None:
            continue
        path, geometry = m
        hits.append(Hit(len(hits) + 1, path, min(float(sc), 1.0),  # a cosine (rounding, and a rotation's
                                                                    # refined curve, passed 1)
                        (0.0, 0.0, float(geometry[0]), float(geometry[1])), 1.0, False, int(row)))
    return hits


def image_search(shards: Shards, pixels: np.ndarray, *, top_k: int, qe: int, alpha: float = 3.0,
                 device=None, filt=None) -> list[Hit]:
    """Image query over shards: the query's vector (one shard), alpha-QE over the collection's top ``qe``,
    each shard's top ``top_k`` (of the photos a filter lets through), merged.  ``box`` is the whole photo."""
    shards.begin()
    live = [i for i in range(len(shards)) if shards.sizes[i]]
    if not live:
        return []
    q = np.asarray(shards.first(ShardSearcher.describe_image, pixels, device), np.float32)
    if qe > 0:
        nb, _, vecs = merge_top(shards.call(ShardSearcher.image_top, {i: (q, qe, True, device) for i in live}),
                                shards.offsets, qe)
        if len(nb):
            q = alpha_qe(q[None], vecs, np.arange(len(nb))[None], alpha)[0]
    rows, scores, _ = merge_top(shards.call(ShardSearcher.image_top, {
        i: (q, top_k, False, device, filt) for i in live}), shards.offsets, top_k)
    hits = hits_of_rows(shards, rows, scores)
    _warn(shards)
    return hits


# --------------------------------------------------------------------------------------------------
# The collections


class Collection:
    """What every collection answers: an index (``SketchIndex``, one shard) or a sharded one
    (``engine.shards.ShardedIndex`` here, ``engine.cluster.ClusterIndex`` on a cluster).  Searches run as
    steps sent to ``self.shards`` (an ``engine.shardsearch.Shards``) and merged here."""

    path: Path
    settings: SketchSettings
    shards: object
    #: why its image index cannot be read, once a sketch search found it (then its searches rank by the shape)
    image_damage: str | None = None

    def __len__(self) -> int:
        return self.shards.n

    @cached_property
    def layout(self) -> FeatureLayout:
        return FeatureLayout.from_settings(self.settings)

    def sketch_query(self, sketch) -> EdgeMap:
        """Sketch image (path or array) -> its edge map at scale 1."""
        if isinstance(sketch, EdgeMap):
            return sketch
        if isinstance(sketch, str | os.PathLike):
            try:
                sketch = load_sketch(sketch, max_side=self.settings.max_side).pixels
            except ImageError as e:
                raise QueryError(str(e)) from None
        try:
            return sketch_edges(sketch, max_side=self.settings.max_side)
        except ValueError as e:
            raise QueryError(str(e)) from None

    def search(self, sketch, *, top_k: int = 20, options=None, expand: int | None = None,
               fusion: bool = True, params=None, filt=None) -> list[Hit]:
        """Photos that contain the sketched shape, best first, each with its box.

        The ranking fuses the alignment (AFM, which gives the box) with the global sketch descriptor and
        expands the query with the image descriptors of the best hits (``engine.fusion``); ``score`` is
        calibrated to [0, 1], ``raw_score`` is the alignment's cosine at the box.

        Parameters
        ----------
        sketch : path, image array or EdgeMap
        top_k : int
        options : SearchOptions (default: ``mirror`` as fitted, see ``engine.fusion``)
        expand : int or None
            Seeds of the query expansion (None: the fitted default; 0: none).
        fusion : bool
            False: the alignment alone (still calibrated).  Indexes without image descriptors always
            rank by the alignment alone.
        params : engine.fusion.FusionParams, optional
        filt : engine.filters.PhotoFilter, optional
            Only photos it lets through (applied before the cut to ``top_k``).

        Returns
        -------
        list of Hit (at most ``top_k``, fewer when the index is smaller)
        """
        from .search import SearchOptions  # torch: only where searches run

        params = params or load_params()
        options = options or SearchOptions(mirror=params.mirror)
        edges = self.sketch_query(sketch)
        try:
            return sketch_search(self.shards, edges, options, top_k=top_k, params=params, expand=expand,
                                 fusion=fusion and self.image_damage is None, filt=filt)
        except ImageIndexDamaged as e:  # the image part is lost until the next run rebuilds it: the shape is not
            if not fusion:
                raise
            self.image_damage = str(e)  # said once; the next searches of this view rank by the shape at once
            warnings.warn(DamagedIndexWarning(f"{e}: searches rank by the shape alone", hint=e.hint), stacklevel=2)
            return sketch_search(self.shards, edges, options, top_k=top_k, params=params, expand=expand,
                                 fusion=False, filt=filt)

    def hits_of(self, found) -> list[Hit]:
        """Hits of (collection row, score) pairs found by whole-photo similarity (box: the whole photo)."""
        return hits_of_rows(self.shards, np.array([r for r, _ in found], np.int64),
                            np.array([s for _, s in found], np.float64))

    def search_image(self, image, *, top_k: int = 20, qe: int | None = None, device=None, filt=None) -> list[Hit]:
        """Photos similar to an image (path or RGB array in [0, 1]), best first; ``box`` is the whole photo.

        ``qe``: alpha-weighted query expansion over that many neighbours (default DEFAULT_QE).  The image is
        read here, described by one shard and searched on all.  ``filt``: only photos an
        ``engine.filters.PhotoFilter`` lets through.
        """
        from .imageindex import ALPHA, DEFAULT_QE

        max_side = self._image_side()
        if isinstance(image, str | os.PathLike):
            try:
                image = load_image(image, max_side=max_side).pixels
            except ImageError as e:
                raise QueryError(str(e)) from None
        return image_search(self.shards, np.asarray(image, np.float32), top_k=top_k,
                            qe=DEFAULT_QE if qe is None else qe, alpha=ALPHA, device=device, filt=filt)

    def _image_side(self) -> int:
        """The image descriptor's input size (QueryError where the collection has no image search ready)."""
        from .cnn import GemSettings

        summary = next((s for s in self.shards.summaries if s.n), self.shards.summaries[0])
        if not summary.image_settings:
            raise QueryError(f"{self.path}: this collection has no image descriptors",
                             hint=Hint("image-descriptors", str(self.path)))
        if not self.shards.images_ready and any(not s.image_index for s in self.shards.summaries):
            raise QueryError(f"{self.path}: the image descriptors are not ready yet (an index run has not "
                             f"finished)", hint=Hint("repair", str(self.path)))
        try:
            return int(GemSettings.from_json(summary.image_settings).max_side)
        except (ValueError, TypeError) as e:
            raise IndexFormatError(f"{self.path}: the catalog's image settings are damaged ({e})",
                                   hint=Hint("rebuild", str(self.path))) from None

    def search_region(self, image, box, *, mode: str = "both", top_k: int = 20, filt=None, options=None,
                      params=None, device=None, notes: list | None = None) -> list[Hit]:
        """Photos that hold what a region of a photo shows (``engine.region``).

        Parameters
        ----------
        image : path, or RGB array in [0, 1] at its original size
        box : (x0, y0, x1, y1) in the photo's original pixels (after EXIF orientation)
        mode : "image" (the region's image descriptor), "shape" (its edges as a sketch; hits have boxes) or
            "both" (the two rankings fused, boxes from the shape ranking)
        filt : engine.filters.PhotoFilter, optional
        notes : a list that "both" appends an ``engine.region.Alone`` to where one of its two searches could not
            run and the other ranked alone (a region without edges: its image alone; a collection without image
            descriptors: its shape alone); ``str()`` of it is the line to show

        Raises QueryError for a region outside the photo or of zero area, an unknown mode, a region without
        edges ("shape"), or a collection without image descriptors ("image", "both").
        """
        from .region import MODES, Alone, boxed_on_the_region, fuse_rankings, region_pixels, region_sketch

        if mode not in MODES:
            raise QueryError(f"region mode {mode!r} is not one of {', '.join(MODES)}")
        need = self.settings.max_side if mode == "shape" else max(self.settings.max_side, self._image_side())
        pixels = region_pixels(image, box, min_side=need)
        depth = top_k if mode != "both" else max(2 * top_k, 100)
        shape = image_hits = []
        problems = []  # with both: a region without edges, or a collection without image descriptors, is
        if mode in ("shape", "both"):  # searched by the other alone
            s = self.settings
            try:
                edges = region_sketch(pixels, detector=s.detector, max_side=s.max_side, min_strength=s.min_strength)
                shape = boxed_on_the_region(self.search(edges, top_k=depth, options=options, params=params,
                                                        filt=filt), image, box)
            except QueryError as e:
                if mode == "shape":
                    raise
                problems.append((e, "image"))  # what ranks alone
        if mode in ("image", "both"):
            try:
                image_hits = self.search_image(pixels, top_k=depth, device=device, filt=filt)
            except QueryError as e:
                if mode == "image" or problems:
                    raise
                problems.append((e, "shape"))
        if mode == "shape":
            return shape
        if mode == "image":
            return image_hits
        if problems:  # one of the two: its own ranking, its own scores
            if notes is not None:
                notes.append(Alone(str(problems[0][0]), problems[0][1]))
            alone = shape if problems[0][1] == "shape" else image_hits
            return [dataclasses.replace(h, rank=i + 1) for i, h in enumerate(alone[:top_k])]
        return fuse_rankings(shape, image_hits, top_k)

    def allowed_mask(self, filt) -> np.ndarray | None:
        """(N,) bool over the collection's rows: the photos a filter lets through (None: no filter)."""
        if filt is None or not filt.active:
            return None
        self.shards.begin()
        got = self.shards.call(ShardSearcher.allowed_rows, {i: (filt,) for i in range(len(self.shards))
                                                            if self.shards.sizes[i]})
        mask = np.zeros(self.shards.n, bool)
        for i, rows in got.items():
            mask[np.asarray(rows, np.int64) + self.shards.offsets[i]] = True
        return mask

    def folders(self) -> list[str]:
        """The folders indexed into this collection (every shard's), sorted."""
        self.shards.begin()
        got = self.shards.call(ShardSearcher.folders, {i: () for i in range(len(self.shards))})
        return sorted({f for part in got.values() for f in part})

    def browse(self, filt=None, *, limit: int = 60, offset: int = 0) -> list[Hit]:
        """The collection's photos (those a filter lets through), newest first by their date (EXIF
        DateTimeOriginal, else the file's time): ``limit`` of them from ``offset``; ``taken`` is the date,
        ``score`` 0 and ``box`` the whole photo."""
        self.shards.begin()
        live = [i for i in range(len(self.shards)) if self.shards.sizes[i]]
        got = self.shards.call(ShardSearcher.browse, {i: (filt, offset + limit, 0) for i in live})
        off = self.shards.offsets
        # each shard's first offset + limit, merged in the shards' own order (date, newest first; then path)
        merged = sorted(((-d, p, int(r) + int(off[i])) for i in got
                         for r, d, p in zip(got[i][0].tolist(), got[i][1].tolist(), got[i][2], strict=True)))
        page = merged[offset:offset + limit]
        rows = np.array([r for _, _, r in page], np.int64)
        hits = hits_of_rows(self.shards, rows, np.zeros(len(rows)))
        when = {r: -d for d, _, r in page}
        _warn(self.shards)
        return [dataclasses.replace(h, taken=when[h.row]) for h in hits]


class SketchIndex(IndexView, Collection):
    """One index folder as a collection: a read-only, memory-mapped view (``IndexView``) that answers sketch and
    image queries as the one shard of itself.

    The view is a consistent snapshot of the catalog at opening; a writer may add to the index meanwhile (open it
    again to see the additions).
    """

    @cached_property
    def shards(self):
        """This index as the one shard of a collection (``engine.shardsearch``)."""
        return LocalShards([ShardSearcher(self)])

