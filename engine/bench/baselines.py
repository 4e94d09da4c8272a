"""Baselines of the benchmark: a global HOG descriptor on edge images, a sliding-window HOG template
matcher for localisation, and the whole-image box.

Edge images are (H, W) float arrays with high values on edges (ink) and 0 on the background; a sketch
(black strokes on white) becomes one through :func:`sketch_edge_image`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
