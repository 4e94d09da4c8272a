"""Rotation in searches: rotated/mirrored/rescaled copies and re-photographed prints found (duplicates,
--rotation any), a result's curve."""
import json

import cv2
import numpy as np
import pytest

from app.cli import main
from engine.collection import SketchIndex
from engine.indexer import index_folders
from engine.rotsearch import curve_for_hit, find_duplicates, search_image_any_rotation, search_sketch_any_rotation

from .synth import on_white, photo_with_shape, sketch_of


def turn(img, degrees):
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    shapes = ["arrow", "house", "ell", "star"]
    for i in range(8):
        x0, y0 = 60 + 25 * i, 40 + 10 * i
        cv2.imwrite(str(root / f"p{i}.jpg"), photo_with_shape(shapes[i % 4], (x0, y0, x0 + 260, y0 + 260), seed=i))
    p1, p2, p3, p4 = (cv2.imread(str(root / f"p{i}.jpg")) for i in (1, 2, 3, 4))
    cv2.imwrite(str(root / "copy_p1_rot57.jpg"), turn(p1, 57))
    cv2.imwrite(str(root / "copy_p2_mirror_rot200.jpg"), turn(np.ascontiguousarray(p2[:, ::-1]), 200))
    cv2.imwrite(str(root / "copy_p3_small.jpg"), cv2.resize(p3, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 50])
    cv2.imwrite(str(root / "copy_p4_print37.jpg"), on_white(p4, 0.7, 37))  # a print of p4 on a page, re-photographed
    db = tmp_path_factory.mktemp("db") / "index"
    index_folders([root], db, workers=1)
    return root, db


def test_duplicates_groups_rotated_mirrored_and_rescaled_copies(collection, capsys):
    root, db = collection
    index = SketchIndex(db)
    groups = find_duplicates(index, threshold=0.93)  # the noisy clutter of these photos re-renders when rescaled
    names = [sorted(index.lookup([m[0]])[0][0].rsplit("/", 1)[1] for m in g) for g in groups]
    assert ["copy_p1_rot57.jpg", "p1.jpg"] in names
    assert ["copy_p2_mirror_rot200.jpg", "p2.jpg"] in names
    assert ["copy_p3_small.jpg", "p3.jpg"] in names
    assert ["copy_p4_print37.jpg", "p4.jpg"] in names
    assert len(groups) == 4  # the other photos share shapes, not content
    assert all(0 < m[1] <= 1.0 for g in groups for m in g)  # cosines (rounding printed 1.001)
    own = index.search_image(root / "p1.jpg", top_k=3)
    assert own[0].path.endswith("/p1.jpg") and own[0].score <= 1.0
    assert main(["duplicates", "--db", str(db), "--json", "--threshold", "0.93"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    mirrored = next(g for g in lines if any("mirror" in p["path"] for p in g["photos"]))
    assert any(p["mirrored"] for p in mirrored["photos"])
    turned = next(g for g in lines if any("rot57" in p["path"] for p in g["photos"]))
    angles = sorted(p["rotation"] for p in turned["photos"])
    assert angles[0] == 0 and min(abs(angles[1] - 57), abs(angles[1] - 303)) < 3



def test_duplicates_say_which_members_no_longer_exist(collection, tmp_path, capsys):
    """A group member whose file was deleted stays in the index until ``index --prune``; the group says so, or
    deleting its "other copies" could delete the only one left (found trying the app as a user)."""
    import shutil

    root, _ = collection
    d = tmp_path / "photos"
    d.mkdir()
    for name in ("p1.jpg", "copy_p1_rot57.jpg"):
        shutil.copy(root / name, d / name)
    db = tmp_path / "db"
    index_folders([d], db, workers=1)
    (d / "copy_p1_rot57.jpg").unlink()
    assert main(["duplicates", "--db", str(db), "--json", "--threshold", "0.93"]) == 0
    (group,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {p["path"].rsplit("/", 1)[1]: p["missing"] for p in group["photos"]} == \
        {"p1.jpg": False, "copy_p1_rot57.jpg": True}
    assert main(["duplicates", "--db", str(db), "--threshold", "0.93"]) == 0
    out = capsys.readouterr().out
    assert "copy_p1_rot57.jpg  (missing: the file no longer exists)" in out
    assert out.strip().endswith("1 group of near-duplicates among 2 photos; 1 of their files no longer exist "
                                "(`sketchsearch index FOLDER --db DB --prune` drops them)")


def test_image_search_at_any_rotation_finds_the_copy_with_its_angle(collection, capsys):
    root, db = collection
    hits, angles, flags = search_image_any_rotation(SketchIndex(db), root / "p1.jpg", top_k=3)
    assert [h.path.rsplit("/", 1)[1] for h in hits[:2]] == ["p1.jpg", "copy_p1_rot57.jpg"]
    assert abs(angles[1] - 57) < 3 and not flags[1]
    assert main(["search", "--db", str(db), "--image", str(root / "p2.jpg"), "--rotation", "any", "--json",
                 "--top", "2"]) == 0
    second = json.loads(capsys.readouterr().out.splitlines()[1])
    assert second["path"].endswith("copy_p2_mirror_rot200.jpg") and second["mirrored"]
    assert set(second) == {"rank", "path", "score", "box", "scale", "mirrored", "rotation"}


def test_a_print_turned_by_37_degrees_and_shrunk_on_white_is_found_and_grouped_at_the_default_threshold(collection):
    """A re-photographed print (70 %, turned by 37 deg, on a white page) and its photo find each other first with
    --rotation any, at their angle, and ``duplicates`` groups them at its default threshold."""
    root, db = collection
    index = SketchIndex(db)
    hits, angles, flags = search_image_any_rotation(index, root / "p4.jpg", top_k=3)
    assert [h.path.rsplit("/", 1)[1] for h in hits[:2]] == ["p4.jpg", "copy_p4_print37.jpg"]
    assert min(abs(angles[1] - 37), 360 - abs(angles[1] - 37)) < 3 and not flags[1] and hits[1].score > 0.95
    hits, angles, _ = search_image_any_rotation(index, root / "copy_p4_print37.jpg", top_k=3)
    assert [h.path.rsplit("/", 1)[1] for h in hits[:2]] == ["copy_p4_print37.jpg", "p4.jpg"]
    assert min(abs(angles[1] - 323), 360 - abs(angles[1] - 323)) < 3
    names = [sorted(index.lookup([m[0]])[0][0].rsplit("/", 1)[1] for m in g) for g in find_duplicates(index)]
    assert ["copy_p4_print37.jpg", "p4.jpg"] in names


def test_sketch_search_at_any_rotation_finds_a_turned_shape(tmp_path):
    from .synth import polygon

    root = tmp_path / "plain"
    root.mkdir()
    for name in ("arrow", "house", "ell", "star"):
        img = np.full((480, 640, 3), 200, np.uint8)
        cv2.fillPoly(img, [polygon(name, (180, 100, 460, 380)).astype(np.int32)], (60, 90, 120))
        cv2.imwrite(str(root / f"{name}.jpg"), turn(img, 90) if name == "arrow" else img)  # the arrow points up
    db = tmp_path / "db"
    index_folders([root], db, workers=1, backbone="none")
    sketch = tmp_path / "arrow.png"
    cv2.imwrite(str(sketch), sketch_of("arrow"))  # pointing right
    hits, angles = search_sketch_any_rotation(SketchIndex(db), sketch, top_k=4)
    assert hits[0].path.endswith("arrow.jpg") and abs(((angles[0] - 90) + 180) % 360 - 180) <= 30
    x0, y0, x1, y1 = hits[0].box  # boxed where the turned arrow is
    assert x0 < 330 < x1 and y0 < 250 < y1


def test_curve_for_a_sketch_hit_and_an_image_hit(collection, tmp_path):
    root, db = collection
    index = SketchIndex(db)
    sketch = tmp_path / "house.png"
    cv2.imwrite(str(sketch), sketch_of("house"))
    hit = next(h for h in index.search(sketch, top_k=3) if h.path.endswith(("p1.jpg", "p5.jpg")))
    curve = curve_for_hit(index, sketch, hit, kind="sketch")
    assert len(curve.angles) == 360 and min(curve.best_angle, 360 - curve.best_angle) < 20
    hit = next(h for h in index.search_image(root / "p1.jpg", top_k=11) if h.path.endswith("copy_p1_rot57.jpg"))
    curve = curve_for_hit(index, root / "p1.jpg", hit, kind="image")
    assert abs(curve.best_angle - 57) < 3 and not curve.mirrored and curve.best_similarity > 0.9


def test_blank_photos_are_never_duplicates(tmp_path, capsys):
    """Photos without edges have no polar descriptor (all zeros): their similarity is undefined, and the
    identical image descriptors of two blank photos do not make them copies."""
    root = tmp_path / "photos"
    root.mkdir()
    cv2.imwrite(str(root / "blank1.png"), np.full((300, 400, 3), 128, np.uint8))
    cv2.imwrite(str(root / "blank2.png"), np.full((300, 400, 3), 128, np.uint8))
    cv2.imwrite(str(root / "black.jpg"), np.zeros((200, 300, 3), np.uint8))
    photo = photo_with_shape("house", (60, 40, 320, 300), seed=4)
    cv2.imwrite(str(root / "house.jpg"), photo)
    cv2.imwrite(str(root / "house_rot40.jpg"), turn(photo, 40))
    db = tmp_path / "db"
    index_folders([root], db, workers=1)
    index = SketchIndex(db)
    groups = find_duplicates(index, threshold=0.9)
    names = [sorted(index.lookup([m[0]])[0][0].rsplit("/", 1)[1] for m in g) for g in groups]
    assert names == [["house.jpg", "house_rot40.jpg"]]
    assert all(s > 0.9 for g in groups for _, s, _, _ in g)
    for bad in (float("nan"), -1.0, 0.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            find_duplicates(index, threshold=bad)


def test_any_rotation_searches_take_a_filter_before_the_cut(collection, tmp_path, capsys):
    """A filter narrows --rotation any searches before the cut: the whole ranking restricted (here to photos of
    at least 450 px: the rescaled copy and nothing else is left out)."""
    from engine.filters import PhotoFilter

    root, db = collection
    index = SketchIndex(db)
    filt = PhotoFilter(min_side=450)
    big = {p for p, g in zip(index.paths, index.geometry, strict=True) if min(g[0], g[1]) >= 450}
    assert 0 < len(big) < len(index)
    full, _, _ = search_image_any_rotation(index, root / "p3.jpg", top_k=len(index))
    got, angles, _ = search_image_any_rotation(index, root / "p3.jpg", top_k=4, filt=filt)
    assert [h.path for h in got] == [h.path for h in full if h.path in big][:4] and len(angles) == 4
    assert not any("small" in h.path for h in got)
    sketch = tmp_path / "star.png"
    cv2.imwrite(str(sketch), sketch_of("star"))
    hits, _ = search_sketch_any_rotation(index, sketch, top_k=3, filt=filt, angles=(0, 90))
    assert len(hits) == 3 and all(h.path in big for h in hits)
    assert main(["search", "--db", str(db), "--image", str(root / "p3.jpg"), "--rotation", "any", "--min-side",
                 "450", "--json"]) == 0
    assert all(json.loads(line)["path"] in big for line in capsys.readouterr().out.splitlines())
