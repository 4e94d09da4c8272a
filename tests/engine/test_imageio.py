"""engine.imageio: every layout becomes (H, W, 3) float32 RGB in [0, 1]; every failure an ImageError."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import SketchSearchError
from engine.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    SKETCH_HEADROOM,
    ImageError,
    LoadedImage,
    load_image,
    load_sketch,
    to_rgb,
)

ROOT = Path(__file__).resolve().parents[2]


def _check_layout(img: LoadedImage, size: tuple[int, int]) -> np.ndarray:
    px = img.pixels
    assert px.dtype == np.float32 and px.ndim == 3 and px.shape[2] == 3
    assert px.shape[:2] == (size[1], size[0])
    assert px.min() >= 0.0 and px.max() <= 1.0
    return px


# ------------------------------------------------------------------ to_rgb

def test_to_rgb_layouts_and_dtypes():
    grey = np.array([[0, 255]], np.uint8)
    assert np.allclose(to_rgb(grey), [[[0, 0, 0], [1, 1, 1]]])
    assert np.allclose(to_rgb(grey[:, :, None]), to_rgb(grey))
    assert np.allclose(to_rgb(np.array([[0, 65535]], np.uint16)), to_rgb(grey))
    assert np.allclose(to_rgb(np.array([[False, True]])), to_rgb(grey))
    assert np.allclose(to_rgb(np.array([[-0.5, 2.0]], np.float64)), to_rgb(grey))
    assert np.allclose(to_rgb(np.array([[0, 255]], np.int32)), to_rgb(grey))  # 8-bit data in 'I' mode
    assert np.allclose(to_rgb(np.array([[0, 65535]], np.int32)), to_rgb(grey))  # 16-bit data in 'I' mode
    assert to_rgb(np.array([[np.nan]])).max() == 0.0
    out = to_rgb(np.zeros((4, 5, 3), np.uint8))
    assert out.dtype == np.float32 and out.shape == (4, 5, 3) and out.flags.c_contiguous


def test_to_rgb_alpha_composited_on_white():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # transparent black -> white
    rgba[0, 2] = (0, 0, 0, 128)  # half black -> mid grey
    out = to_rgb(rgba)
    assert np.allclose(out[0, 0], [1, 0, 0])
    assert np.allclose(out[0, 1], [1, 1, 1])
    assert np.allclose(out[0, 2], 1 - 128 / 255, atol=1e-6)
    la = np.array([[[0, 0], [0, 255]]], np.uint8)  # grey + alpha
    assert np.allclose(to_rgb(la), [[[1, 1, 1], [0, 0, 0]]])


def _former_to_rgb(array) -> np.ndarray:
    """to_rgb as it was written before float samples already in [0, 1] skipped nan_to_num and clip."""
    from engine.imageio import _scale_integers

    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype == bool:
        f = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        f = _scale_integers(a)
    else:
        f = np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0), 0.0, 1.0)
    if f.shape[2] in (2, 4):
        alpha = f[:, :, -1:]
        f = f[:, :, :-1] * alpha + (1.0 - alpha)
    if f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.ascontiguousarray(f, dtype=np.float32)


def test_to_rgb_equals_its_former_formulation():
    rng = np.random.default_rng(3)
    arrays = []
    for shape in ((1, 1), (1, 1, 1), (5, 7), (5, 7, 1), (5, 7, 2), (5, 7, 3), (5, 7, 4), (64, 48, 3)):
        unit = rng.random(shape).astype(np.float32)
        unit.flat[0] = 0.0
        arrays += [unit, unit.astype(np.float64), unit.astype(np.float16), np.asfortranarray(unit),
                   (rng.integers(0, 256, shape)).astype(np.uint8), rng.integers(0, 65536, shape).astype(np.uint16),
                   rng.integers(0, 256, shape).astype(np.int32), rng.integers(0, 65536, shape).astype(np.int32),
                   rng.random(shape) < 0.5, rng.uniform(-0.5, 1.5, shape).astype(np.float32)]
        for special in (-0.0, 1.0, np.nextafter(np.float32(1), np.float32(2)), np.float32(1e-40), -1e-40, np.nan,
                        np.inf, -np.inf):
            a = unit.copy()
            a.flat[-1] = special
            arrays.append(a)
        arrays.append(np.full(shape, np.nan, np.float32))
        arrays.append(np.float64(1.0) + 1e-12 * unit)  # rounds to 1 in float32
    arrays.append(np.ones((6, 6, 3), np.float32)[::2, ::-2])  # a strided view
    for a in arrays:
        new, former = to_rgb(a), _former_to_rgb(a)
        assert new.dtype == former.dtype and new.shape == former.shape and new.tobytes() == former.tobytes(), a
        assert new.flags.c_contiguous and not np.shares_memory(new, a)


@pytest.mark.parametrize("shape", [(4,), (4, 4, 5), (0, 4), (2, 2, 2, 2)])
def test_to_rgb_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        to_rgb(np.zeros(shape, np.uint8))


# ------------------------------------------------------------------ load_image: formats and modes

def test_exports():
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"} <= IMAGE_EXTENSIONS
    assert isinstance(IMAGE_EXTENSIONS, frozenset)
    assert DEFAULT_MAX_PIXELS == 200_000_000
    assert issubclass(ImageError, Exception) and issubclass(ImageError, SketchSearchError)


def test_grey_png(tmp_path):
    a = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (7, 1))
    p = tmp_path / "grey.png"
    Image.fromarray(a, "L").save(p)
    img = load_image(p)
    px = _check_layout(img, (25, 7))
    assert img.original_size == (25, 7)
    assert np.allclose(px[:, :, 0], a / 255.0) and np.allclose(px[:, :, 0], px[:, :, 2])


def test_rgb_png_exact(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    p = tmp_path / "rgb.png"
    Image.fromarray(a, "RGB").save(p)
    px = _check_layout(load_image(str(p)), (11, 9))
    assert np.array_equal(np.rint(px * 255).astype(np.uint8), a)


def test_rgba_png_transparent_is_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[:2] = (0, 0, 255, 255)  # opaque blue top half, transparent black bottom half
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    px = _check_layout(load_image(p), (4, 4))
    assert np.allclose(px[:2], [0, 0, 1]) and np.allclose(px[2:], 1.0)


def test_palette_png_with_transparency(tmp_path):
    im = Image.new("P", (6, 4), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))  # index 0 black, 1 red
    im.paste(1, (0, 0, 3, 4))
    im.info["transparency"] = 0
    p = tmp_path / "pal.png"
    im.save(p, transparency=0)
    px = _check_layout(load_image(p), (6, 4))
    assert np.allclose(px[:, :3], [1, 0, 0])  # red, opaque
    assert np.allclose(px[:, 3:], 1.0)  # transparent black -> white


def test_16bit_png(tmp_path):
    a = np.array([[0, 1000, 32768, 65535]], np.uint16).repeat(3, axis=0)
    p = tmp_path / "deep.png"
    Image.fromarray(a).save(p)
    px = _check_layout(load_image(p), (4, 3))
    assert np.allclose(px[0, :, 0], a[0] / 65535.0, atol=1e-6)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)  # no cyan, full magenta+yellow: red
    px = _check_layout(load_image(p), (16, 16))
    r, g, b = px.reshape(-1, 3).mean(axis=0)
    assert r > 0.8 and g < 0.2 and b < 0.2


def test_exif_orientation_6_is_turned_upright(tmp_path):
    # stored 60x40 landscape with a red top band; orientation 6 = turn 90 degrees clockwise to view
    a = np.zeros((40, 60, 3), np.uint8)
    a[:, :] = (0, 0, 255)
    a[:10] = (255, 0, 0)
    im = Image.fromarray(a, "RGB")
    exif = im.getexif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    im.save(p, exif=exif.tobytes(), quality=95)
    img = load_image(p)
    px = _check_layout(img, (40, 60))
    assert img.original_size == (40, 60)
    assert px[:, -5:, 0].mean() > 0.8 and px[:, -5:, 2].mean() < 0.2  # the red band is now at the right
    assert px[:, :20, 2].mean() > 0.8


def test_exif_orientation_with_draft_keeps_full_original_size(tmp_path):
    a = np.zeros((1200, 1600, 3), np.uint8)
    a[:300] = 255
    im = Image.fromarray(a, "RGB")
    exif = im.getexif()
    exif[0x0112] = 6
    p = tmp_path / "big.jpg"
    im.save(p, exif=exif.tobytes())
    img = load_image(p, max_side=400)
    assert img.original_size == (1200, 1600)
    h, w = img.pixels.shape[:2]
    assert 400 <= max(h, w) < 1600 and h > w  # a reduced decode, still upright and at least max_side
    assert img.pixels[:, -int(w * 0.2):].mean() > 0.8  # the white band on the right


def test_max_side_reduces_png_but_not_below(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (1000, 500), (10, 20, 30)).save(p)
    img = load_image(p, max_side=300)
    assert img.original_size == (1000, 500)
    assert 300 <= img.pixels.shape[1] < 1000
    full = load_image(p)
    assert full.pixels.shape == (500, 1000, 3)


def test_first_frame_of_animated_gif(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    px = _check_layout(load_image(p), (8, 8))
    assert np.allclose(px.reshape(-1, 3).mean(axis=0), [1, 0, 0], atol=0.02)


def test_first_page_of_multipage_tiff(tmp_path):
    pages = [Image.new("L", (5, 5), v) for v in (200, 50)]
    p = tmp_path / "pages.tiff"
    pages[0].save(p, save_all=True, append_images=pages[1:])
    px = _check_layout(load_image(p), (5, 5))
    assert np.allclose(px, 200 / 255)


@pytest.mark.parametrize("mode,value,expected", [("1", 1, 1.0), ("F", 0.25, 0.25), ("I", 1000, 1000 / 65535)])
def test_other_modes(tmp_path, mode, value, expected):
    p = tmp_path / f"m_{mode}.tiff"
    Image.new(mode, (3, 2), value).save(p)
    px = _check_layout(load_image(p), (3, 2))
    assert np.allclose(px, expected, atol=1e-6)


@pytest.mark.parametrize("ext", ["webp", "bmp"])
def test_other_formats(tmp_path, ext):
    p = tmp_path / f"x.{ext}"
    Image.new("RGB", (7, 5), (255, 255, 255)).save(p)
    _check_layout(load_image(p), (7, 5))


# ------------------------------------------------------------------ load_image: failures

def _assert_image_error(path, *, match: str, **kw) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_image(path, **kw)
    e = info.value
    assert e.path == os.fspath(path)
    assert str(e).startswith(os.fspath(path) + ": ")
    assert "\n" not in str(e)
    assert match in e.reason.lower(), e.reason
    return e


def test_missing_file(tmp_path):
    _assert_image_error(tmp_path / "nope.jpg", match="not found")


def test_directory(tmp_path):
    d = tmp_path / "photos.jpg"
    d.mkdir()
    _assert_image_error(d, match="directory")


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _assert_image_error(p, match="empty")


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n" * 10)
    _assert_image_error(p, match="not a recognised image")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path, fmt):
    rng = np.random.default_rng(1)
    p = tmp_path / ("t.jpg" if fmt == "JPEG" else "t.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p, format=fmt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _assert_image_error(p, match="cannot decode the image, truncated or corrupt")
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "Error:" not in str(e.value)  # the decoder's words, not its exception's name (OSError: ...)


def test_too_large_refused_and_pillow_limit_untouched(tmp_path):
    p = tmp_path / "wide.png"
    Image.new("L", (50, 40)).save(p)
    before = Image.MAX_IMAGE_PIXELS
    e = _assert_image_error(p, match="too large", max_pixels=1000)
    assert "decompression bomb" in e.reason
    assert Image.MAX_IMAGE_PIXELS == before
    assert load_image(p, max_pixels=2000).pixels.shape == (40, 50, 3)
    assert load_image(p, max_pixels=None).pixels.shape == (40, 50, 3)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path):
    p = tmp_path / "secret.png"
    Image.new("L", (4, 4)).save(p)
    p.chmod(0)
    try:
        _assert_image_error(p, match="permission")
    finally:
        p.chmod(0o644)


# ------------------------------------------------------------------ load_sketch: large sketches at the working size

def _block_min(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape[:2]
    return a.reshape(h // f, f, w // f, f, -1).min(axis=(1, 3))


def test_a_small_sketch_is_read_as_load_image_reads_it(tmp_path):
    rng = np.random.default_rng(3)
    p = tmp_path / "s.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 4), dtype=np.uint8)).save(p)
    a, b = load_sketch(p, max_side=100), load_image(p)  # 400 < 2 * SKETCH_HEADROOM * 100: no reduction
    assert a.original_size == b.original_size and np.array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_large_sketch_is_reduced_the_right_way_up(tmp_path, orientation):
    """The reduced decode is the block minimum (darkest sample) of the full decode, in every EXIF orientation."""
    rng = np.random.default_rng(orientation)
    a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    p = tmp_path / "s.png"
    im.save(p, exif=exif.tobytes())
    full = load_image(p)
    small = load_sketch(p, max_side=2)  # longer side 64 >= 2 * SKETCH_HEADROOM * 2: reduced by 64 // 8 = 8
    assert SKETCH_HEADROOM == 4 and small.original_size == full.original_size
    assert small.pixels.shape == (full.pixels.shape[0] // 8, full.pixels.shape[1] // 8, 3)
    assert np.array_equal(small.pixels, _block_min(full.pixels, 8))


def test_a_large_sketch_keeps_its_alpha_strokes_and_its_thin_edge_strokes(tmp_path):
    a = np.zeros((90, 100, 4), np.uint8)  # transparent black paper
    a[40, :, :] = (255, 255, 255, 255)  # a one-pixel opaque white line (the alpha is the ink)
    a[:, 99] = (0, 0, 0, 255)  # a one-pixel black line in the last (partial) block column
    p = tmp_path / "alpha.png"
    Image.fromarray(a, "RGBA").save(p)
    px = load_sketch(p, max_side=3).pixels  # reduced by 100 // 12 = 8: 12 x 13 blocks
    assert px.shape == (12, 13, 3)
    assert px[:, -1].max() == 0.0  # the black line, in the partial blocks
    assert px[5, :-1].max() == 0.0 and px[4, :-1].min() == 1.0  # the line's blocks are ink, the others paper


def test_a_thin_stroke_sketch_gives_the_edges_of_its_full_decode(tmp_path):
    import cv2

    from engine.edges import sketch_edges

    img = np.full((3000, 4000), 255, np.uint8)
    pts = np.array([(600, 500), (3400, 700), (3000, 2600), (900, 2300)], np.int32)
    cv2.polylines(img, [pts], True, 0, 1)  # one-pixel strokes
    cv2.circle(img, (2000, 1500), 500, 0, 1)
    p = tmp_path / "thin.png"
    cv2.imwrite(str(p), img)
    small = load_sketch(p, max_side=200)  # reduced by 4000 // 800 = 5
    assert max(small.pixels.shape) == 800
    a, b = sketch_edges(small.pixels, max_side=200), sketch_edges(load_image(p).pixels, max_side=200)
    assert (a.width, a.height) == (b.width, b.height)
    pa, pb = np.c_[a.x, a.y], np.c_[b.x, b.y]
    d = np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(-1))
    assert d.min(axis=1).mean() < 1.0 and d.min(axis=0).mean() < 1.0  # the same strokes, to a pixel
    assert 0.8 < len(pa) / len(pb) < 1.25


_PEAK = """
import sys, time
from engine.collection import SketchIndex


def kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


index = SketchIndex(sys.argv[1])
index.sketch_query(sys.argv[2])  # warm: every import of the sketch pipeline
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident size starts again from what is resident now
before = kb("VmRSS:")
t0 = time.perf_counter()
edges = index.sketch_query(sys.argv[3])
seconds = time.perf_counter() - t0
print((kb("VmHWM:") - before) // 1024, len(edges.x), round(seconds, 2))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures the peak memory in /proc")
def test_a_huge_sketch_is_searched_at_its_working_size(tmp_path):
    """A 12000 x 9000 sketch (108 megapixels): decoded to full-size float arrays it took 5.7 GB; at the
    working size its query needs little more than the file's own 8-bit decode (108 MB)."""
    import cv2

    from engine.indexer import index_folders

    from .synth import photo_with_shape, sketch_of

    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "p.jpg"), photo_with_shape("star", (100, 30, 500, 430), seed=2))
    index_folders([tmp_path / "photos"], tmp_path / "db", workers=1, backbone="none")
    cv2.imwrite(str(tmp_path / "small.png"), sketch_of("star"))
    big = np.full((9000, 12000), 255, np.uint8)
    big[3000:6000, 4500:7500] = sketch_of("star", size=3000, width=3)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    del big
    r = subprocess.run([sys.executable, "-c", _PEAK, str(tmp_path / "db"), str(tmp_path / "small.png"),
                        str(tmp_path / "big.png")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    mb, points, seconds = r.stdout.split()
    print(f"12000 x 9000 sketch: +{mb} MB peak, {seconds} s, {points} edge points")
    assert int(points) > 100 and int(mb) < 800
