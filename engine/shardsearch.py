"""Search as a conversation between a client and shards (issue "scale out").

A collection may be one index or many (shards, ``engine.shards``); either way a query runs the same
steps, split between the **shards**, each a :class:`ShardSearcher` over one index that scores its own
photos, and the **client** (the functions here), which holds the query, merges what the shards answer
and computes everything that needs the whole collection: the background statistics of the fused score,
the query expansion's seeds, the final order.  A single index is the one-shard case of the same code,
so a sharded collection ranks exactly as one index of the same photos (tested) wherever the shards'
candidate sets together hold the single index's (collections below the alignment's shortlist size,
1,000 photos per shard; above it the union of the shards' shortlists holds at least as many photos).

Shards are reached through a :class:`Shards` object: :class:`LocalShards` calls them in this process
(``SketchIndex.search``, ``ShardedIndex``); ``engine.cluster`` calls Dask actors on other machines,
with a timeout, and leaves out shards that die (the results say so: :class:`PartialResults`).

Rows: shard ``i``'s local row ``r`` is the collection row ``offsets[i] + r``.

Steps of a sketch query (``sketch_search``), ``i`` over the shards:

1. ``describe_sketch`` (one shard): the query's global descriptor.
2. ``sketch_candidates`` (all): each shard's alignment shortlist (exact 2-D scores), its part of the
   background sample and its best global-descriptor rows, with both scores.
3. client: keeps the collection's best ``extra_k`` global-descriptor rows, standardises, ranks by the
   expansion's base score and picks the seeds; ``seed_vectors`` (the shards holding seeds) returns
   their image vectors; alpha-QE.
4. ``expand`` (all): image cosines of the candidates and each shard's best rows for the expanded query.
5. client: ``engine.fusion.fuse`` on the merged arrays; top ``k``; ``finish`` (the shards holding them):
   alignment (box) and catalog data.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from .afm import encode_query
from .edges import EdgeMap
from .errors import QueryError
from .fusion import FusionParams, ReferenceScores, fuse, leave_one_out_cosines, load_params, reference_weight
from .imagesearch import alpha_qe
from .store import Hit, SketchIndex, photo_box

__all__ = ["LocalShards", "PartialResults", "PartialResultWarning", "ShardSearcher", "Shards", "image_search",
           "sketch_search"]

MAX_OPEN_QUERIES = 16  # per-query state a shard keeps (scorer, scores computed); oldest dropped first


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


# --------------------------------------------------------------------------------------------------
# The shard side


class _Query:
    """What a shard keeps of one query between steps."""

    def __init__(self, scorer, q_glob) -> None:
        self.scorer = scorer
        self.q_glob = q_glob
        self.afm: dict[int, float] = {}


class ShardSearcher:
    """Answers the client's steps for one index (in this process, or inside a Dask actor).

    Every method takes and returns plain numpy arrays, lists and dataclasses (sent between processes).
    """

    def __init__(self, index: SketchIndex | str | os.PathLike) -> None:
        self.index = index if isinstance(index, SketchIndex) else SketchIndex(index)
        self._queries: OrderedDict[str, _Query] = OrderedDict()
        self._lock = threading.Lock()
        self._reference_vectors: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    # -- what the client needs to know ------------------------------------------------------------
    def summary(self) -> dict:
        ix = self.index
        image = None
        if ix.image_settings and ix.meta.get("image_index"):
            import json

            image = json.loads(ix.meta["image_index"])
        return {"path": str(ix.path), "n": len(ix), "n_skipped": ix.n_skipped, "settings": ix.settings.to_json(),
                "image_settings": ix.image_settings, "image_index": image}

    def background_keys(self, size: int) -> tuple[list[str], np.ndarray]:
        """(keys, rows) of this shard's ``size`` photos first by background key (``SketchIndex.background``)."""
        return self.index.background_keys(size)

    # -- query descriptors (one shard computes them for all) --------------------------------------
    def describe_sketch(self, edges: EdgeMap, device=None) -> np.ndarray:
        return self.index.images(device).describe_sketch(edges)

    def describe_image(self, pixels: np.ndarray, device=None) -> np.ndarray:
        return self.index.images(device).describe(pixels)

    # -- sketch queries ---------------------------------------------------------------------------
    def _query(self, qid: str) -> _Query:
        with self._lock:
            q = self._queries.get(qid)
        if q is None:
            raise QueryError(f"{self.index.path}: query {qid} is unknown here (expired, or the shard was reloaded)")
        return q

    def _afm(self, q: _Query, rows: np.ndarray) -> np.ndarray:
        """Exact 2-D alignment scores of rows (cached per query)."""
        codes, inv = self.index.codes, self.index.inv_norms
        missing = np.array([r for r in rows.tolist() if r not in q.afm], np.int64)
        for i in range(0, len(missing), 4096):
            part = missing[i:i + 4096]
            q.afm.update(zip(part.tolist(), q.scorer.score_2d(codes[part], inv[part]).tolist(), strict=True))
        return np.array([q.afm[r] for r in rows.tolist()], np.float64)

    def _images(self, options):
        return self._images_for(options.device)

    def sketch_candidates(self, qid: str, edges: EdgeMap, options, q_glob: np.ndarray | None,
                          bg_rows: np.ndarray, extra_k: int) -> dict:
        """Step 2: candidates of this shard with their alignment and global scores.

        Returns a dict: ``rows`` (sorted local rows: background, alignment shortlist and best global rows),
        ``afm``, ``glob`` (NaN: no descriptor; None without ``q_glob``), ``core`` (bool: background or
        shortlist, i.e. kept whatever the other shards hold), ``gtop`` / ``gtop_scores`` (this shard's
        best ``extra_k`` global rows and their float16 scores, for the client's collection-wide cut).
        """
        from .search import QueryScorer, pick_device, rank

        ix = self.index
        scorer = QueryScorer(encode_query(edges, ix.layout), ix.layout, mirror=options.mirror,
                             device=pick_device(options.device))
        q = _Query(scorer, q_glob)
        with self._lock:
            self._queries[qid] = q
            while len(self._queries) > MAX_OPEN_QUERIES:
                self._queries.popitem(last=False)
        n = len(ix)
        ranking = rank(scorer, ix.codes, ix.inv_norms, options, top_k=options.shortlist_size(n), n_align=0)
        q.afm.update(zip(ranking.rows[: ranking.n_exact].tolist(), ranking.scores[: ranking.n_exact].tolist(),
                         strict=True))
        core = np.unique(np.concatenate([np.asarray(bg_rows, np.int64), ranking.rows[: ranking.n_exact]]))
        images = self._images(options) if q_glob is not None else None
        gtop = gtop_scores = np.zeros(0)
        if images is not None:
            gtop, gtop_scores = images.sketch_top(q_glob, extra_k, with_scores=True)
        rows = np.union1d(core, gtop).astype(np.int64)
        glob = None
        if images is not None:
            glob = images.sketch_scores(q_glob, rows).astype(np.float64)
        return {"rows": rows, "afm": self._afm(q, rows), "glob": glob, "core": np.isin(rows, core),
                "gtop": np.asarray(gtop, np.int64), "gtop_scores": np.asarray(gtop_scores, np.float32)}

    def seed_vectors(self, rows: np.ndarray, device=None) -> tuple[np.ndarray, np.ndarray]:
        """Step 3: image vectors of rows (``ok``: rows that have one, in order) -> (vectors, ok)."""
        images = self.index.images(device)
        rows = np.asarray(rows, np.int64)
        ok = images.row_to_vec[rows] >= 0
        return images.vectors_of_rows(rows), ok

    def expand(self, qid: str, q_image: np.ndarray, rows: np.ndarray, extra_k: int, device=None) -> dict:
        """Step 4: image cosines of the candidate ``rows`` of this shard for the expanded query, and this
        shard's best ``extra_k`` rows for it: ``found`` / ``found_scores``, with ``extra`` (those not among
        the candidates, sorted), their ``cos_extra``, ``afm_extra`` and ``glob_extra``."""
        q = self._query(qid)
        images = self.index.images(device)
        rows = np.asarray(rows, np.int64)
        found, found_scores = images.search_vector(q_image, extra_k)
        extra = np.setdiff1d(found, rows)
        return {"cos": images.image_scores(q_image, rows).astype(np.float64),
                "found": found, "found_scores": found_scores, "extra": extra,
                "cos_extra": images.image_scores(q_image, extra).astype(np.float64),
                "afm_extra": self._afm(q, extra),
                "glob_extra": images.sketch_scores(q.q_glob, extra).astype(np.float64)}

    def reference_scores(self, qid: str, q_glob: np.ndarray | None, device=None) -> dict | None:
        """The reference sample (``engine.reference``) scored for this query: ``afm`` (R,) with the query's
        scorer and, with ``q_glob``, ``glob`` (R,) the global cosines of the reference photos' descriptors
        centred on this collection's learned mean.  None where the shipped reference does not fit this
        index's settings (the client then standardises on the collection alone)."""
        from .reference import load_reference

        ref = load_reference()
        if ref is None or not ref.fits(self.index.settings.to_json()):
            return None
        glob = None
        if q_glob is not None:
            vectors = self._reference_space(device)
            if vectors is None:
                return None
            glob = (vectors[0] @ np.asarray(q_glob, np.float32)).astype(np.float64)
        afm = self._query(qid).scorer.score_2d(ref.codes, ref.inv_norms).astype(np.float64)
        return {"afm": afm, "glob": glob}

    def reference_image_scores(self, q_image: np.ndarray, device=None) -> np.ndarray:
        """Image cosines of the reference photos for an (expanded) query vector in this index's space."""
        vectors = self._reference_space(device)
        return (vectors[1] @ np.asarray(q_image, np.float32)).astype(np.float64)

    def _reference_space(self, device=None) -> tuple[np.ndarray, np.ndarray] | None:
        """The reference photos' global sketch descriptors (centred on the collection's mean, L2) and image
        vectors (the collection's whitening, or plain L2), computed once per shard; None where they do not
        fit this index's image settings."""
        from .reference import load_reference

        key = str(device)
        if key not in self._reference_vectors:
            ref = load_reference()
            images = self._images_for(device)
            out = None
            if ref is not None and images is not None and ref.fits_images(self.index.image_settings):
                c = ref.sketch - images.sketch_mean[None, :]
                sketch = (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(np.float32)
                out = (sketch, np.asarray(images.embed_raw(ref.gem), np.float32))
            self._reference_vectors[key] = out
        return self._reference_vectors[key]

    def _images_for(self, device):
        ix = self.index
        if ix.image_settings and ix.meta.get("image_index"):
            images = ix.images(device)
            return images if images.has_sketch else None
        return None

    def finish(self, qid: str | None, rows: np.ndarray) -> list:
        """Step 5: (path, geometry, alignment) of rows -- alignment None for image queries (``qid`` None);
        None for a photo a writer removed since the shard was opened."""
        rows = np.asarray(rows, np.int64)
        meta = self.index.lookup(rows.tolist())
        if qid is None:
            return meta
        q = self._query(qid)
        srt = np.argsort(rows, kind="stable")
        aligned = q.scorer.align(self.index.codes[rows[srt]], self.index.inv_norms[rows[srt]])
        al = [None] * len(rows)
        for j, a in zip(srt.tolist(), aligned, strict=True):
            al[j] = a
        with self._lock:
            self._queries.pop(qid, None)
        return [None if m is None else (m[0], m[1], a) for m, a in zip(meta, al, strict=True)]

    # -- image queries ----------------------------------------------------------------------------
    def image_top(self, q: np.ndarray, k: int, with_vectors: bool = False, device=None):
        """Best ``k`` rows of this shard for an image vector: (rows, scores, vectors or None)."""
        images = self.index.images(device)
        rows, scores = images.search_vector(q, k)
        return rows, scores, (images.vectors_of_rows(rows) if with_vectors else None)


# --------------------------------------------------------------------------------------------------
# Reaching the shards


class Shards:
    """The shards of a collection as the client sees them.

    Subclasses implement :meth:`_call`.  ``call`` leaves out shards that fail (``missing``: shard ->
    reason), except for errors of the query itself (``SketchSearchError``), which it raises.
    """

    def __init__(self, summaries: Sequence[dict], names: Sequence[str] | None = None) -> None:
        self.summaries = list(summaries)
        self.sizes = [int(s["n"]) for s in self.summaries]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.names = list(names) if names is not None else [s["path"] for s in self.summaries]
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
        return all(s["image_settings"] and s["image_index"] and s["image_index"].get("sketch")
                   for s in self.summaries if s["n"])

    def begin(self) -> None:
        """A new query: shards that failed an earlier one are tried again."""
        self.missing = {}

    def call(self, method: str, args: dict[int, tuple]) -> dict[int, object]:
        """``method(*args[i])`` on each shard ``i`` in ``args`` that has not failed in this query."""
        todo = {i: a for i, a in args.items() if i not in self.missing}
        got, failed = self._call(method, todo)
        self.missing.update(failed)
        return got

    def first(self, method: str, *args):
        """``method(*args)`` on one shard that answers (query descriptors)."""
        for i in range(len(self)):
            if i in self.missing or not self.sizes[i]:
                continue
            got = self.call(method, {i: args})
            if i in got:
                return got[i]
        raise QueryError("no shard answered: " + "; ".join(f"{self.names[i]}: {w}" for i, w in self.missing.items()))

    def _call(self, method: str, args: dict[int, tuple]) -> tuple[dict[int, object], dict[int, str]]:
        raise NotImplementedError

    def partial(self) -> PartialResults | None:
        return PartialResults(dict(self.missing), len(self)) if self.missing else None

    def background(self, size: int) -> dict[int, np.ndarray]:
        """Local rows, per shard, of the collection's background sample: the ``size`` photos with the smallest
        background keys over all shards (cached while every shard answered)."""
        if size in self._background:
            return self._background[size]
        got = self.call("background_keys", {i: (size,) for i in range(len(self)) if self.sizes[i]})
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

    def _call(self, method, args):
        return {i: getattr(self.searchers[i], method)(*a) for i, a in args.items()}, {}


# --------------------------------------------------------------------------------------------------
# The client


def _neutral(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rows without a descriptor (added since the image index was built) get the background mean."""
    return np.where(np.isnan(x), np.nanmean(ref) if np.isfinite(ref).any() else 0.0, x)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first, ties in position order (as a stable full sort gives;
    without sorting every candidate of a large collection)."""
    scores = np.asarray(scores)
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(scores) // 4:
        kth = np.partition(-scores, k - 1)[k - 1]
        head = np.flatnonzero(-scores <= kth)  # the k best and any ties with the k-th, in position order
        return head[np.argsort(-scores[head], kind="stable")][:k]
    return np.argsort(-scores, kind="stable")[:k]


def _warn(shards: Shards) -> None:
    p = shards.partial()
    if p is not None:
        warnings.warn(p.message(shards.names), PartialResultWarning, stacklevel=3)


def sketch_search(shards: Shards, edges: EdgeMap, options, *, top_k: int, params: FusionParams | None = None,
                  expand: int | None = None, fusion: bool = True) -> list[Hit]:
    """Fused sketch search over shards (``engine.fusion``; the steps in this module's docstring).

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
    q_glob = shards.first("describe_sketch", edges, options.device) if images else None
    bg = shards.background(params.background)
    got = shards.call("sketch_candidates", {i: (qid, edges, options, q_glob, bg.get(i, np.zeros(0, np.int64)),
                                                extra_k) for i in range(len(shards)) if shards.sizes[i]})
    if not got:
        _warn(shards)
        return []
    parts = sorted(got)
    rows = np.concatenate([got[i]["rows"] + off[i] for i in parts])
    afm = np.concatenate([got[i]["afm"] for i in parts])
    keep = np.concatenate([got[i]["core"] for i in parts])
    glob = np.concatenate([got[i]["glob"] for i in parts]) if q_glob is not None else None
    if q_glob is not None:  # the collection's best extra_k global rows (each shard sent its own best)
        gtop = np.concatenate([got[i]["gtop"] + off[i] for i in parts])
        gsc = np.concatenate([got[i]["gtop_scores"] for i in parts])
        keep |= np.isin(rows, gtop[_top(gsc, extra_k)])
        rows, afm, glob = rows[keep], afm[keep], glob[keep]
    bg_rows = np.concatenate([bg[i] + off[i] for i in parts if i in bg] or [np.zeros(0, np.int64)])
    bgi = np.searchsorted(rows, bg_rows)
    glob_bg = None
    if glob is not None:
        glob_bg = glob[bgi]
        glob = _neutral(glob, glob_bg)
    reference = _reference(shards, qid, q_glob, len(bg_rows), params, options.device)

    def image(seeds: np.ndarray):
        per = shards.split(seeds)
        vec = shards.call("seed_vectors", {i: (r, options.device) for i, r in per.items()})
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
        ex = shards.call("expand", {i: (qid, q, cand.get(i, np.zeros(0, np.int64)), extra_k, options.device)
                                    for i in parts})
        cos = np.concatenate([ex[i]["cos"] if i in ex else np.full(len(cand.get(i, ())), np.nan) for i in parts])
        found = np.concatenate([ex[i]["found"] + off[i] for i in ex] or [np.zeros(0, np.int64)])
        fsc = np.concatenate([ex[i]["found_scores"] for i in ex] or [np.zeros(0)])
        best = found[_top(fsc, extra_k)]  # the collection's best extra_k rows for the expanded query
        extra = np.concatenate([ex[i]["extra"] + off[i] for i in sorted(ex)] or [np.zeros(0, np.int64)])
        take = np.isin(extra, best)

        def cat(key):
            return np.concatenate([ex[i][key] for i in sorted(ex)] or [np.zeros(0)])[take]

        rows2 = np.concatenate([rows, extra[take]])
        cos = np.concatenate([cos, cat("cos_extra")])
        cos = _neutral(cos, cos[bgi])
        ref_cos = None
        if reference is not None:
            ref_cos = shards.first("reference_image_scores", q, options.device)
            if params.qe_loo:  # the seeds' cosines with the expansion of the others (fusion.leave_one_out_cosines)
                where = {r: k for k, r in enumerate(rows2.tolist())}
                at = np.array([where[r] for r in seed_rows.tolist()], np.int64)
                cos[at] = leave_one_out_cosines(seed_vecs[0], seed_vecs, params.qe_alpha)
        return rows2, cos, np.concatenate([afm, cat("afm_extra")]), np.concatenate(
            [glob, _neutral(cat("glob_extra"), glob_bg)]), ref_cos

    whitened = all(bool((s["image_index"] or {}).get("whitened")) for s in shards.summaries if s["n"])
    calibration = params.calibration_for(fused=glob is not None, whitened=whitened)
    fused = fuse(rows, afm, glob, bgi, dataclasses.replace(params, calibration=calibration),
                 image=image if glob is not None and params.qe_n > 0 else None, reference=reference)
    order = _top(fused.final, top_k)
    top = fused.rows[order]
    meta = _finish(shards, qid, top)
    hits = []
    for row, j in zip(top.tolist(), order.tolist(), strict=True):
        m = meta.get(row)
        if m is None:  # removed since the shard was opened, or the shard died at the last step
            continue
        path, geometry, al = m
        box = photo_box(geometry, edges.width * al.scale, edges.height * al.scale, al.dx, al.dy)
        hits.append(Hit(len(hits) + 1, path, float(fused.score[j]), box, al.scale, al.mirrored, int(row),
                        float(al.score)))
    _warn(shards)
    return hits


def _reference(shards: Shards, qid: str, q_glob: np.ndarray | None, n_background: int, params: FusionParams,
               device) -> ReferenceScores | None:
    """The reference sample's scores for this query with their weight beside a background of
    ``n_background`` photos (``fusion.reference_weight``); None when the weight is 0 (large collections: no
    cost) or the shipped reference does not fit the collection's settings."""
    w = reference_weight(n_background, params)
    if w <= 0:
        return None
    got = shards.first("reference_scores", qid, q_glob, device)
    if got is None:
        return None
    return ReferenceScores(got["afm"], got["glob"], w)


def merge_top(got: dict[int, tuple], offsets: np.ndarray, k: int):
    """Merge per-shard (rows, scores, vectors) into the collection's top ``k``: (rows, scores, vectors)."""
    parts = sorted(got)
    rows = np.concatenate([got[i][0] + offsets[i] for i in parts] or [np.zeros(0, np.int64)])
    scores = np.concatenate([got[i][1] for i in parts] or [np.zeros(0, np.float32)])
    order = _top(scores, k)
    vecs = None
    if parts and got[parts[0]][2] is not None:
        vecs = np.concatenate([got[i][2] for i in parts])[order]
    return rows[order], scores[order], vecs


def _finish(shards: Shards, qid: str | None, rows: np.ndarray) -> dict[int, object]:
    """Step 5 on the shards holding ``rows``: collection row -> what ``ShardSearcher.finish`` gives (rows of
    shards that did not answer are absent)."""
    per = shards.split(rows)
    done = shards.call("finish", {i: (qid, r) for i, r in per.items()})
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
        hits.append(Hit(len(hits) + 1, path, float(sc), (0.0, 0.0, float(geometry[0]), float(geometry[1])), 1.0,
                        False, int(row)))
    return hits


def image_search(shards: Shards, pixels: np.ndarray, *, top_k: int, qe: int, alpha: float = 3.0,
                 device=None) -> list[Hit]:
    """Image query over shards: the query's vector (one shard), alpha-QE over the collection's top ``qe``,
    each shard's top ``top_k``, merged.  ``box`` is the whole photo."""
    shards.begin()
    live = [i for i in range(len(shards)) if shards.sizes[i]]
    if not live:
        return []
    q = np.asarray(shards.first("describe_image", pixels, device), np.float32)
    if qe > 0:
        nb, _, vecs = merge_top(shards.call("image_top", {i: (q, qe, True, device) for i in live}), shards.offsets,
                                qe)
        if len(nb):
            q = alpha_qe(q[None], vecs, np.arange(len(nb))[None], alpha)[0]
    rows, scores, _ = merge_top(shards.call("image_top", {i: (q, top_k, False, device) for i in live}),
                                shards.offsets, top_k)
    hits = hits_of_rows(shards, rows, scores)
    _warn(shards)
    return hits
