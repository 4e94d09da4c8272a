"""Rotation in searches: the curve of a result, rotation-invariant image and sketch search, and
near-duplicate groups (rotated, mirrored, rescaled, recompressed copies, and prints of a photo shrunk and turned on
a plain page).

Every indexed photo carries a polar descriptor about the centre of its content disc (its frame's, or a print's on
a plain border: :func:`engine.rotation.content_disc`); with it the
similarity to a query at every rotation, mirrored or not, is a small polynomial per photo, and the
rotation-invariant similarity of a whole collection is three matrix products.
"""
from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from .edges import EdgeMap, edges_from_maps, get_detector, photo_edges, working_image
from .imageio import ImageError, load_image
from .rotation import (
    PolarLayout,
    RotationCurve,
    best_rotation,
    curve_coefficients,
    evaluate_curve,
    fourier_basis,
    photo_polar_descriptor,
)

log = logging.getLogger(__name__)

SKETCH_ANGLES = tuple(range(0, 360, 30))  # sketch rotations tried by --rotation any (AFM tolerates ~15 deg)


def _layout() -> PolarLayout:
    from .rotation import default_layout

    return default_layout()


def image_query_descriptor(index, image) -> np.ndarray:
    """Polar descriptor of a query image (path or RGB array in [0, 1]) as the index describes photos."""
    from .errors import QueryError

    if not isinstance(image, np.ndarray):
        try:
            image = load_image(image, max_side=index.settings.max_side)
        except ImageError as e:
            raise QueryError(str(e)) from None
    s = index.settings
    work, scale = working_image(image, s.max_side)
    strength, theta = get_detector(s.detector)(work)
    edges = edges_from_maps(strength, theta, scale=scale, min_strength=s.min_strength)
    return photo_polar_descriptor(edges, work, _layout())


def invariant_scores(query: np.ndarray, photos: np.ndarray, *, mirror: bool = True, step: float = 2.0,
                     block: int = 65536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(similarity, angle, mirrored) of one polar descriptor against each row of ``photos``: the best over
    every rotation (and the mirror image).  The grid is ``step`` degrees, refined for the returned rows."""
    lay = _layout()
    n = len(photos)
    sims = np.full(n, -np.inf)
    angles = np.zeros(n)
    mirrored = np.zeros(n, bool)
    grid = np.arange(0.0, 360.0, step)
    queries = [(False, np.asarray(query, np.float64))] + ([(True, lay.mirror(query))] if mirror else [])
    for b0 in range(0, n, block):
        y = np.asarray(photos[b0:b0 + block], np.float32)
        for flag, q in queries:
            c = curve_coefficients(q, y, lay)
            vals = evaluate_curve(c, grid)
            i = np.argmax(vals, axis=1)
            v = vals[np.arange(len(vals)), i]
            better = v > sims[b0:b0 + block]
            sims[b0:b0 + block] = np.where(better, v, sims[b0:b0 + block])
            angles[b0:b0 + block] = np.where(better, grid[i], angles[b0:b0 + block])
            mirrored[b0:b0 + block] = np.where(better, flag, mirrored[b0:b0 + block])
    return sims, angles, mirrored


def search_image_any_rotation(index, image, *, top_k: int = 20, mirror: bool = True, filt=None):
    """Photos most similar to ``image`` at any rotation (and mirrored): rotated and mirrored copies, and prints
    of it shrunk and turned on a plain page (or the photo of such a print), come first; with a filter
    (``engine.filters.PhotoFilter``), of the photos it lets through.  Returns (hits, angles, mirrored):
    ``angles[i]`` rotates the query onto hit ``i``."""
    q = image_query_descriptor(index, image)
    sims, _, flags = invariant_scores(q, index.polar, mirror=mirror)
    allowed = index.allowed_mask(filt)
    if allowed is not None:
        sims = np.where(allowed, sims, -np.inf)
        top_k = min(top_k, int(allowed.sum()))
    lay = _layout()
    found, extra = [], {}
    for r in np.argsort(-sims, kind="stable")[:top_k]:
        qq = lay.mirror(q) if flags[r] else q  # refine the angle of the returned photos
        best, sim = best_rotation(curve_coefficients(qq, np.asarray(index.polar[r], np.float64), lay))
        found.append((int(r), float(sim)))
        extra[int(r)] = (float(best), bool(flags[r]))
    hits = index.hits_of(found)
    return hits, [extra[h.row][0] for h in hits], [extra[h.row][1] for h in hits]


def rotated_sketch(edges: EdgeMap, degrees: float) -> np.ndarray:
    """A drawing of a sketch edge map rotated by ``degrees`` (counter-clockwise on screen), for searching."""
    import cv2

    side = int(math.ceil(math.hypot(edges.width, edges.height))) + 8
    img = np.full((side, side), 255, np.uint8)
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    x = c * edges.x + s * edges.y + side / 2
    y = -s * edges.x + c * edges.y + side / 2
    ok = (x >= 0) & (x < side) & (y >= 0) & (y < side)
    img[y[ok].astype(int), x[ok].astype(int)] = 0
    return cv2.erode(img, np.ones((3, 3), np.uint8))  # 3 px strokes: the sketch pipeline thins them again


def search_sketch_any_rotation(index, sketch, *, top_k: int = 20, options=None, angles=SKETCH_ANGLES, filt=None):
    """Sketch search with the sketch turned to each of ``angles``; each photo keeps its best angle (and
    the box of the sketch at that angle).  Returns (hits, angles).

    This is a shape-alignment search: each turn is ranked by the alignment alone (``fusion=False``: the
    global descriptor and the image expansion describe upright photos), and photos are ordered by their
    best alignment cosine over the turns (``raw_score``, comparable between turns of one sketch); ``score``
    is the calibrated score at that turn.  ``filt``: only the photos a filter lets through, before the cut."""
    from .search import SearchOptions

    edges = index.sketch_query(sketch)
    best: dict[int, tuple] = {}
    for a in angles:
        query = edges if a == 0 else index.sketch_query(rotated_sketch(edges, a))
        for h in index.search(query, top_k=max(top_k, 50), options=options or SearchOptions(), fusion=False,
                              filt=filt):
            if h.row not in best or h.raw_score > best[h.row][0].raw_score:
                best[h.row] = (h, a)
    ranked = sorted(best.values(), key=lambda ha: -ha[0].raw_score)[:top_k]
    hits = [dataclasses.replace(h, rank=i + 1) for i, (h, _) in enumerate(ranked)]
    return hits, [float(a) for _, a in ranked]


def curve_for_hit(index, query, hit, *, kind: str = "sketch", step: float = 1.0) -> RotationCurve:
    """Similarity versus rotation between a query and one result, for the app's polar plot.

    Sketch hits: the sketch (about its centre) against the photo's edges inside the hit's box (about
    the box's centre); the mirrored sketch when the hit matched mirrored.  Image hits: the query image
    against the photo's stored descriptor, both about their centres.
    """
    from .rotation import descriptor_curve, rotation_curve

    lay = _layout()
    if kind == "image":
        return descriptor_curve(image_query_descriptor(index, query), np.asarray(index.polar[hit.row], np.float64),
                                mirror=True, step=step, layout=lay)
    sk = index.sketch_query(query)
    if hit.mirrored:
        sk = dataclasses.replace(sk, x=-sk.x, theta=np.mod(np.pi - sk.theta, np.pi).astype(np.float32))
    s = index.settings
    photo = photo_edges(load_image(hit.path, max_side=s.max_side), detector=s.detector, max_side=s.max_side,
                        min_strength=s.min_strength)
    x0, y0, x1, y1 = hit.box
    k = photo.scale
    centre = ((x0 + x1) / 2 * k - (photo.width - 1) / 2, (y0 + y1) / 2 * k - (photo.height - 1) / 2)
    radius = max(math.hypot(x1 - x0, y1 - y0) / 2 * k, 1.0)
    curve = rotation_curve(sk, photo, query_radius=math.hypot(sk.width, sk.height) / 2, hit_centre=centre,
                           hit_radius=radius, step=step, layout=lay)
    return dataclasses.replace(curve, mirrored=bool(hit.mirrored))


def find_duplicates(index, *, threshold: float = 0.95, gem_threshold: float = 0.97, block: int = 4096,
                    step: float = 3.0) -> list[list[tuple[int, float, float, bool]]]:
    """Groups of near-duplicates: photos whose rotation-invariant polar similarity (mirror included) is at
    least ``threshold``, whose image descriptors' cosine is at least ``gem_threshold``, or the mean of
    the two of which is at least ``threshold``.

    Returns groups (largest first) of (row, similarity to the group's first photo, angle, mirrored).
    All pairs are scored in blocks (quadratic: meant for collections up to some 100,000 photos).  A photo
    without edges (a blank or flat one: an all-zero polar descriptor) has no similarity to anything and
    is never grouped, not even with another blank photo of the same image descriptor.

    Raises
    ------
    ValueError
        When ``threshold`` or ``gem_threshold`` is not in (0, 1] (NaN included).
    """
    for name, value in (("threshold", threshold), ("gem_threshold", gem_threshold)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be a similarity in (0, 1], got {value}")
    polar = np.asarray(index.polar, np.float32)
    n = len(polar)
    if n == 0:  # an empty collection (or one whose only chunk is damaged and left out)
        return []
    content = np.linalg.norm(polar, axis=1) > 1e-6  # which photos have edges to compare
    lay = _layout()
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    nh = lay.n_harmonics
    basis = fourier_basis(np.radians(np.arange(0.0, 360.0, step)), nh).T.astype(np.float32)  # (2N+1, G)
    k0 = lay.shape[0]
    sub = polar.reshape(n, k0, -1)
    for i0 in range(0, n, block):
        xa = sub[i0:i0 + block]
        for flag in (False, True):
            xq = lay.mirror(polar[i0:i0 + block]).reshape(len(xa), k0, -1).astype(np.float32) if flag else xa
            for j0 in range(i0, n, block):
                yb = sub[j0:j0 + block]
                coeffs = [xq[:, 0] @ yb[:, 0].T]
                for h in range(1, nh + 1):
                    xc, xs, yc, ys = xq[:, 2 * h - 1], xq[:, 2 * h], yb[:, 2 * h - 1], yb[:, 2 * h]
                    coeffs += [xc @ yc.T + xs @ ys.T, xs @ yc.T - xc @ ys.T]
                c = np.stack(coeffs, axis=-1)  # (a, b, 2N+1)
                best = (c.reshape(-1, c.shape[-1]) @ basis).max(axis=1).reshape(c.shape[:2])
                ii, jj = np.nonzero(best >= threshold)
                for a, b in zip(ii + i0, jj + j0, strict=True):
                    if a < b and content[a] and content[b]:
                        union(int(a), int(b))
    if index.image_settings and n:
        try:
            from .imagesearch import VectorIndex

            images = index.images()
            vec = images.all_vectors()
            knn = images.knn if images.knn is not None else VectorIndex(vec, kind="flat")
            sims, ids = knn.search(vec, min(10, len(vec)))
            floor = min(gem_threshold, 2 * threshold - 1)
            for vi in range(len(vec)):
                for s, vj in zip(sims[vi], ids[vi], strict=True):
                    a, b = images.rows[vi], images.rows[vj] if vj >= 0 else -1
                    if vj < 0 or vj == vi or s < floor or a < 0 or b < 0 or not (content[a] and content[b]):
                        continue
                    # a copy that is both rescaled and recompressed: neither score alone, their mean
                    p = invariant_scores(polar[a].astype(np.float64), polar[b:b + 1], step=step)[0][0]
                    if s >= gem_threshold or (s + p) / 2 >= threshold:
                        union(int(a), int(b))
        except Exception as e:  # an index without a usable image part: polar pairs only
            log.info("duplicates: image descriptors not used (%s)", e)
    roots: dict[int, list[int]] = {}
    for i in range(n):
        roots.setdefault(find(i), []).append(i)
    groups = []
    for members in roots.values():
        if len(members) < 2:
            continue
        first = polar[members[0]].astype(np.float64)
        entry = []
        for m in members:
            s, a, f = invariant_scores(first, polar[m:m + 1], step=1.0)
            entry.append((m, min(float(s[0]), 1.0), float(a[0]), bool(f[0])))  # a cosine: rounding passed 1
        groups.append(entry)
    groups.sort(key=lambda g: (-len(g), g[0][0]))
    return groups
