"""Evaluation data sets for ``sketchsearch bench``: Sketchy (sketch -> photo) and SYSU-Shapes (boxes, outlines).

The data live outside the repository, in ``../shared/data`` next to the checkout, or wherever the
``SKETCHSEARCH_DATA`` environment variable points.  A missing data set raises :class:`DatasetMissing`,
so tests and the benchmark can skip it.

SYSU query protocol
-------------------
Each SYSU query is a rendering of one annotated outline of one image (see :func:`sysu_queries`).
Because the query is traced from that very image, its source image is **excluded** from the query's
ranking: :func:`sysu_ground_truth` returns an ``exclude`` mask with exactly the source image set, and the
metrics drop those pairs.  The relevant images are the other images of the query's class.

Conventions
-----------
Boxes are ``[x0, y0, x1, y1]`` in 0-based pixel-edge coordinates (a box covering pixel columns
``c0 .. c1`` inclusive has ``x0 = c0, x1 = c1 + 1``).  Polygons are (N, 2) float arrays of ``(x, y)``
pixel-index coordinates.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resources import DEMO

logger = logging.getLogger(__name__)

DATA_ENV_VAR = "SKETCHSEARCH_DATA"
"""Environment variable that overrides the data root folder."""

DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
"""Data root used when ``SKETCHSEARCH_DATA`` is not set: ``shared/data`` beside the checkout."""

SYSU_CLASSES = ("bicycle", "boat")
DEMO_PHOTOS = DEMO / "photos"  # where the data are absent
"""The SYSU-Shapes classes loaded by :func:`load_sysu`, in class-index order."""



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


def existing_root(data: str | os.PathLike | None = None) -> Path | None:
    """The evaluation data folder (``data``, else :func:`data_root`), or None when it does not exist."""
    root = Path(data).expanduser() if data else data_root()
    return root if root.is_dir() else None


def load_or_skip(load, data: str | os.PathLike | None, skipped: list[str], what: str):
    """``load(root)`` of the evaluation data folder, or None with the reason appended to ``skipped`` (prefixed
    with ``what``, the part of a benchmark that cannot run) where the folder or the data set is missing."""
    root = existing_root(data)
    if root is None:
        skipped.append(f"{what}: no evaluation data (../shared/data)")
        return None
    try:
        return load(root)
    except DatasetMissing as e:
        skipped.append(f"{what}: {e}")
        return None


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
        (Q,) sketch files ``sketch/<class>/<photo-id>-<k>.png`` with ``k == sketch_index`` (any ``k`` where it
        is None), sorted by class name, then photo id.
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


def load_sketchy(root: str | os.PathLike | None = None, *, sketch_index: int | None = 1) -> SketchyData:
    """Load the Sketchy subset's file lists and ground truth (no pixels are read).

    Parameters
    ----------
    root : path-like, optional
        The data root (holding ``sketchy/``) or the ``sketchy`` folder itself; default :func:`data_root`.
    sketch_index : int or None, keyword-only
        Which sketch of each family becomes the query: ``<photo-id>-<sketch_index>.png``.  Photos with no
        such sketch contribute no query.  None: every sketch of every family (by photo id, then file name).

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
            if sep and k.isdigit() and (sketch_index is None or int(k) == sketch_index):
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


def copies(photos: list[Path], n: int, dest: Path) -> Path:
    """``n`` files in ``dest``: the photos, repeated as byte copies (each copy is a photo of its own)."""
    import shutil

    dest.mkdir(parents=True)
    for i in range(n):
        p = photos[i % len(photos)]
        shutil.copyfile(p, dest / f"{i:05d}{p.suffix.lower()}")
    return dest


def store_photos(data: Path | None) -> list[Path]:
    """Sketchy photos (or the demo photos where the evaluation data are absent)."""
    root = existing_root(data)
    photos = sorted((root / "sketchy" / "photo").glob("*/*")) if root else []
    if not photos:
        logger.warning("no evaluation data: the store benchmark indexes the demo photos")
        photos = sorted((DEMO_PHOTOS).glob("*"))
    return photos


def indexing_photos(data: Path | None, n: int) -> list[Path]:
    """Real photos for the indexing benchmark: SYSU-Shapes (larger photos) or the demo collection."""
    root = existing_root(data)
    photos = sorted((root / "sysu-shapes").glob("*/images/*.jpg")) if root else []
    if not photos:
        photos = sorted((DEMO_PHOTOS).glob("*"))
    step = max(1, len(photos) // n)
    return photos[::step][:n]
