"""A region of a photo as the query: the crop, its shape as a sketch, the fused ranking and the checks."""
import numpy as np
import pytest
from PIL import Image

import engine.region as region_module
from engine.collection import SketchIndex
from engine.errors import QueryError
from engine.filters import PhotoFilter
from engine.hits import Hit
from engine.indexer import index_folders
from engine.region import RRF_K, fuse_rankings, parse_region, region_pixels, region_sketch, stretched

from .synth import photo_with_shape

SHAPES = ("arrow", "house", "ell", "star")
BOX = (180, 90, 520, 420)


def test_parse_region():
    assert parse_region(" 1,2.5, 30 ,40") == (1.0, 2.5, 30.0, 40.0)
    for bad in ("1,2,3", "a,b,c,d", "1,2,3,4,5", "1,2,nan,4", ""):
        with pytest.raises(QueryError, match="not four numbers"):
            parse_region(bad)


def test_region_pixels_crops_the_original_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.random((60, 80, 3)).astype(np.float32)
    for box in [(0, 0, 80, 60), (10.2, 5.7, 33.1, 41.0), (70, 50, 200, 200), (-5, -5, 3, 4)]:
        got = region_pixels(pixels, box, min_side=10)
        x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x1, y1 = min(int(np.ceil(box[2])), 80), min(int(np.ceil(box[3])), 60)
        assert np.array_equal(got, pixels[y0:y1, x0:x1])  # brute force: the pixels the box covers


@pytest.mark.parametrize("box, words", [((10, 10, 10, 50), "no area"), ((30, 30, 20, 50), "no area"),
                                        ((100, 0, 120, 10), "outside"), ((0, -20, 10, -1), "outside"),
                                        ((0, 0, 0.5, 40), "too small")])
def test_bad_regions_are_one_line_errors(box, words):
    with pytest.raises(QueryError, match=words):
        region_pixels(np.zeros((60, 80, 3), np.float32), box, min_side=10)


def test_region_of_a_file_is_in_the_photo_after_exif_orientation(tmp_path):
    """The region's coordinates are those of the photo the right way up (as hits' boxes are)."""
    a = np.zeros((40, 100, 3), np.uint8)  # stored 100 wide, 40 high; a white block at the stored top left
    a[:10, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 40 wide, 100 high, the block at the top right
    Image.fromarray(a).save(tmp_path / "turned.png", exif=exif)
    got = region_pixels(tmp_path / "turned.png", (30, 0, 40, 20), min_side=1000)
    assert got.shape[:2] == (20, 10) and got.mean() > 0.95
    small = region_pixels(tmp_path / "turned.png", (30, 0, 40, 20), min_side=8)  # decoded reduced: the same place
    assert small.shape[0] < 20 and small.mean() > 0.9
    with pytest.raises(QueryError, match="outside"):
        region_pixels(tmp_path / "turned.png", (50, 0, 60, 10), min_side=5)
    with pytest.raises(QueryError, match="not found"):
        region_pixels(tmp_path / "missing.jpg", (0, 0, 5, 5), min_side=5)


def test_a_flat_region_has_no_shape():
    with pytest.raises(QueryError, match="no edges"):
        region_sketch(np.full((80, 80, 3), 0.5, np.float32), detector="classical", max_side=400, min_strength=0.2)


def _pale_triangle(contrast: float, noise: float = 0.0, seed: int = 0, ground: float = 0.85) -> np.ndarray:
    """A pale triangle on a pale ground (a white sail on a light sky): ``contrast`` apart in every channel."""
    import cv2

    img = np.full((240, 240, 3), ground, np.float32)
    cv2.fillPoly(img, [np.array([[120, 20], [210, 220], [40, 220]], np.int32)], (ground + contrast,) * 3)
    if noise:
        img += np.random.default_rng(seed).normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def test_a_pale_shape_on_a_pale_ground_is_read_with_its_contrast_stretched(monkeypatch):
    """The detector's strengths are absolute (a step of some 21 Lab units starts an edge): a white sail on a light
    sky (found under Xvfb on the demo's sailboat) had no edges as a region and 'both' dropped its shape
    silently.  Such a region is read again with its brightness range stretched (at most STRETCH_GAIN times)."""
    sail = _pale_triangle(0.08, noise=0.004)
    edges = region_sketch(sail, detector="classical", max_side=400, min_strength=0.2)
    assert len(edges) > 100
    xs = edges.x - edges.x.min()  # the sketch is cropped to the triangle: wide at the bottom, a point on top
    top = xs[edges.y <= np.percentile(edges.y, 10)]
    bottom = xs[edges.y >= np.percentile(edges.y, 90)]
    assert np.ptp(bottom) > 3 * np.ptp(top)
    monkeypatch.setattr(region_module, "stretched", lambda pixels: None)  # read as it was: no edges
    with pytest.raises(QueryError, match="no edges"):
        region_sketch(sail, detector="classical", max_side=400, min_strength=0.2)


def test_stretching_widens_a_narrow_range_at_most_its_gain_and_leaves_grain_without_edges():
    sail = _pale_triangle(0.3, ground=0.6)
    wide = stretched(sail)
    assert wide.dtype == np.float32 and wide.min() == 0.0 and wide.max() == 1.0
    faint = stretched(_pale_triangle(0.02))  # widened STRETCH_GAIN times, not to the full range
    assert np.ptp(faint) == pytest.approx(0.02 * region_module.STRETCH_GAIN, abs=1e-5)
    assert stretched(np.full((20, 20, 3), 0.4, np.float32)) is None  # nothing to widen
    full = np.zeros((20, 20, 3), np.float32)
    full[:, 10:] = 1.0
    assert stretched(full) is None  # the whole range already
    grain = np.clip(0.6 + np.random.default_rng(3).normal(0, 0.01, (200, 200, 3)), 0, 1).astype(np.float32)
    with pytest.raises(QueryError, match="no edges"):  # a plain wall's grain stays under the threshold
        region_sketch(grain, detector="classical", max_side=400, min_strength=0.2)


def _hit(rank, row, box=(0.0, 0.0, 10.0, 10.0)):
    return Hit(rank, f"/p/{row}.jpg", 0.5, box, 1.0, False, row)


def test_fuse_rankings_is_reciprocal_rank_fusion():
    shape = [_hit(1, 7, (1, 2, 3, 4)), _hit(2, 3, (5, 6, 7, 8)), _hit(3, 9, (1, 1, 2, 2))]
    image = [_hit(1, 3), _hit(2, 5), _hit(3, 7)]
    got = fuse_rankings(shape, image, 10)
    expect = {7: 1 / (RRF_K + 1) + 1 / (RRF_K + 3), 3: 1 / (RRF_K + 2) + 1 / (RRF_K + 1),
              9: 1 / (RRF_K + 3), 5: 1 / (RRF_K + 2)}
    order = sorted(expect, key=lambda r: -expect[r])
    assert [h.row for h in got] == order
    assert [h.rank for h in got] == [1, 2, 3, 4]
    assert np.allclose([h.score for h in got], [expect[r] / (2 / (RRF_K + 1)) for r in order])
    assert got[order.index(3)].box == (5, 6, 7, 8)  # the shape ranking's box
    assert fuse_rankings(shape, image, 2) == got[:2]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i in range(12):
        Image.fromarray(photo_with_shape(SHAPES[i % 4], BOX, seed=i)).save(root / f"{SHAPES[i % 4]}_{i}.jpg")
    db = tmp_path_factory.mktemp("db") / "index"
    index_folders([root], db, workers=1)
    return root, db


@pytest.mark.parametrize("mode", ["image", "shape", "both"])
def test_region_query_finds_the_same_shape(collection, mode):
    root, db = collection
    ix = SketchIndex(db)
    query = root / "house_1.jpg"
    hits = ix.search_region(query, BOX, mode=mode, top_k=4)
    assert len(hits) == 4
    top = [h.path.rsplit("/", 1)[1].split("_")[0] for h in hits]
    assert top.count("house") >= 2, top
    if mode != "image":  # a shape query boxes the shape
        h = next(h for h in hits if "house" in h.path and not h.path.endswith("house_1.jpg"))
        x0, y0, x1, y1 = h.box
        assert x0 < BOX[0] + 80 and x1 > BOX[2] - 80 and y0 < BOX[1] + 80 and y1 > BOX[3] - 80, h.box


def test_region_query_checks_its_mode_and_takes_a_filter(collection, tmp_path):
    root, db = collection
    ix = SketchIndex(db)
    with pytest.raises(QueryError, match="mode"):
        ix.search_region(root / "house_1.jpg", BOX, mode="sketch")
    assert ix.search_region(root / "house_1.jpg", BOX, filt=PhotoFilter(under=str(tmp_path))) == []


def test_a_region_is_decoded_large_enough_whatever_its_shape(tmp_path):
    """The decode size is set by the region's longer side against the photo's longer side (a tall strip of a
    wide photo, a box past the photo's edges)."""
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((300, 400, 3)) * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    strip = region_pixels(tmp_path / "wide.png", (0, 0, 50, 300), min_side=100)
    assert max(strip.shape[:2]) >= 100
    whole = region_pixels(tmp_path / "wide.png", (0, 0, 99999, 99999), min_side=100)  # clipped to the photo
    assert max(whole.shape[:2]) >= 100 and whole.shape[1] > whole.shape[0]


def test_both_falls_back_to_the_image_for_a_region_without_edges(collection):
    root, db = collection
    flat = np.full((200, 200, 3), 0.5, np.float32)
    with pytest.raises(QueryError, match="no edges"):
        SketchIndex(db).search_region(flat, (0, 0, 200, 200), mode="shape")
    notes = []
    hits = SketchIndex(db).search_region(flat, (0, 0, 200, 200), mode="both", top_k=3, notes=notes)
    image = SketchIndex(db).search_region(flat, (0, 0, 200, 200), mode="image", top_k=3)
    assert [h.path for h in hits] == [h.path for h in image] and [h.rank for h in hits] == [1, 2, 3]
    assert len(notes) == 1 and notes[0].ranked_by == "image" and "no edges" in notes[0].why
    assert str(notes[0]) == f"{notes[0].why}; searched by the region's image alone"
    notes.clear()
    SketchIndex(db).search_region(root / "house_1.jpg", BOX, mode="both", top_k=3, notes=notes)
    assert notes == []  # both searches ran


@pytest.mark.parametrize("mode", ["shape", "both"])
def test_the_query_photo_is_boxed_on_the_region_itself(collection, mode):
    """Searched by its shape, a region's own photo comes back boxed on the region (the alignment keeps a sketch
    at 60-100 % of a photo: a smaller region was boxed elsewhere in its own photo); the other hits are the shape
    ranking's; pixels instead of a file leave every box to the alignment."""
    root, db = collection
    ix = SketchIndex(db)
    query = root / "star_3.jpg"
    w, h = Image.open(query).size
    region = (-20.0, 100.0, 300.0, 330.0)  # part of the star, past the photo's left edge
    hits = ix.search_region(query, region, mode=mode, top_k=12)  # all: the own photo among them
    own = [x for x in hits if x.path.endswith("star_3.jpg")]
    assert len(own) == 1 and own[0].box == (0.0, 100.0, 300.0, 330.0) and own[0].box_sure
    assert own[0].scale == pytest.approx(300 / max(w, h)) and not own[0].mirrored
    plain = {x.path: x for x in ix.search_region(np.asarray(Image.open(query), np.float32) / 255, region,
                                                 mode=mode, top_k=12)}
    assert all(x.box == plain[x.path].box for x in hits if x is not own[0] and x.path in plain)
    assert own[0].path in plain and plain[own[0].path].box != own[0].box
