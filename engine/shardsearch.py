"""Search as a conversation between a client and shards (issue "scale out").

A collection may be one index or many (shards, ``engine.shards``); either way a query runs the same
steps, split between the **shards**, each a :class:`ShardSearcher` over one index that scores its own
photos, and the **client** (``engine.collection``), which holds the query, merges what the shards answer
and computes everything that needs the whole collection: the background statistics of the fused score,
the query expansion's seeds, the final order.  A single index is the one-shard case of the same code,
so a sharded collection ranks exactly as one index of the same photos (tested) wherever the shards'
candidate sets together hold the single index's (collections below the alignment's shortlist size,
1,000 photos per shard; above it the union of the shards' shortlists holds at least as many photos).

Shards are reached through a ``collection.Shards`` object: ``collection.LocalShards`` calls them in this process
(``SketchIndex.search``, ``ShardedIndex``); ``engine.cluster`` calls Dask actors on other machines,
with a timeout, and leaves out shards that die (the results say so: ``collection.PartialResults``).

Rows: shard ``i``'s local row ``r`` is the collection row ``offsets[i] + r``.

Steps of a sketch query (``sketch_search``), ``i`` over the shards:

1. ``describe_sketch`` (one shard): the query's global descriptor (``Shards.soon``: with shards in this process,
   on a thread, while step 2 ranks the alignment's shortlist; the shards await it before their global pass).
2. ``sketch_candidates`` (all): each shard's alignment shortlist (exact 2-D scores) -- of it, the photos that
   fewer than ``SearchOptions.shard_cap`` others beat on both scores (``undominated``) --, its part of the
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
from collections import OrderedDict
from concurrent.futures import Future

import numpy as np

from .afm import encode_query
from .edges import EdgeMap
from .errors import QueryError
from .indexview import IndexView
from .vectors import l2n

__all__ = ["Candidates", "Expansion", "ReferenceReply", "STEPS", "ShardSearcher", "ShardSummary", "undominated"]

MAX_OPEN_QUERIES = 16  # per-query state a shard keeps (scorer, scores computed); oldest dropped first


# --------------------------------------------------------------------------------------------------
# The shard side


# The replies of the shard steps (plain dataclasses of numpy arrays: they cross processes)

@dataclasses.dataclass(frozen=True)
class ShardSummary:
    """What the client needs to know of a shard: its path, its photos' count, its settings (JSON) and its image
    index's record (None: no image index, or none ready)."""

    path: str
    n: int
    n_skipped: int
    settings: str
    image_settings: str | None
    image_index: dict | None
    pid: int | None = None  # the process that holds the shard (a cluster worker's)


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Step 2's reply: this shard's candidates of a sketch query.

    ``rows`` sorted local rows (background, alignment shortlist -- what of it the cap lets through -- and best
    global rows); ``afm`` their alignment scores; ``glob`` their global cosines (NaN: no descriptor; None without
    a global query); ``core`` (bool: background or shortlist, kept whatever the other shards hold); ``gtop`` /
    ``gtop_scores``: this shard's best ``extra_k`` global rows and their scores (for the client's collection-wide
    cut).
    """

    rows: np.ndarray
    afm: np.ndarray
    glob: np.ndarray | None
    core: np.ndarray
    gtop: np.ndarray
    gtop_scores: np.ndarray
    allowed: np.ndarray | None = None  # with a filter: which ``rows`` it lets through (background rows may not)


@dataclasses.dataclass(frozen=True)
class Expansion:
    """Step 4's reply: image cosines ``cos`` of the candidate rows for the expanded query; this shard's best
    ``extra_k`` rows for it (``found`` / ``found_scores``) and, of those not among the candidates (``extra``,
    sorted), their image, alignment and global scores."""

    cos: np.ndarray
    found: np.ndarray
    found_scores: np.ndarray
    extra: np.ndarray
    cos_extra: np.ndarray
    afm_extra: np.ndarray
    glob_extra: np.ndarray


@dataclasses.dataclass(frozen=True)
class ReferenceReply:
    """The reference sample scored for one query: alignment ``afm`` (R,) and, with a global query, ``glob`` (R,)."""

    afm: np.ndarray
    glob: np.ndarray | None


class _Query:
    """What a shard keeps of one query between steps: its scorer, its global descriptor, and the exact alignment
    scores computed so far (``rows`` sorted, ``afm`` theirs)."""

    def __init__(self, scorer, q_glob) -> None:
        self.scorer = scorer
        self.q_glob = q_glob
        self.rows = np.zeros(0, np.int64)
        self.afm = np.zeros(0, np.float32)

    def keep(self, rows: np.ndarray, afm: np.ndarray) -> None:
        """Remember the alignment scores of rows not scored before (``rows`` unique)."""
        order = np.argsort(np.concatenate([self.rows, rows]), kind="stable")
        self.rows = np.concatenate([self.rows, np.asarray(rows, np.int64)])[order]
        self.afm = np.concatenate([self.afm, np.asarray(afm, np.float32)])[order]

    def known(self, rows: np.ndarray) -> np.ndarray:
        """Positions of rows in ``self.rows`` (-1: not scored yet)."""
        if not len(self.rows):
            return np.full(len(rows), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        return np.where(self.rows[pos] == rows, pos, -1)


class ShardSearcher:
    """Answers the client's steps for one index (in this process, or inside a Dask actor).

    Every method takes and returns plain numpy arrays, lists and dataclasses (sent between processes).
    """

    def __init__(self, index: IndexView | str | os.PathLike) -> None:
        self.index = index if isinstance(index, IndexView) else IndexView(index)
        self._queries: OrderedDict[str, _Query] = OrderedDict()
        self._lock = threading.Lock()
        self._reference_vectors: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    # -- what the client needs to know ------------------------------------------------------------
    def summary(self) -> ShardSummary:
        ix = self.index
        image = None
        if ix.image_settings and ix.meta.get("image_index"):
            import json

            image = json.loads(ix.meta["image_index"])
        return ShardSummary(str(ix.path), len(ix), ix.n_skipped, ix.settings.to_json(), ix.image_settings, image)

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
        """Exact 2-D alignment scores of rows (kept per query: the shortlist's come from ``rank``)."""
        from .search import score_rows

        rows = np.asarray(rows, np.int64)
        missing = np.unique(rows[q.known(rows) < 0])
        if len(missing):
            q.keep(missing, score_rows(q.scorer, self.index.codes, self.index.inv_norms, missing))
        return q.afm[q.known(rows)].astype(np.float64)

    def _images(self, options):
        return self._images_for(options.device)

    def sketch_candidates(self, qid: str, edges: EdgeMap, options, q_glob: np.ndarray | Future | None,
                          bg_rows: np.ndarray, extra_k: int, filt=None, cap: int | None = None) -> Candidates:
        """Step 2: candidates of this shard with their alignment and global scores (``q_glob``: the sketch's
        global descriptor, or, from a client in this process, the future of it, awaited once the alignment's
        shortlist is ranked: ``Shards.soon``).  With a filter
        (``engine.filters.PhotoFilter``) the shortlist and the best global rows are of the photos it lets
        through; the background sample stays the whole shard's (it standardises the scores).

        With ``cap`` (``SearchOptions.shard_cap``), of its alignment shortlist the shard sends only the photos
        that fewer than ``cap`` others of the shortlist beat on both the alignment and the global score
        (``undominated``): the fused score, the expansion's base score and the alignment alone all grow with
        both, so a photo left out has ``cap`` photos sent that rank above it, and the client's top ``k`` and
        its ``n`` seeds are the same wherever ``cap >= k`` and ``cap >= n`` (the expanded score also weighs each
        photo's image cosine with the expanded query, which only the next step knows).
        """
        from .search import QueryScorer, pick_device, rank

        ix = self.index
        scorer = QueryScorer(encode_query(edges, ix.layout), ix.layout, mirror=options.mirror,
                             device=pick_device(options.device))
        q = _Query(scorer, None)
        with self._lock:
            self._queries[qid] = q
            while len(self._queries) > MAX_OPEN_QUERIES:
                self._queries.popitem(last=False)
        allowed = ix.allowed_rows(filt)
        if allowed is None:
            n = len(ix)
            ranking = rank(scorer, ix.codes, ix.inv_norms, options, top_k=options.shortlist_size(n), n_align=0)
            short = ranking.rows[: ranking.n_exact]
            seeding = np.zeros(0, np.int64)
        else:
            ranking = rank(scorer, ix.codes, ix.inv_norms, options, top_k=options.shortlist_size(len(allowed)),
                           n_align=0, subset=allowed)
            short = allowed[ranking.rows[: ranking.n_exact]]
            # the whole shard's shortlist too: the expansion is seeded as without the filter, so that a filter
            # only narrows what is shown (seeded from the photos it lets through, any subset's best photos were
            # lifted as the sketched subject: a sailboat's outline in a folder of bicycles scored them 0.95)
            whole = rank(scorer, ix.codes, ix.inv_norms, options, top_k=options.shortlist_size(len(ix)), n_align=0)
            seeding = whole.rows[: whole.n_exact]
            q.keep(seeding, whole.scores[: whole.n_exact])
        fresh = ~np.isin(short, seeding)
        q.keep(short[fresh], ranking.scores[: ranking.n_exact][fresh])
        if isinstance(q_glob, Future):  # in this process: the client described the sketch while the alignment ran
            q_glob = q_glob.result()
        q.q_glob = q_glob
        bg_rows = np.asarray(bg_rows, np.int64)
        images = self._images(options) if q_glob is not None else None
        gtop = gtop_scores = np.zeros(0)
        if images is not None:
            if allowed is None:
                gtop, gtop_scores = images.sketch_top(q_glob, extra_k, with_scores=True)
            else:
                gtop, gtop_scores = _best(allowed, images.sketch_scores(q_glob, allowed), extra_k)
                seeding = np.union1d(seeding, images.sketch_top(q_glob, extra_k)).astype(np.int64)
        rows = np.unique(np.concatenate([bg_rows, short, seeding, np.asarray(gtop, np.int64)]))
        glob = None
        if images is not None:
            glob = images.sketch_scores(q_glob, rows).astype(np.float64)
        if cap is not None and (len(short) > cap or len(seeding) > cap):
            if len(short) > cap:
                short = undominated(short, ranking.scores[: ranking.n_exact],
                                    None if glob is None else glob[np.searchsorted(rows, short)], cap)
            if len(seeding) > cap:
                seeding = undominated(seeding, self._afm(q, seeding),
                                      None if glob is None else glob[np.searchsorted(rows, seeding)], cap)
            sent = np.isin(rows, np.concatenate([bg_rows, short, seeding, np.asarray(gtop, np.int64)]))
            rows, glob = rows[sent], (None if glob is None else glob[sent])
        core = np.union1d(np.union1d(bg_rows, short), seeding)
        return Candidates(rows, self._afm(q, rows), glob, np.isin(rows, core), np.asarray(gtop, np.int64),
                          np.asarray(gtop_scores, np.float32),
                          None if allowed is None else np.isin(rows, allowed))

    def seed_vectors(self, rows: np.ndarray, device=None) -> tuple[np.ndarray, np.ndarray]:
        """Step 3: image vectors of rows (``ok``: rows that have one, in order) -> (vectors, ok)."""
        images = self.index.images(device)
        rows = np.asarray(rows, np.int64)
        ok = images.row_to_vec[rows] >= 0
        return images.vectors_of_rows(rows), ok

    def expand(self, qid: str, q_image: np.ndarray, rows: np.ndarray, extra_k: int, device=None,
               filt=None) -> Expansion:
        """Step 4: image cosines of the candidate ``rows`` of this shard for the expanded query, and this
        shard's best ``extra_k`` rows for it (of the photos a filter lets through)."""
        q = self._query(qid)
        images = self.index.images(device)
        rows = np.asarray(rows, np.int64)
        found, found_scores = self._image_best(images, q_image, extra_k, filt)
        extra = np.setdiff1d(found, rows)
        return Expansion(images.image_scores(q_image, rows).astype(np.float64), found, found_scores, extra,
                         images.image_scores(q_image, extra).astype(np.float64), self._afm(q, extra),
                         images.sketch_scores(q.q_glob, extra).astype(np.float64))

    def reference_scores(self, qid: str, q_glob: np.ndarray | None, device=None) -> ReferenceReply | None:
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
        return ReferenceReply(afm, glob)

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
                sketch = l2n(c).astype(np.float32)
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
        """Step 5: (path, geometry) of rows for image queries (``qid`` None), (path, geometry, alignment, edge
        cells) for sketch queries (``engine.boxes``; cells None for a photo described before they were kept);
        None for a photo a writer removed since the shard was opened."""
        rows = np.asarray(rows, np.int64)
        meta = self.index.lookup(rows.tolist(), cells=qid is not None)
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
        return [None if m is None else (m[0], m[1], a, m[2]) for m, a in zip(meta, al, strict=True)]

    # -- image queries ----------------------------------------------------------------------------
    def image_top(self, q: np.ndarray, k: int, with_vectors: bool = False, device=None, filt=None):
        """Best ``k`` rows of this shard for an image vector (of the photos a filter lets through):
        (rows, scores, vectors or None)."""
        images = self.index.images(device)
        rows, scores = self._image_best(images, q, k, filt)
        return rows, scores, (images.vectors_of_rows(rows) if with_vectors else None)

    def _image_best(self, images, q: np.ndarray, k: int, filt) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` rows for an image vector: the index's search, or with a filter the exact cosines of the
        rows it lets through."""
        allowed = self.index.allowed_rows(filt)
        if allowed is None:
            return images.search_vector(q, k)
        return _best(allowed, images.image_scores(q, allowed), k)

    # -- browsing ---------------------------------------------------------------------------------
    def browse(self, filt, limit: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rows, dates, paths) of this shard's photos (those a filter lets through), newest first."""
        return self.index.browse_rows(filt, limit, offset)

    def allowed_rows(self, filt) -> np.ndarray | None:
        """Sorted rows of this shard that a filter lets through (None: no filter)."""
        return self.index.allowed_rows(filt)

    def folders(self) -> list[str]:
        """The folders indexed into this shard."""
        return self.index.folders()

    def dates(self, rows: np.ndarray) -> np.ndarray:
        """Each row's date (EXIF DateTimeOriginal, else the file's time)."""
        return self.index.dates(np.asarray(rows, np.int64))


def undominated(rows: np.ndarray, afm: np.ndarray, glob: np.ndarray | None, k: int) -> np.ndarray:
    """The rows (sorted) that fewer than ``k`` of the others beat on both scores.

    ``b`` beats ``a`` when ``afm[b] >= afm[a]`` and ``glob[b] >= glob[a]``, the smaller row first where both
    are equal (as the client's ranking breaks ties: collection rows in order).  Any score that grows with both
    (the fused score, the expansion's base score) ranks a row left out below ``k`` rows kept: whatever beats a
    row beats the rows it beats, so of the ``k`` or more rows that beat a row left out, those beaten by the
    fewest others are kept, and with them at least ``k``.  Without ``glob``, the ``k`` best by ``afm``; rows
    whose ``glob`` is NaN (no global descriptor: the client gives them the background's mean) are kept and
    beat none.

    Parameters
    ----------
    rows : (n,) int
    afm, glob : (n,) float
    k : int

    Returns
    -------
    (m,) int64 ndarray, sorted
    """
    rows = np.asarray(rows, np.int64)
    if glob is None:
        return np.sort(rows[np.lexsort((rows, -np.asarray(afm)))[:k]])
    glob = np.asarray(glob, np.float64)
    unknown = np.isnan(glob)
    known = np.flatnonzero(~unknown)
    order = known[np.lexsort((rows[known], -glob[known], -np.asarray(afm)[known]))]  # whoever beats a row is before it
    g = glob[order]
    keep = np.zeros(len(order), bool)
    top = np.zeros(0)  # the k largest glob of the rows before the block, ascending
    for start in range(0, len(order), 512):
        block = g[start:start + 512]
        # k rows before the block beat every row whose glob is not above the k-th largest of theirs
        cand = np.flatnonzero(block > top[0]) if len(top) == k else np.arange(len(block))
        b = block[cand]
        before = len(top) - np.searchsorted(top, b, side="left")  # rows before the block that beat each
        within = np.tril(b[None, :] >= b[:, None], -1).sum(axis=1)  # ... and rows of the block before it
        keep[start + cand] = before + within < k
        top = np.sort(np.concatenate([top, b]))[-k:]
    return np.sort(np.concatenate([rows[order[keep]], rows[unknown]]))


def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (rows, float32 scores) by score, best first; NaN scores (no descriptor) left out."""
    ok = ~np.isnan(scores)
    rows, scores = np.asarray(rows, np.int64)[ok], np.asarray(scores, np.float32)[ok]
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]


#: the steps a client may ask of a shard (a cluster's actors answer these names only)
STEPS = frozenset({"summary", "background_keys", "describe_sketch", "describe_image", "sketch_candidates",
                   "seed_vectors", "expand", "reference_scores", "reference_image_scores", "finish", "image_top",
                   "browse", "dates", "folders", "allowed_rows"})
