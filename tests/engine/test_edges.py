"""engine.edges: photo and sketch edge maps on synthetic images (plus one slow check on SYSU-Shapes)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine import edges as E
from engine.edges import (
    DETECTORS,
    EdgeMap,
    get_detector,
    photo_edges,
    register_detector,
    render_edges,
    sketch_edges,
)
from engine.imageio import LoadedImage


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)


def _square(h=400, w=400, box=(100, 100, 300, 300), fg=1.0, bg=0.0) -> np.ndarray:
    img = np.full((h, w), bg, np.float32)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = fg
    return _rgb(img)


def _cols_rows(em: EdgeMap) -> tuple[np.ndarray, np.ndarray]:
    return em.x + (em.width - 1) / 2.0, em.y + (em.height - 1) / 2.0


def _orient_diff(a, b) -> np.ndarray:
    """|a - b| for orientations mod pi, in [0, pi/2]."""
    d = np.mod(np.asarray(a, np.float64) - b, np.pi)
    return np.minimum(d, np.pi - d)


def _chamfer(a: EdgeMap, b: EdgeMap) -> float:
    """Symmetric mean nearest-neighbour distance between two point sets (working px)."""
    pa = np.stack([a.x, a.y], 1).astype(np.float64)
    pb = np.stack([b.x, b.y], 1).astype(np.float64)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return 0.5 * (d.min(1).mean() + d.min(0).mean())


def _check_edge_map(em: EdgeMap) -> None:
    for name in ("x", "y", "theta", "w"):
        a = getattr(em, name)
        assert a.dtype == np.float32 and a.shape == (len(em),), name
    assert np.all(em.theta >= 0) and np.all(em.theta < np.pi)
    assert np.all(em.w > 0) and np.all(em.w <= 1)
    cols, rows = _cols_rows(em)
    assert np.all((cols >= 0) & (cols <= em.width - 1) & (rows >= 0) & (rows <= em.height - 1))
    order = np.lexsort((cols, rows))  # row-major
    assert np.array_equal(order, np.arange(len(em)))


# ------------------------------------------------------------------ photos


def test_square_outline_orientation_and_strength():
    em = photo_edges(_square())
    _check_edge_map(em)
    assert (em.width, em.height, em.scale, em.origin) == (400, 400, 1.0, (0.0, 0.0))
    cols, rows = _cols_rows(em)
    # every point lies on the outline (the step is between pixels 99|100 and 299|300)
    d_out = np.minimum(np.minimum(np.abs(cols - 99.5), np.abs(cols - 299.5)),
                       np.minimum(np.abs(rows - 99.5), np.abs(rows - 299.5)))
    assert d_out.max() <= 1.0
    inside = (cols > 110) & (cols < 290) & (rows > 110) & (rows < 290)
    assert not inside.any()
    assert 700 <= len(em) <= 880  # one pixel thick: about the perimeter
    horizontal = (np.abs(rows - 99.5) <= 1) & (cols > 120) & (cols < 280)
    vertical = (np.abs(cols - 99.5) <= 1) & (rows > 120) & (rows < 280)
    assert horizontal.sum() > 100 and vertical.sum() > 100
    assert _orient_diff(em.theta[horizontal], 0.0).max() < np.radians(3)
    assert _orient_diff(em.theta[vertical], np.pi / 2).max() < np.radians(3)
    assert em.w[horizontal | vertical].min() > 0.8


def test_polarity_invariance():
    light_on_dark = photo_edges(_square(fg=0.8, bg=0.2))
    dark_on_light = photo_edges(_square(fg=0.2, bg=0.8))
    assert abs(len(light_on_dark) - len(dark_on_light)) <= 0.05 * len(light_on_dark)
    assert _chamfer(light_on_dark, dark_on_light) < 0.75  # the ridge may pick either pixel of a tie
    pa = np.stack([light_on_dark.x, light_on_dark.y], 1)
    pb = np.stack([dark_on_light.x, dark_on_light.y], 1)
    nearest = np.argmin(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1), axis=1)
    diff = _orient_diff(light_on_dark.theta, dark_on_light.theta[nearest])
    assert np.median(diff) < np.radians(1) and np.percentile(diff, 95) < np.radians(5)
    assert abs(float(light_on_dark.w.mean()) - float(dark_on_light.w.mean())) < 0.05


@pytest.mark.parametrize("p0,p1,expected", [((60, 60), (340, 340), np.pi / 4),
                                            ((60, 340), (340, 60), 3 * np.pi / 4)])
def test_diagonal_line_orientation_in_image_axes(p0, p1, expected):
    img = np.zeros((400, 400), np.float32)
    cv2.line(img, p0, p1, 1.0, 9, cv2.LINE_AA)
    em = photo_edges(_rgb(img))
    cols, rows = _cols_rows(em)
    mid = (np.abs(cols - 200) < 80) & (np.abs(rows - 200) < 80)
    assert mid.sum() > 100
    assert np.median(_orient_diff(em.theta[mid], expected)) < np.radians(3)
    sk = sketch_edges(1.0 - img)  # the same line as a dark stroke
    assert np.median(_orient_diff(sk.theta, expected)) < np.radians(3)


def test_coordinates_are_centred():
    h, w = 300, 400
    em = photo_edges(_square(h, w, box=(150, 100, 250, 200)))  # centred square
    assert (em.width, em.height) == (w, h)
    assert abs(float(em.x.mean())) < 0.5 and abs(float(em.y.mean())) < 0.5
    r = render_edges(em)
    assert r.shape == (h, w) and r.dtype == np.float32
    rows, cols = np.nonzero(r)
    assert np.array_equal(cols - (w - 1) / 2.0, em.x) and np.array_equal(rows - (h - 1) / 2.0, em.y)
    assert np.array_equal(r[rows, cols], em.w)


@pytest.mark.parametrize("shape,expected", [((600, 800), (400, 300, 0.5)), ((100, 200), (400, 200, 2.0)),
                                            ((400, 250), (250, 400, 1.0))])
def test_resized_to_max_side(shape, expected):
    h, w = shape
    em = photo_edges(_square(h, w, box=(w // 4, h // 4, 3 * w // 4, 3 * h // 4)))
    assert (em.width, em.height, em.scale) == expected
    _check_edge_map(em)


def test_scale_maps_back_to_original_pixels():
    img = _square(600, 800, box=(200, 100, 600, 500))  # steps at x = 199.5 / 599.5, y = 99.5 / 499.5
    em = photo_edges(img)
    cols, rows = _cols_rows(em)
    x0, y0 = em.origin
    ox = x0 + (cols + 0.5) / em.scale - 0.5
    oy = y0 + (rows + 0.5) / em.scale - 0.5
    d = np.minimum(np.minimum(np.abs(ox - 199.5), np.abs(ox - 599.5)),
                   np.minimum(np.abs(oy - 99.5), np.abs(oy - 499.5)))
    assert np.median(d) <= 1.0 and d.max() <= 2.5
    # a reduced decode: scale refers to the LoadedImage's original size
    loaded = LoadedImage(pixels=img, original_size=(1600, 1200))
    assert photo_edges(loaded).scale == pytest.approx(0.25)


class _Ramp:
    """A test detector: one horizontal line per strength 0.1, 0.2, ..., 0.9."""

    name = "test-ramp"

    def __call__(self, rgb):
        h, w = rgb.shape[:2]
        s = np.zeros((h, w), np.float32)
        for i in range(1, 10):
            s[i * 20, :] = i / 10
        return s, np.zeros((h, w), np.float32)


def test_min_strength_respected():
    for t, lines in ((0.0, 9), (0.2, 8), (0.5, 5), (0.85, 1)):
        em = photo_edges(_square(), detector=_Ramp(), min_strength=t)
        assert len(em) == 400 * lines and np.all(em.w >= t)
    strong = photo_edges(_square(fg=0.9, bg=0.1), min_strength=0.0)
    for t in (0.3, 0.9):
        em = photo_edges(_square(fg=0.9, bg=0.1), min_strength=t)
        assert np.all(em.w >= t) and len(em) == int((strong.w >= t).sum())


def test_low_contrast_gives_no_edges():
    assert len(photo_edges(_square(fg=0.53, bg=0.5), min_strength=0.0)) == 0  # about 2.5 Lab units
    assert len(photo_edges(_square(fg=0.75, bg=0.5))) > 600  # about 27 Lab units


def test_texture_is_suppressed_relative_to_the_outline():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.random((400, 400)).astype(np.float32), (0, 0), 1.0)
    texture = 0.35 + 0.8 * (texture - texture.mean())  # fine, fairly contrasted texture
    img = texture.copy()
    img[120:280, 120:280] = 0.95  # a plain bright object on it
    on_outline = {}
    for name in ("classical", "canny"):
        em = photo_edges(_rgb(np.clip(img, 0, 1)), detector=name)
        cols, rows = _cols_rows(em)
        d = np.minimum(np.minimum(np.abs(cols - 119.5), np.abs(cols - 279.5)),
                       np.minimum(np.abs(rows - 119.5), np.abs(rows - 279.5)))
        on = d <= 2
        on_outline[name] = float(on.sum()) / max(1, len(em))
        assert on.sum() > 400, name  # the outline is found
    assert on_outline["classical"] > 0.5
    assert on_outline["classical"] > 3 * on_outline["canny"]


def test_rgba_and_16bit_photos():
    sq = _square(fg=1.0, bg=0.0)[:, :, 0]
    ref = photo_edges(_square())
    deep = photo_edges((sq * 65535).astype(np.uint16))
    assert _chamfer(ref, deep) < 0.5
    rgba = np.zeros((400, 400, 4), np.uint8)
    rgba[..., 3] = (sq * 255).astype(np.uint8)  # black square drawn on a transparent (white) background
    em = photo_edges(rgba)
    assert _chamfer(ref, em) < 1.0


def test_detector_registry():
    assert {"classical", "canny"} <= set(DETECTORS)
    assert isinstance(get_detector("classical"), E.EdgeDetector)
    assert get_detector("classical") is get_detector("classical")
    with pytest.raises(ValueError, match="classical"):
        get_detector("no-such-detector")
    with pytest.raises(ValueError, match="unknown edge detector"):
        photo_edges(_square(), detector="no-such-detector")

    @register_detector("test-constant")
    class Constant:
        def __call__(self, rgb):
            h, w = rgb.shape[:2]
            s = np.zeros((h, w), np.float32)
            s[h // 2, :] = 0.5
            return s, np.zeros((h, w), np.float32)

    try:
        assert Constant.name == "test-constant"
        em = photo_edges(_square(), detector="test-constant")
        assert len(em) == 400 and np.all(em.w == 0.5) and np.all(em.y == 0.5)
        em = photo_edges(_square(), detector=Constant(), min_strength=0.6)
        assert len(em) == 0
    finally:
        DETECTORS.pop("test-constant")

    class Broken:
        name = "broken"

        def __call__(self, rgb):
            return np.zeros((3, 3), np.float32), np.zeros((3, 3), np.float32)

    with pytest.raises(ValueError, match="shapes"):
        photo_edges(_square(), detector=Broken())


def test_canny_baseline_runs():
    em = photo_edges(_square(), detector="canny")
    _check_edge_map(em)
    assert len(em) > 600 and np.all(em.w == 1.0)


# ------------------------------------------------------------------ sketches


def _drawing(thickness: int, *, size=(500, 500), offset=(0, 0), aa=True) -> np.ndarray:
    """Dark strokes on white: a circle, a line and an open polyline, shifted by ``offset``."""
    h, w = size
    img = np.full((h, w), 255, np.uint8)
    ox, oy = offset
    line = cv2.LINE_AA if aa else cv2.LINE_8
    cv2.circle(img, (200 + ox, 220 + oy), 120, 0, thickness, line)
    cv2.line(img, (60 + ox, 420 + oy), (380 + ox, 90 + oy), 0, thickness, line)
    pts = np.array([[100, 60], [180, 120], [300, 70]], np.int32) + [ox, oy]
    cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, 0, thickness, line)
    return img


def test_sketch_basic():
    em = sketch_edges(_drawing(3))
    _check_edge_map(em)
    assert max(em.width, em.height) == 400 and np.all(em.w == 1.0)
    r = render_edges(em) > 0
    # one pixel thick: no 2x2 block of stroke pixels
    assert not (r[:-1, :-1] & r[1:, :-1] & r[:-1, 1:] & r[1:, 1:]).any()


def test_thick_and_thin_strokes_give_nearly_the_same_map():
    thin = sketch_edges(_drawing(2))
    thick = sketch_edges(_drawing(11))
    assert _chamfer(thin, thick) < 2.0
    assert abs(len(thin) - len(thick)) < 0.15 * len(thin)


def test_transparent_background_equals_white():
    white = _drawing(4)
    rgba = np.zeros(white.shape + (4,), np.uint8)  # black ink, alpha = darkness, transparent paper
    rgba[..., 3] = 255 - white
    a, b = sketch_edges(white), sketch_edges(rgba)
    assert len(a) == len(b)
    for name in ("x", "y", "theta", "w"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5)
    assert (a.width, a.height, a.scale, a.origin) == (b.width, b.height, b.scale, b.origin)
    light = np.zeros_like(rgba)  # light (white) strokes on a transparent background: alpha is the ink
    light[..., :3] = 255
    light[..., 3] = 255 - white
    c = sketch_edges(light)
    assert _chamfer(a, c) < 0.5


def test_light_paper_and_grey_strokes():
    ref = sketch_edges(_drawing(4))
    paper = 0.55 + 0.3 * _drawing(4) / 255.0  # light grey paper (0.85), grey strokes (0.55)
    em = sketch_edges(paper.astype(np.float32))
    assert _chamfer(ref, em) < 0.75


def test_16bit_and_rgb_sketches():
    ref = sketch_edges(_drawing(4))
    assert _chamfer(ref, sketch_edges(_drawing(4).astype(np.uint16) * 257)) < 1e-6
    assert _chamfer(ref, sketch_edges(_rgb(_drawing(4) / 255.0))) < 1e-6


@pytest.mark.parametrize("kind", ["white", "transparent", "light-noise", "specks"])
def test_blank_sketch_raises(kind):
    rng = np.random.default_rng(0)
    if kind == "white":
        img = np.full((300, 300), 255, np.uint8)
    elif kind == "transparent":
        img = np.zeros((300, 300, 4), np.uint8)
    elif kind == "light-noise":
        img = (0.95 + 0.05 * rng.random((300, 300))).astype(np.float32)
    else:  # scanner dust: a few isolated dark pixels
        img = np.full((300, 300), 255, np.uint8)
        img[rng.integers(0, 300, 6), rng.integers(0, 300, 6)] = 0
    with pytest.raises(ValueError, match="sketch is empty: no strokes found"):
        sketch_edges(img)


def test_specks_do_not_change_the_crop():
    ref = sketch_edges(_drawing(4, size=(700, 700)))
    dusty = _drawing(4, size=(700, 700))
    dusty[690, 5] = 0
    dusty[3, 650] = 0
    em = sketch_edges(dusty)
    assert (em.width, em.height, em.scale, em.origin) == (ref.width, ref.height, ref.scale, ref.origin)


def test_crop_is_translation_invariant():
    centred = sketch_edges(_drawing(4, size=(1000, 1000), offset=(250, 230)))
    corner = sketch_edges(_drawing(4, size=(1000, 1000), offset=(-40, -50)))
    assert (centred.width, centred.height, centred.scale) == (corner.width, corner.height, corner.scale)
    for name in ("x", "y", "theta"):
        np.testing.assert_array_equal(getattr(centred, name), getattr(corner, name))
    assert centred.origin[0] - corner.origin[0] == 290 and centred.origin[1] - corner.origin[1] == 280


@pytest.mark.parametrize("canvas,rect,thickness", [
    (1200, (150, 300, 1050, 900), 3),  # shrinking: 900 px wide crop -> 400
    (120, (20, 30, 100, 70), 1),  # enlarging: 80 px wide crop -> 400
])
def test_sketch_scale_and_origin_map_back(canvas, rect, thickness):
    img = np.full((canvas, canvas), 255, np.uint8)
    x0, y0, x1, y1 = rect
    cv2.rectangle(img, (x0, y0), (x1, y1), 0, thickness)
    em = sketch_edges(img)
    cols, rows = _cols_rows(em)
    ox = em.origin[0] + (cols + 0.5) / em.scale - 0.5
    oy = em.origin[1] + (rows + 0.5) / em.scale - 0.5
    d = np.minimum(np.minimum(np.abs(ox - x0), np.abs(ox - x1)), np.minimum(np.abs(oy - y0), np.abs(oy - y1)))
    tol = max(1.0, 1.5 / em.scale)  # about a working pixel, in original pixels
    assert np.median(d) <= tol and np.percentile(d, 99) <= 2 * tol
    # the known corner (x0, y0) maps to the frame's top-left region
    i = np.argmin(np.hypot(ox - x0, oy - y0))
    assert np.hypot(ox[i] - x0, oy[i] - y0) <= 2 * tol


def test_thin_strokes_survive_shrinking():
    img = np.full((2000, 2000), 255, np.uint8)
    cv2.circle(img, (1000, 1000), 800, 0, 1, cv2.LINE_8)  # one pixel wide, shrunk 4x
    em = sketch_edges(img)
    r = 400 / 1601 * 800
    rad = np.hypot(em.x, em.y)
    assert len(em) > 0.8 * 2 * np.pi * r * 0.9
    assert np.abs(rad - r).max() < 2.0


def test_sketch_orientation_follows_the_stroke():
    img = np.full((500, 500), 255, np.uint8)
    cv2.circle(img, (250, 250), 200, 0, 5, cv2.LINE_AA)
    em = sketch_edges(img)
    true = np.mod(np.arctan2(em.y, em.x) + np.pi / 2, np.pi)
    err = _orient_diff(em.theta, true)
    assert np.median(err) < np.radians(3) and np.percentile(err, 95) < np.radians(8)


# ------------------------------------------------------------------ SYSU-Shapes (slow)


def test_a_dot_or_a_filled_blob_is_no_shape_to_search():
    """A click (a dot) or a filled blob thins to its medial axis, which some edges of any photo fit: a click was
    a 72 % match in the app.  It is refused with words; outlines, however small or thick-stroked, are not."""
    for draw in (lambda c: c.__setitem__((slice(195, 205), slice(195, 205)), 0),  # a square dot
                 lambda c: cv2.circle(c, (200, 200), 3, 0, -1),  # a click with a round pen
                 lambda c: cv2.circle(c, (200, 200), 60, 0, -1)):  # a filled disc
        canvas = np.full((400, 400), 255, np.uint8)
        draw(canvas)
        with pytest.raises(ValueError, match="only a dot or a filled blob: draw the outline"):
            sketch_edges(canvas)
    for draw in (lambda c: cv2.circle(c, (200, 200), 12, 0, 4),  # a ring six stroke widths across
                 lambda c: cv2.line(c, (190, 200), (205, 200), 0, 6),  # a short thick dash
                 lambda c: (cv2.rectangle(c, (100, 100), (300, 300), 0, 3),  # an outline with a filled part
                            cv2.circle(c, (200, 200), 30, 0, -1))):
        canvas = np.full((400, 400), 255, np.uint8)
        draw(canvas)
        assert len(sketch_edges(canvas)) > 100


def test_zhang_suen_is_scikit_images_thinning_without_importing_skimage_morphology():
    """The thinning of sketches is scikit-image's compiled Zhang-Suen loaded on its own (no scipy.ndimage on
    the query path) and gives exactly ``skimage.morphology.skeletonize``'s skeleton."""
    import subprocess
    import sys

    code = ("import sys; from engine.edges import zhang_suen; f = zhang_suen(); "
            "print(f.__name__, 'scipy.ndimage' in sys.modules, 'skimage.morphology' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["_fast_skeletonize", "False", "False"]
    from skimage.morphology import skeletonize

    thin = E.zhang_suen()
    rng = np.random.default_rng(3)
    for _ in range(30):
        img = np.zeros((90, 110), np.uint8)
        for _ in range(5):
            p, q = rng.integers(0, 90, 2), rng.integers(0, 90, 2)
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]) + 15, int(q[1])), 1, int(rng.integers(1, 9)))
        cv2.circle(img, (55, 45), int(rng.integers(5, 40)), 1, int(rng.integers(1, 6)))
        blob = img.astype(bool)
        got = thin(blob)
        assert got.dtype == bool and np.array_equal(got, skeletonize(blob))


def test_sketch_edges_do_not_import_scipy():
    """The first sketch query of a launch pays no scipy import (0.4 s on the 2-core machine)."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from engine.edges import sketch_edges; img = np.ones((200, 200, 3), "
            "np.float32); img[50:150, 60:64] = 0; img[50:54, 60:150] = 0; sketch_edges(img); "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('scipy', 'skimage')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in out if m.startswith("scipy") or m in ("skimage", "skimage.morphology")], out


# ------------------------------------------------------------------ the faster formulations equal the former ones


def _former_wrap_pi(angle):
    a = np.mod(angle, np.pi).astype(np.float32)
    a[a >= np.float32(np.pi)] = 0.0
    return a


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same dtype, shape and bytes (so -0.0 differs from 0.0 and NaNs match)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _angles(rng, shape=(31, 17)) -> list[np.ndarray]:
    pi32 = np.float32(np.pi)
    wrapped = rng.uniform(0, np.pi, shape).astype(np.float32)
    wrapped[wrapped >= pi32] = 0.0
    wrapped.flat[:4] = [0.0, -0.0, np.nextafter(pi32, np.float32(0)), np.float32(1e-40)]
    edge = wrapped.copy()
    edge.flat[5] = pi32  # exactly float32's pi
    out = [wrapped, edge, rng.uniform(-10, 10, shape).astype(np.float32), rng.uniform(-10, 10, shape),
           wrapped.astype(np.float64), np.float64(np.pi) * np.ones(shape), wrapped.astype(np.float16),
           np.zeros(shape, np.float32), -np.zeros(shape, np.float32), np.zeros((0,), np.float32),
           wrapped[:1, :1], wrapped[:, ::2], np.arange(-5, 6), [0.5, 4.0]]
    for special in (np.nan, np.inf, -np.inf, -1e-7):
        a = wrapped.copy()
        a.flat[7] = special
        out.append(a)
    return out


@pytest.mark.filterwarnings("ignore:invalid value encountered in remainder:RuntimeWarning")
def test_wrap_pi_equals_its_former_formulation():
    for a in _angles(np.random.default_rng(11)):
        new = E.wrap_pi(a)
        assert _same(new, _former_wrap_pi(a)), a
        assert new is not a and not np.shares_memory(new, np.asarray(a))  # a new array, as before


def _former_edges_from_maps(strength, theta, *, scale, min_strength=0.2):
    mask = (strength >= min_strength) & (strength > 0)
    strength, theta = np.minimum(strength, 1.0), _former_wrap_pi(theta)
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    return EdgeMap(x=(cols - (w - 1) / 2.0).astype(np.float32), y=(rows - (h - 1) / 2.0).astype(np.float32),
                   theta=np.ascontiguousarray(theta[rows, cols], np.float32),
                   w=np.ascontiguousarray(strength[rows, cols], np.float32), width=int(w), height=int(h),
                   scale=float(scale), origin=(0.0, 0.0))


@pytest.mark.filterwarnings("ignore:invalid value encountered in remainder:RuntimeWarning")
def test_edges_from_maps_equals_its_former_formulation():
    rng = np.random.default_rng(12)
    for theta in _angles(rng):
        theta = np.asarray(theta)
        if theta.ndim != 2:
            continue
        for strength in (rng.random(theta.shape).astype(np.float32) * 1.5, rng.random(theta.shape),
                         np.zeros(theta.shape, np.float32)):
            strength.flat[:3] = [np.nan, np.inf, 1.0]
            for min_strength in (0.2, 0.0, -1.0):
                new = E.edges_from_maps(strength, theta, scale=0.25, min_strength=min_strength)
                former = _former_edges_from_maps(strength, theta, scale=0.25, min_strength=min_strength)
                for name in ("x", "y", "theta", "w"):
                    assert _same(getattr(new, name), getattr(former, name)), name
                assert (new.width, new.height, new.scale, new.origin) == \
                       (former.width, former.height, former.scale, former.origin)
    # a photo's own maps
    strength, theta = get_detector("classical")(_square(120, 90, (20, 30, 70, 100)))
    new, former = E.edges_from_maps(strength, theta, scale=1.0), _former_edges_from_maps(strength, theta, scale=1.0)
    assert len(new) > 100
    assert all(_same(getattr(new, name), getattr(former, name)) for name in ("x", "y", "theta", "w"))


def test_hysteresis_equals_its_former_formulation():
    def former(strength, low, high, min_length=0):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((strength >= low).astype(np.uint8), connectivity=8)
        keep = np.zeros(n, bool)
        keep[np.unique(labels[strength >= high])] = True
        keep[0] = False
        if min_length > 1:
            keep &= stats[:, cv2.CC_STAT_AREA] >= min_length
        return keep[labels]

    rng = np.random.default_rng(13)
    maps = []
    for shape in ((1, 1), (3, 2), (64, 80), (300, 400)):
        strength = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 1.5)
        strength.flat[0] = np.nan
        maps.append(strength)
    det = get_detector("classical")
    scene = cv2.GaussianBlur(rng.random((240, 320, 3)).astype(np.float32), (0, 0), 3.0)  # a textured photo
    c, theta = det.contrast_map(scene / scene.max())
    maps.append(1.0 - np.exp(-E.non_max_suppression(c, theta) / det.contrast))  # what the detector thresholds
    for strength in maps:
        for low, high, min_length in ((0.3, 0.6, 0), (0.45, 0.5, 4), (0.0, 2.0, 0), (0.5, 0.0, 16),
                                      (det.low, det.high, det.min_length), (0.01, 0.02, 16)):
            new = E.hysteresis(strength, low, high, min_length=min_length)
            assert new.dtype == bool and np.array_equal(new, former(strength, low, high, min_length))
    assert E.hysteresis(maps[-1], 0.01, 0.02, min_length=16).any()
