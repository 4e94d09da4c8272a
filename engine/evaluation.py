"""Evaluation toolkit for ``sketchsearch bench``: data sets, ranking metrics and HOG baselines.

Three parts:

* **Data sets** -- :func:`load_sketchy` (sketch -> photo retrieval, category and instance level) and
  :func:`load_sysu` (localisation: boxes and outline polygons), plus :func:`sysu_queries`, which draws
  sketch queries from the annotated SYSU outlines.  The data live outside the repository, in
  ``../shared/data`` next to the checkout, or wherever the ``SKETCHSEARCH_DATA`` environment variable
  points.  A missing data set raises :class:`DatasetMissing`, so tests and the benchmark can skip it.
* **Metrics** -- pure numpy, vectorised over queries: :func:`average_precision`,
  :func:`mean_average_precision`, :func:`precision_at_k`, :func:`recall_at_k`, :func:`box_iou` and
  :func:`localization_rate`.  Ties in the scores are broken *pessimistically* (a relevant item ranks
  after every non-relevant item with the same score), so constant or degenerate scorers earn no credit
  from lucky ordering.  All ranking metrics take an optional ``exclude`` mask of (query, item) pairs
  that are removed from the ranking altogether (see the SYSU protocol below).
* **Baselines** -- random scores, a global HOG descriptor on edge images (:func:`hog_descriptor`,
  :func:`hog_scores`), a multi-scale sliding-window HOG template matcher for localisation
  (:func:`hog_sliding_window`) and the trivial :func:`whole_image_box`.

SYSU query protocol
-------------------
Each SYSU query is a rendering of one annotated outline of one image (see :func:`sysu_queries`).
Because the query is traced from that very image, its source image is **excluded** from the query's
ranking: :func:`sysu_ground_truth` returns an ``exclude`` mask with exactly the source image set, and the
metrics drop those pairs.  The relevant images are the other images of the query's class.

Conventions
-----------
Edge images are (H, W) float arrays with high values on edges (ink) and 0 on the background; a sketch
(black strokes on white) becomes one through :func:`sketch_edge_image`.  Boxes are ``[x0, y0, x1, y1]``
in 0-based pixel-edge coordinates (a box covering pixel columns ``c0 .. c1`` inclusive has
``x0 = c0, x1 = c1 + 1``).  Polygons are (N, 2) float arrays of ``(x, y)`` pixel-index coordinates.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DATA_ENV_VAR = "SKETCHSEARCH_DATA"
"""Environment variable that overrides the data root folder."""

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""Data root used when ``SKETCHSEARCH_DATA`` is not set: ``shared/data`` beside the checkout."""

SYSU_CLASSES = ("bicycle", "boat")
"""The SYSU-Shapes classes loaded by :func:`load_sysu`, in class-index order."""


# ----------------------------------------------------------------------------------------------------
# Data sets
# ----------------------------------------------------------------------------------------------------


class DatasetMissing(Exception):
    """An evaluation data set is not where it is expected; the message names the path and the layout."""


def data_root() -> Path:
    """Return the folder that holds the evaluation data sets.

    Returns
    -------
    Path
        ``$SKETCHSEARCH_DATA`` when that variable is set and non-empty, else :data:`DEFAULT_DATA_ROOT`.
    """
    env = os.environ.get(DATA_ENV_VAR, "").strip()
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT


def _dataset_dir(root: str | os.PathLike | None, name: str, markers: Sequence[str], layout: str) -> Path:
    """Resolve a data set folder: ``root/name``, or ``root`` itself when it already holds ``markers``."""
    base = data_root() if root is None else Path(root).expanduser()
    for candidate in (base / name, base):
        if all((candidate / m).is_dir() for m in markers):
            return candidate
    raise DatasetMissing(
        f"{name} data set not found: expected {base / name} (or {base}) to contain {layout}; "
        f"set {DATA_ENV_VAR} to the folder that holds '{name}/'"
    )


@dataclass(frozen=True)
class SketchyData:
    """The Sketchy evaluation subset: photos (the database) and one sketch per sketch family (queries).

    Attributes
    ----------
    photo_paths : list of Path
        (N,) photo files, sorted by class name, then photo id.
    photo_class : (N,) int64 ndarray
        Class index of each photo into ``class_names``.
    photo_ids : list of str
        (N,) photo ids (file stems), e.g. ``"n02694662_10014"``.
    query_paths : list of Path
        (Q,) sketch files ``sketch/<class>/<photo-id>-<k>.png`` with ``k == sketch_index``, sorted by class
        name, then photo id.
    query_class : (Q,) int64 ndarray
        Class index of each sketch.
    query_photo : (Q,) int64 ndarray
        Index into ``photo_paths`` of the photo the sketch was drawn from (instance-level target).
    class_names : list of str
        Sorted class (folder) names.
    """

    photo_paths: list[Path]
    photo_class: np.ndarray
    photo_ids: list[str]
    query_paths: list[Path]
    query_class: np.ndarray
    query_photo: np.ndarray
    class_names: list[str]

    def relevance(self) -> np.ndarray:
        """Return the category-level ground truth.

        Returns
        -------
        (Q, N) bool ndarray
            ``True`` where the query sketch and the photo share a class.
        """
        return self.query_class[:, None] == self.photo_class[None, :]


def load_sketchy(root: str | os.PathLike | None = None, *, sketch_index: int = 1) -> SketchyData:
    """Load the Sketchy subset's file lists and ground truth (no pixels are read).

    Parameters
    ----------
    root : path-like, optional
        The data root (holding ``sketchy/``) or the ``sketchy`` folder itself; default :func:`data_root`.
    sketch_index : int, keyword-only
        Which sketch of each family becomes the query: ``<photo-id>-<sketch_index>.png``.  Photos with no
        such sketch contribute no query.

    Returns
    -------
    SketchyData
        Deterministic (sorted) lists; every photo is in the database, sketched or not.

    Raises
    ------
    DatasetMissing
        When the folder or its ``photo/`` / ``sketch/`` subfolders are missing or hold no photos.
    """
    layout = "photo/<class>/<photo-id>.jpg and sketch/<class>/<photo-id>-<k>.png"
    base = _dataset_dir(root, "sketchy", ("photo", "sketch"), layout)
    class_names = sorted(d.name for d in (base / "photo").iterdir() if d.is_dir())
    photo_paths: list[Path] = []
    photo_class: list[int] = []
    photo_ids: list[str] = []
    query_paths: list[Path] = []
    query_class: list[int] = []
    query_photo: list[int] = []
    for ci, cname in enumerate(class_names):
        index: dict[str, int] = {}
        for p in sorted((base / "photo" / cname).glob("*.jpg")):
            index[p.stem] = len(photo_paths)
            photo_paths.append(p)
            photo_class.append(ci)
            photo_ids.append(p.stem)
        sketch_dir = base / "sketch" / cname
        if not sketch_dir.is_dir():
            logger.warning("sketchy: no sketch folder for class %s", cname)
            continue
        found: list[tuple[str, Path]] = []
        for s in sketch_dir.glob("*.png"):
            pid, sep, k = s.stem.rpartition("-")
            if sep and k.isdigit() and int(k) == sketch_index:
                found.append((pid, s))
        for pid, s in sorted(found):
            if pid not in index:
                logger.warning("sketchy: sketch %s has no photo; skipped", s)
                continue
            query_paths.append(s)
            query_class.append(ci)
            query_photo.append(index[pid])
    if not photo_paths:
        raise DatasetMissing(f"sketchy data set at {base} holds no photos; expected {layout}")
    return SketchyData(
        photo_paths=photo_paths,
        photo_class=np.asarray(photo_class, dtype=np.int64),
        photo_ids=photo_ids,
        query_paths=query_paths,
        query_class=np.asarray(query_class, dtype=np.int64),
        query_photo=np.asarray(query_photo, dtype=np.int64),
        class_names=class_names,
    )


@dataclass(frozen=True)
class SysuData:
    """SYSU-Shapes images with their object boxes and outline polygons.

    Attributes
    ----------
    image_paths : list of Path
        (N,) image files, sorted by class (in :data:`SYSU_CLASSES` order), then file name.
    image_class : (N,) int64 ndarray
        Class index of each image into ``class_names``.
    image_sizes : (N, 2) int64 ndarray
        ``(width, height)`` of each image in pixels, as stored (no EXIF rotation; none of the files
        carries one).
    boxes : list of ndarray
        (N,) arrays of shape (M_i, 4), float64: the image's M_i >= 1 object boxes
        ``[x0, y0, x1, y1]``, 0-based pixel edges (``x0 = x1_matlab - 1``, ``x1 = x2_matlab``), clipped
        to the image.
    polygons : list of list of ndarray
        (N,) lists of M_i outlines, each (P, 2) float64 ``(x, y)`` in 0-based pixel-index coordinates,
        clipped to ``[0, W - 1] x [0, H - 1]``; outline ``j`` belongs to ``boxes[i][j]`` and spans it up
        to a pixel (``x`` from ``x0`` to about ``x1 - 1``).
    class_names : list of str
        ``["bicycle", "boat"]``.
    """

    image_paths: list[Path]
    image_class: np.ndarray
    image_sizes: np.ndarray
    boxes: list[np.ndarray]
    polygons: list[list[np.ndarray]]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.image_paths)


def _read_sysu_annotation(path: Path, width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Parse one SYSU ``.mat`` file into clipped boxes (M, 4) and absolute polygons."""
    from scipy.io import loadmat

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    if "object" not in mat:
        raise ValueError(f"{path}: no 'object' variable")
    boxes: list[np.ndarray] = []
    polys: list[np.ndarray] = []
    for obj in np.atleast_1d(mat["object"]).ravel():
        y1m, y2m, x1m, x2m = np.asarray(obj.box_coord, dtype=np.float64).ravel()[:4]
        contour = np.asarray(obj.obj_contour, dtype=np.float64)
        if contour.ndim != 2 or contour.shape[0] != 2:
            contour = contour.T if contour.ndim == 2 and contour.shape[1] == 2 else contour.reshape(2, -1)
        box = np.array([x1m - 1.0, y1m - 1.0, x2m, y2m])
        box[[0, 2]] = np.clip(box[[0, 2]], 0.0, width)
        box[[1, 3]] = np.clip(box[[1, 3]], 0.0, height)
        poly = np.stack([contour[0] + (x1m - 1.0), contour[1] + (y1m - 1.0)], axis=1)
        poly[:, 0] = np.clip(poly[:, 0], 0.0, width - 1.0)
        poly[:, 1] = np.clip(poly[:, 1], 0.0, height - 1.0)
        boxes.append(box)
        polys.append(poly)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), polys


def load_sysu(root: str | os.PathLike | None = None) -> SysuData:
    """Load the SYSU-Shapes localisation subset (classes bicycle and boat).

    Parameters
    ----------
    root : path-like, optional
        The data root (holding ``sysu-shapes/``) or the ``sysu-shapes`` folder itself; default
        :func:`data_root`.

    Returns
    -------
    SysuData
        Every image that has an annotation file with at least one object.  ``box_coord`` is read as
        ``[y1, y2, x1, x2]`` (1-based, inclusive) and ``obj_contour`` as a 2 x P polygon (rows x, y)
        relative to the box's top-left pixel.

    Raises
    ------
    DatasetMissing
        When the folder or a class's ``images/`` / ``annotations/`` subfolders are missing.
    """
    from PIL import Image

    layout = "<class>/images/*.jpg and <class>/annotations/*.mat for classes " + ", ".join(SYSU_CLASSES)
    base = _dataset_dir(root, "sysu-shapes", [f"{c}/{sub}" for c in SYSU_CLASSES
                                              for sub in ("images", "annotations")], layout)
    paths: list[Path] = []
    classes: list[int] = []
    sizes: list[tuple[int, int]] = []
    boxes: list[np.ndarray] = []
    polygons: list[list[np.ndarray]] = []
    for ci, cname in enumerate(SYSU_CLASSES):
        for img_path in sorted((base / cname / "images").glob("*.jpg")):
            ann = base / cname / "annotations" / (img_path.stem + ".mat")
            if not ann.is_file():
                logger.warning("sysu: %s has no annotation; skipped", img_path)
                continue
            with Image.open(img_path) as im:
                width, height = im.size
            b, p = _read_sysu_annotation(ann, width, height)
            if len(p) == 0:
                logger.warning("sysu: %s has no objects; skipped", ann)
                continue
            paths.append(img_path)
            classes.append(ci)
            sizes.append((width, height))
            boxes.append(b)
            polygons.append(p)
    if not paths:
        raise DatasetMissing(f"sysu-shapes data set at {base} holds no annotated images; expected {layout}")
    return SysuData(
        image_paths=paths,
        image_class=np.asarray(classes, dtype=np.int64),
        image_sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        boxes=boxes,
        polygons=polygons,
        class_names=list(SYSU_CLASSES),
    )


@dataclass(frozen=True)
class SysuQuery:
    """One sketch query drawn from a SYSU outline.

    Unpacks as the 3-tuple ``(image, class_index, source_index)``.

    Attributes
    ----------
    image : (H, W) uint8 ndarray
        Black (0) strokes on white (255), longer side ``max_side``.
    class_index : int
        Class of the outlined object (index into ``SysuData.class_names``).
    source_index : int
        Index of the image the outline was traced from; excluded from this query's ranking.
    object_index : int
        Which object of that image (index into ``SysuData.boxes[source_index]``).
    """

    image: np.ndarray
    class_index: int
    source_index: int
    object_index: int

    def __iter__(self) -> Iterator:
        return iter((self.image, self.class_index, self.source_index))


def render_outline(polygon: np.ndarray, *, max_side: int = 400, stroke_width: int = 3, margin: float = 0.06,
                   jitter: float = 1.5, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Render a closed outline as a hand-drawn-looking sketch on white.

    Parameters
    ----------
    polygon : (P, 2) float ndarray
        Outline vertices ``(x, y)``, any coordinate frame.
    max_side : int, keyword-only
        Longer side of the output canvas in pixels.
    stroke_width : int, keyword-only
        Stroke thickness in pixels (anti-aliased).
    margin : float, keyword-only
        White margin on every side as a fraction of ``max_side``.
    jitter : float, keyword-only
        Standard deviation in output pixels of a smooth random displacement of the stroke (correlation
        length about 25 px) that imitates an unsteady hand; 0 draws the exact outline.
    seed : int or sequence of int, keyword-only
        Seed of the jitter.

    Returns
    -------
    (H, W) uint8 ndarray
        The outline's bounding box plus margin, scaled so that ``max(H, W) == max_side``.
    """
    import cv2
    from scipy.ndimage import gaussian_filter1d

    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        raise ValueError("empty polygon")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = np.maximum(hi - lo, 1e-6)
    pad = margin * max_side
    s = (max_side - 2.0 * pad) / extent.max()
    w, h = (np.ceil(extent * s + 2.0 * pad)).astype(int).clip(1, max_side)
    q = (pts - lo) * s + pad
    # Densify the closed outline to ~2 px spacing so that the jitter bends strokes smoothly.
    closed = np.vstack([q, q[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if jitter > 0 and total > 0:
        n = max(int(total / 2.0), 8)
        t = np.linspace(0.0, total, n, endpoint=False)
        dense = np.stack([np.interp(t, arc, closed[:, 0]), np.interp(t, arc, closed[:, 1])], axis=1)
        rng = np.random.default_rng(seed)
        noise = gaussian_filter1d(rng.standard_normal((n, 2)), sigma=6.0, axis=0, mode="wrap")
        noise *= jitter / max(float(noise.std()), 1e-9)
        q = dense + noise
    q[:, 0] = np.clip(q[:, 0], 0.0, w - 1.0)
    q[:, 1] = np.clip(q[:, 1], 0.0, h - 1.0)
    canvas = np.full((h, w), 255, dtype=np.uint8)
    shift = 4
    cv2.polylines(canvas, [np.round(q * (1 << shift)).astype(np.int32)], isClosed=True, color=0,
                  thickness=int(stroke_width), lineType=cv2.LINE_AA, shift=shift)
    return canvas


def sysu_queries(data: SysuData, *, per_class: int | None = None, seed: int = 0, max_side: int = 400,
                 stroke_width: int = 3, margin: float = 0.06, jitter: float = 1.5,
                 min_object_side: float = 32.0) -> list[SysuQuery]:
    """Draw sketch queries from the annotated SYSU outlines.

    Protocol: each eligible image yields at most one query, the outline of its largest object (by box
    area) among those whose box's longer side is at least ``min_object_side`` px; with ``per_class`` set,
    that many source images are drawn per class at random (``seed``) without replacement.  The outline is
    rendered by :func:`render_outline` with a jitter seeded by ``(seed, image index, object index)``, so a
    query's pixels do not depend on which other queries were drawn.  The source image must be excluded
    from the query's ranking (:func:`sysu_ground_truth` does so).

    Parameters
    ----------
    data : SysuData
        From :func:`load_sysu`.
    per_class : int, optional, keyword-only
        Queries per class; ``None`` (default) takes every eligible image.
    seed : int, keyword-only
        Seed of the image choice and of the jitter.
    max_side, stroke_width, margin, jitter : keyword-only
        Rendering options, see :func:`render_outline`.
    min_object_side : float, keyword-only
        Objects whose box is smaller than this (longer side, pixels) are never used.

    Returns
    -------
    list of SysuQuery
        Ordered by class, then source image index; each unpacks as ``(sketch, class_index, source_index)``.
    """
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, int]] = []
    for ci in range(len(data.class_names)):
        candidates: list[tuple[int, int]] = []
        for i in np.flatnonzero(data.image_class == ci):
            b = data.boxes[i]
            wh = b[:, 2:] - b[:, :2]
            ok = wh.max(axis=1) >= min_object_side
            if not ok.any():
                continue
            area = np.where(ok, wh.prod(axis=1), -1.0)
            candidates.append((int(i), int(np.argmax(area))))
        if per_class is not None and per_class < len(candidates):
            pick = np.sort(rng.choice(len(candidates), size=per_class, replace=False))
            candidates = [candidates[j] for j in pick]
        chosen.extend(candidates)
    return [
        SysuQuery(
            image=render_outline(data.polygons[i][j], max_side=max_side, stroke_width=stroke_width,
                                 margin=margin, jitter=jitter, seed=(seed, i, j)),
            class_index=int(data.image_class[i]),
            source_index=i,
            object_index=j,
        )
        for i, j in chosen
    ]


def sysu_ground_truth(data: SysuData, queries: Sequence[SysuQuery]) -> tuple[np.ndarray, np.ndarray]:
    """Relevance and exclusion masks of SYSU queries against all SYSU images.

    Parameters
    ----------
    data : SysuData
        The database (N images).
    queries : sequence of SysuQuery
        Q queries, e.g. from :func:`sysu_queries`.

    Returns
    -------
    relevant : (Q, N) bool ndarray
        Same class as the query, source image excluded.
    exclude : (Q, N) bool ndarray
        ``True`` exactly at each query's source image; pass it as ``exclude=`` to the metrics.
    """
    qc = np.asarray([q.class_index for q in queries], dtype=np.int64)
    src = np.asarray([q.source_index for q in queries], dtype=np.int64)
    n = len(data.image_paths)
    exclude = np.zeros((len(qc), n), dtype=bool)
    exclude[np.arange(len(qc)), src] = True
    relevant = (qc[:, None] == data.image_class[None, :]) & ~exclude
    return relevant, exclude


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as RGB.

    Parameters
    ----------
    path : path-like
        Any file PIL reads; EXIF orientation is applied, transparency composited on white.

    Returns
    -------
    (H, W, 3) float32 ndarray
        Values in [0, 1].
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P") or "transparency" in im.info:
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, rgba)
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------


def _as_matrix(score_matrix, name: str = "score_matrix") -> np.ndarray:
    s = np.asarray(score_matrix, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"{name} must be 2-D (Q, N), got shape {s.shape}")
    return s


def _mask(mask, shape: tuple[int, ...], name: str) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape}, expected {shape}")
    return m


def _sorted_relevance(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Relevance flags in rank order: valid items first, score descending, relevant last among ties."""
    order = np.lexsort((relevant, -scores, exclude), axis=-1)
    return np.take_along_axis(relevant & ~exclude, order, axis=-1)


def per_query_average_precision(score_matrix: np.ndarray, relevant: np.ndarray, *,
                                exclude: np.ndarray | None = None) -> np.ndarray:
    """Non-interpolated average precision of every query.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.  NaN counts as the lowest score.
    relevant : (Q, N) array_like of bool
        Ground truth.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking (neither counted as retrieved nor as relevant).

    Returns
    -------
    (Q,) float64 ndarray
        ``AP_q = mean over relevant items r of (relevant items ranked at or above r) / rank(r)``.  Ties
        are broken pessimistically (relevant after non-relevant).  NaN for a query with no relevant item.
    """
    s = _as_matrix(score_matrix)
    rel = _mask(relevant, s.shape, "relevant")
    ex = _mask(exclude, s.shape, "exclude")
    rs = _sorted_relevance(s, rel, ex)
    hits = np.cumsum(rs, axis=1)
    ranks = np.arange(1, s.shape[1] + 1, dtype=np.float64)
    n_rel = rs.sum(axis=1)
    total = np.where(rs, hits / ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, total / np.maximum(n_rel, 1), np.nan)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Non-interpolated average precision of one ranking.

    Parameters
    ----------
    scores : (N,) array_like
        Higher is better; NaN counts as the lowest score.
    relevant : (N,) array_like of bool
        Ground truth.

    Returns
    -------
    float
        Mean over the relevant items of the precision at their rank; ties broken pessimistically
        (relevant items rank after non-relevant ones with an equal score).  NaN without relevant items.

    Examples
    --------
    >>> average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False])  # (1 + 2/3) / 2
    0.8333333333333333
    """
    s = np.asarray(scores, dtype=np.float64).reshape(1, -1)
    r = np.asarray(relevant, dtype=bool).reshape(1, -1)
    return float(per_query_average_precision(s, r)[0])


def mean_average_precision(score_matrix: np.ndarray, relevant: np.ndarray, *,
                           exclude: np.ndarray | None = None) -> float:
    """Mean of :func:`per_query_average_precision` over the queries that have a relevant item.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.
    relevant : (Q, N) array_like of bool
        Ground truth.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking.

    Returns
    -------
    float
        mAP in [0, 1]; NaN when no query has a relevant item.
    """
    ap = per_query_average_precision(score_matrix, relevant, exclude=exclude)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def precision_at_k(score_matrix: np.ndarray, relevant: np.ndarray, k: int, *,
                   exclude: np.ndarray | None = None) -> float:
    """Mean over queries of the fraction of relevant items among the top ``k``.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.
    relevant : (Q, N) array_like of bool
        Ground truth.
    k : int
        Cut-off, >= 1.  The denominator is always ``k`` (also when fewer than ``k`` items are ranked).
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking.

    Returns
    -------
    float
        P@k in [0, 1], ties broken pessimistically.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    s = _as_matrix(score_matrix)
    rs = _sorted_relevance(s, _mask(relevant, s.shape, "relevant"), _mask(exclude, s.shape, "exclude"))
    return float(np.mean(rs[:, :k].sum(axis=1) / k)) if s.shape[0] else float("nan")


def recall_at_k(score_matrix: np.ndarray, target_index: np.ndarray, k: int, *,
                exclude: np.ndarray | None = None) -> float:
    """Instance recall: fraction of queries whose own target item is among the top ``k``.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.
    target_index : (Q,) array_like of int
        The one correct item of each query (e.g. ``SketchyData.query_photo``).
    k : int
        Cut-off, >= 1.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking (an excluded target is a miss).

    Returns
    -------
    float
        Recall@k in [0, 1]; the target must beat every other item with an equal score (pessimistic ties).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    s = _as_matrix(score_matrix)
    t = np.asarray(target_index, dtype=np.int64).ravel()
    if t.shape != (s.shape[0],):
        raise ValueError(f"target_index has shape {t.shape}, expected ({s.shape[0]},)")
    rel = np.zeros(s.shape, dtype=bool)
    rel[np.arange(s.shape[0]), t] = True
    rs = _sorted_relevance(s, rel, _mask(exclude, s.shape, "exclude"))
    return float(np.mean(rs[:, :k].any(axis=1))) if s.shape[0] else float("nan")


def top_k(score_matrix: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` best items of every query.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better; NaN counts as the lowest score.
    k : int
        How many, >= 1.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Items never returned.

    Returns
    -------
    (Q, k) int64 ndarray
        Best first; equal scores in index order; ``-1`` where fewer than ``k`` items are left.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    s = _as_matrix(score_matrix)
    ex = _mask(exclude, s.shape, "exclude")
    order = np.lexsort((-s, ex), axis=-1)[:, :k]
    order = np.where(np.take_along_axis(ex, order, axis=-1), -1, order)
    if order.shape[1] < k:
        order = np.pad(order, ((0, 0), (0, k - order.shape[1])), constant_values=-1)
    return order.astype(np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes, broadcasting over the leading axes.

    Parameters
    ----------
    a, b : (..., 4) array_like
        Boxes ``[x0, y0, x1, y1]`` with ``x1 >= x0, y1 >= y0``; the leading shapes must broadcast.

    Returns
    -------
    (...) float64 ndarray
        IoU in [0, 1]; 0 where the union is empty or a box contains NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError("boxes must have a last axis of length 4")
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = iw * ih
    area_a = np.clip(a[..., 2] - a[..., 0], 0.0, None) * np.clip(a[..., 3] - a[..., 1], 0.0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0.0, None) * np.clip(b[..., 3] - b[..., 1], 0.0, None)
    union = area_a + area_b - inter
    ok = union > 0
    out = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=np.float64)
    np.divide(inter, union, out=out, where=ok)
    return out


def _pad_boxes(boxes_per_image: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) list of (M_i, 4) -> (N, max M_i, 4) float64 padded with NaN."""
    m = max((len(np.asarray(b).reshape(-1, 4)) for b in boxes_per_image), default=0)
    out = np.full((len(boxes_per_image), max(m, 1), 4), np.nan)
    for i, b in enumerate(boxes_per_image):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        out[i, :len(b)] = b
    return out


def localization_counts(ranked_index: np.ndarray, ranked_boxes: np.ndarray,
                        gt_boxes_per_image: Sequence[np.ndarray], relevant: np.ndarray, *, k: int = 10,
                        iou: float = 0.5) -> tuple[int, int]:
    """Count the correct-class top-``k`` hits and how many of them are well localised.

    Parameters
    ----------
    ranked_index : (Q, K) array_like of int
        Each query's retrieved images, best first (e.g. from :func:`top_k`); ``-1`` pads.
    ranked_boxes : (Q, K, 4) array_like
        The predicted box ``[x0, y0, x1, y1]`` of each retrieved image, in its pixel coordinates.
    gt_boxes_per_image : sequence of (M_i, 4) array_like
        Ground-truth boxes of each of the N images (may be empty).
    relevant : (Q, N) array_like of bool
        Ground truth of the class: which images count as hits.
    k : int, keyword-only
        Only the first ``k`` columns of the ranking are looked at.
    iou : float, keyword-only
        A hit is localised when its box has IoU >= ``iou`` with ANY ground-truth box of its image.

    Returns
    -------
    n_localized, n_hits : int
        Localised hits and relevant hits among the top ``k`` of all queries together.
    """
    idx = np.asarray(ranked_index, dtype=np.int64)[:, :k]
    pred = np.asarray(ranked_boxes, dtype=np.float64)[:, :k]
    rel = np.asarray(relevant, dtype=bool)
    if idx.ndim != 2 or pred.shape != idx.shape + (4,) or rel.ndim != 2 or rel.shape[0] != idx.shape[0]:
        raise ValueError("expected ranked_index (Q, K), ranked_boxes (Q, K, 4) and relevant (Q, N)")
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    hit = valid & np.take_along_axis(rel, safe, axis=1)
    gt = _pad_boxes(gt_boxes_per_image)[safe]                     # (Q, K, M, 4)
    best = box_iou(pred[:, :, None, :], gt).max(axis=-1)          # (Q, K)
    return int((hit & (best >= iou)).sum()), int(hit.sum())


def localization_rate(ranked_index: np.ndarray, ranked_boxes: np.ndarray,
                      gt_boxes_per_image: Sequence[np.ndarray], relevant: np.ndarray, *, k: int = 10,
                      iou: float = 0.5) -> float:
    """Fraction of the correct-class top-``k`` hits whose box has IoU >= ``iou`` with a ground-truth box.

    Parameters
    ----------
    ranked_index : (Q, K) array_like of int
        Each query's retrieved images, best first (e.g. ``top_k(scores, k, exclude=exclude)``); ``-1``
        pads.
    ranked_boxes : (Q, K, 4) array_like
        Predicted box of each retrieved image (NaN boxes count as misses).
    gt_boxes_per_image : sequence of (M_i, 4) array_like
        Ground-truth boxes of each of the N images (e.g. ``SysuData.boxes``).
    relevant : (Q, N) array_like of bool
        Which images are correct-class hits.
    k : int, keyword-only
        Cut-off.
    iou : float, keyword-only
        IoU threshold; a hit may match any ground-truth box of its image.

    Returns
    -------
    float
        Pooled over all queries (each hit weighs the same); NaN when there is no correct-class hit.
    """
    n_loc, n_hit = localization_counts(ranked_index, ranked_boxes, gt_boxes_per_image, relevant, k=k,
                                       iou=iou)
    return n_loc / n_hit if n_hit else float("nan")


def random_baseline_scores(n_queries: int, n_items: int, seed: int = 0) -> np.ndarray:
    """Uniform random scores: the chance level of every ranking metric.

    Parameters
    ----------
    n_queries, n_items : int
        Shape of the score matrix.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (n_queries, n_items) float64 ndarray
        Independent U(0, 1) scores (no ties, almost surely).
    """
    return np.random.default_rng(seed).random((n_queries, n_items))


# ----------------------------------------------------------------------------------------------------
# Edge images and HOG baselines
# ----------------------------------------------------------------------------------------------------


def sketch_edge_image(image: np.ndarray) -> np.ndarray:
    """Turn a sketch (dark strokes on a light background) into an edge image.

    Parameters
    ----------
    image : (H, W), (H, W, 3) or (H, W, 4) array_like
        uint8 in [0, 255] or float in [0, 1]; an alpha channel is composited on white.

    Returns
    -------
    (H, W) float32 ndarray
        Ink in [0, 1]: ``1 - gray``.
    """
    a = np.asarray(image)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.ndim == 3:
        if a.shape[2] == 4:
            alpha = a[..., 3:4]
            a = a[..., :3] * alpha + (1.0 - alpha)
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if a.shape[2] >= 3 else a[..., 0]
    return np.clip(1.0 - a, 0.0, 1.0)


def photo_edge_image(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """Canny edges of a photo, the baselines' stand-in for a rendered edge map.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) array_like
        uint8 or float in [0, 1].
    sigma : float, keyword-only
        Gaussian smoothing of the Canny detector, in pixels.

    Returns
    -------
    (H, W) float32 ndarray
        1 on edge pixels, 0 elsewhere.
    """
    from skimage.feature import canny

    a = np.asarray(image)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    gray = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32) if a.ndim == 3 else a
    return canny(gray, sigma=sigma).astype(np.float32)


def render_edge_map(edge_map) -> np.ndarray:
    """Rasterise an ``engine.edges.EdgeMap`` (or anything with its attributes) into an edge image.

    Parameters
    ----------
    edge_map : EdgeMap
        Points ``x, y`` (origin at the frame centre), strengths ``w`` and frame ``width``, ``height``.

    Returns
    -------
    (height, width) float32 ndarray
        The maximum strength of the points that fall in each pixel; 0 elsewhere.
    """
    h, w = int(edge_map.height), int(edge_map.width)
    out = np.zeros((h, w), dtype=np.float32)
    col = np.rint(np.asarray(edge_map.x, dtype=np.float64) + (w - 1) / 2.0).astype(np.int64)
    row = np.rint(np.asarray(edge_map.y, dtype=np.float64) + (h - 1) / 2.0).astype(np.int64)
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    np.maximum.at(out, (row[ok], col[ok]), np.asarray(edge_map.w, dtype=np.float32)[ok])
    return out


def _content_box(img: np.ndarray, thresh: float = 0.05) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) half-open bounding box of the pixels above ``thresh`` (whole image if none)."""
    rows = np.flatnonzero((img > thresh).any(axis=1))
    cols = np.flatnonzero((img > thresh).any(axis=0))
    if rows.size == 0:
        return 0, img.shape[0], 0, img.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    width, height = max(int(width), 1), max(int(height), 1)
    shrink = width < img.shape[1] or height < img.shape[0]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img


def _normalise(img: np.ndarray) -> np.ndarray:
    peak = float(img.max()) if img.size else 0.0
    return img / peak if peak > 0 else img


def hog_descriptor(edge_image: np.ndarray, *, size: int = 128, orientations: int = 9,
                   pixels_per_cell: int = 8, cells_per_block: int = 2, blur_sigma: float = 1.0,
                   crop_to_content: bool = False) -> np.ndarray:
    """Global HOG descriptor of an edge image on a fixed square canvas.

    Parameters
    ----------
    edge_image : (H, W) array_like
        Edge image (high on edges), e.g. from :func:`sketch_edge_image` or :func:`photo_edge_image`.
    size : int, keyword-only
        Side of the square canvas; the image is scaled to fit (aspect ratio kept) and centred on a zero
        background.
    orientations, pixels_per_cell, cells_per_block : int, keyword-only
        ``skimage.feature.hog`` options (square cells and blocks, ``L2-Hys`` block norm).
    blur_sigma : float, keyword-only
        Gaussian blur (canvas pixels) applied after resizing, to tolerate small stroke displacements.
    crop_to_content : bool, keyword-only
        Crop to the bounding box of the edges first (for sketches drawn anywhere on a canvas).

    Returns
    -------
    (D,) float32 ndarray
        L2-normalised (all zeros for an empty image).
    """
    from skimage.feature import hog

    img = np.asarray(edge_image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"edge_image must be 2-D, got shape {img.shape}")
    if crop_to_content:
        r0, r1, c0, c1 = _content_box(img)
        img = img[r0:r1, c0:c1]
    s = size / max(img.shape)
    w, h = max(round(img.shape[1] * s), 1), max(round(img.shape[0] * s), 1)
    canvas = np.zeros((size, size), dtype=np.float32)
    y0, x0 = (size - h) // 2, (size - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = _resize(img, w, h)
    canvas = _normalise(_blur(canvas, blur_sigma))
    d = hog(canvas, orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
            cells_per_block=(cells_per_block, cells_per_block), block_norm="L2-Hys", feature_vector=True)
    d = d.astype(np.float32)
    n = float(np.linalg.norm(d))
    return d / n if n > 0 else d


def hog_descriptors(edge_images: Sequence[np.ndarray], **hog_options) -> np.ndarray:
    """Stack :func:`hog_descriptor` of several edge images.

    Parameters
    ----------
    edge_images : sequence of (H_i, W_i) array_like
        The edge images.
    **hog_options
        Keyword options of :func:`hog_descriptor`.

    Returns
    -------
    (n, D) float32 ndarray
        One L2-normalised descriptor per row.
    """
    rows = [hog_descriptor(e, **hog_options) for e in edge_images]
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows)


def hog_scores(query_images: Sequence[np.ndarray], database_images: Sequence[np.ndarray],
               **hog_options) -> np.ndarray:
    """Cosine similarity of the global HOG descriptors of queries and database images.

    Parameters
    ----------
    query_images : sequence of (H, W) array_like
        Q query edge images.
    database_images : sequence of (H, W) array_like
        N database edge images.
    **hog_options
        Keyword options of :func:`hog_descriptor`.

    Returns
    -------
    (Q, N) float32 ndarray
        Cosine similarities in [0, 1] (HOG features are non-negative).
    """
    q = hog_descriptors(query_images, **hog_options)
    d = hog_descriptors(database_images, **hog_options)
    return q @ d.T


def _hog_blocks(img: np.ndarray, *, orientations: int, pixels_per_cell: int,
                cells_per_block: int) -> np.ndarray:
    """(R, C, D) float32 block features of ``skimage.feature.hog(..., feature_vector=False)``."""
    from skimage.feature import hog

    b = hog(img, orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
            cells_per_block=(cells_per_block, cells_per_block), block_norm="L2-Hys", feature_vector=False)
    return b.reshape(b.shape[0], b.shape[1], -1).astype(np.float32)


def _window_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of ``a`` (R, C) over every h x w window: (R - h + 1, C - w + 1)."""
    c = np.pad(np.cumsum(np.cumsum(a, axis=0, dtype=np.float64), axis=1), ((1, 0), (1, 0)))
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def hog_sliding_window(query_edge_img: np.ndarray, photo_edge_img: np.ndarray, *,
                       scales: Sequence[float] = (1.0, 0.8, 0.6), stride: int = 1, template_cells: int = 8,
                       pixels_per_cell: int = 8, cells_per_block: int = 2, orientations: int = 9,
                       pad_cells: int = 1, blur_sigma: float = 1.0,
                       crop_query: bool = True) -> tuple[float, np.ndarray]:
    """Localise a sketch in a photo by sliding its HOG template over the photo's edges at a few scales.

    The query (cropped to its strokes) becomes a HOG template whose longer side is ``template_cells``
    cells, padded by ``pad_cells`` empty cells.  For each scale ``s`` the photo's edge image is resized so
    that the template covers ``s`` times the largest query-shaped box that fits in the photo (``s = 1``:
    the shape fills the photo along its limiting axis), padded likewise, and its HOG block grid is
    computed once; the template is then correlated with every window (``stride`` cells apart) and scored
    by the cosine between the template's and the window's block features.

    Parameters
    ----------
    query_edge_img : (h, w) array_like
        Query edge image (high on strokes), e.g. ``sketch_edge_image(sketch)``.
    photo_edge_img : (H, W) array_like
        Photo edge image, e.g. :func:`photo_edge_image` or :func:`render_edge_map`.
    scales : sequence of float, keyword-only
        Object sizes to try, as fractions of the largest fit.
    stride : int, keyword-only
        Window step in HOG cells.
    template_cells : int, keyword-only
        Longer side of the query template in cells (sets the working resolution).
    pixels_per_cell, cells_per_block, orientations : int, keyword-only
        HOG options.
    pad_cells : int, keyword-only
        Empty border around template and photo, so that shapes touching the photo border are found.
    blur_sigma : float, keyword-only
        Gaussian blur (working pixels) of both edge images after resizing.
    crop_query : bool, keyword-only
        Crop the query to its strokes' bounding box (the box then hugs the drawn shape).

    Returns
    -------
    score : float
        Best cosine similarity in [0, 1] (0 when nothing fits).
    box : (4,) float64 ndarray
        ``[x0, y0, x1, y1]`` of the best window's shape region in photo pixels, clipped to the photo (the
        whole photo when nothing fits).
    """
    from scipy.signal import correlate

    q = np.asarray(query_edge_img, dtype=np.float32)
    p = np.asarray(photo_edge_img, dtype=np.float32)
    if q.ndim != 2 or p.ndim != 2:
        raise ValueError("edge images must be 2-D")
    if crop_query:
        r0, r1, c0, c1 = _content_box(q)
        q = q[r0:r1, c0:c1]
    ppc, cpb = int(pixels_per_cell), int(cells_per_block)
    hq, wq = q.shape
    H, W = p.shape
    hog_opts = dict(orientations=orientations, pixels_per_cell=ppc, cells_per_block=cpb)

    # Template: content of th_c x tw_c cells inside a pad_cells border.
    t = template_cells / max(hq, wq)
    th_c, tw_c = max(round(hq * t), cpb), max(round(wq * t), cpb)
    pad = pad_cells * ppc
    canvas = np.zeros((th_c * ppc + 2 * pad, tw_c * ppc + 2 * pad), dtype=np.float32)
    canvas[pad:pad + th_c * ppc, pad:pad + tw_c * ppc] = _resize(q, tw_c * ppc, th_c * ppc)
    tmpl = _hog_blocks(_normalise(_blur(canvas, blur_sigma)), **hog_opts)
    t_norm = float(np.linalg.norm(tmpl))
    best_score, best_box = 0.0, whole_image_box(W, H)
    if t_norm == 0:
        return best_score, best_box
    tmpl /= t_norm
    bh, bw = tmpl.shape[:2]

    fit = min(H / hq, W / wq)  # photo pixels per query pixel of the largest fitting box
    for s in scales:
        # working pixels per photo pixel: template content size over the target region's size
        r = np.sqrt((th_c * ppc) * (tw_c * ppc) / ((s * fit) ** 2 * hq * wq))
        nw, nh = max(round(W * r), 1), max(round(H * r), 1)
        work = np.zeros((nh + 2 * pad, nw + 2 * pad), dtype=np.float32)
        work[pad:pad + nh, pad:pad + nw] = _resize(p, nw, nh)
        blocks = _hog_blocks(_normalise(_blur(work, blur_sigma)), **hog_opts)
        if blocks.shape[0] < bh or blocks.shape[1] < bw:
            continue
        dot = correlate(blocks, tmpl, mode="valid")[..., 0]
        b64 = blocks.astype(np.float64)
        sq = _window_sums((b64 ** 2).sum(axis=-1), bh, bw)
        norm = np.sqrt(np.clip(sq, 0.0, None))
        score = np.divide(dot, norm, out=np.zeros_like(norm), where=norm > 1e-12)
        score = score[::stride, ::stride]
        i, j = np.unravel_index(int(np.argmax(score)), score.shape)
        value = float(score[i, j])
        if value > best_score:
            i, j = i * stride, j * stride
            # window at block (i, j) starts at working pixel (j*ppc, i*ppc) of the padded image; the
            # content starts pad later, which cancels the photo's pad.
            sx, sy = nw / W, nh / H
            box = np.array([j * ppc / sx, i * ppc / sy, (j * ppc + tw_c * ppc) / sx,
                            (i * ppc + th_c * ppc) / sy])
            box[[0, 2]] = np.clip(box[[0, 2]], 0.0, W)
            box[[1, 3]] = np.clip(box[[1, 3]], 0.0, H)
            best_score, best_box = value, box
    return best_score, best_box


def whole_image_box(width: float, height: float) -> np.ndarray:
    """The trivial localisation baseline: the whole image.

    Parameters
    ----------
    width, height : float
        Image size in pixels.

    Returns
    -------
    (4,) float64 ndarray
        ``[0, 0, width, height]``.
    """
    return np.array([0.0, 0.0, float(width), float(height)])
