"""Cost as the collection grows (engine.bench.scaling): its rows and figure at small sizes, and the chart panel."""
import cv2
import numpy as np

from engine.bench.scaling import PANEL, bench_scaling, label, linear_ticks, log_ticks, plot_panel
from tests.engine.synth import photo_with_shape


def test_bench_scaling_rows_and_figure(tmp_path):
    photos = []
    for i, shape in enumerate(("arrow", "house", "star")):
        photos.append(tmp_path / f"photo{i}.jpg")
        cv2.imwrite(str(photos[-1]), photo_with_shape(shape, (80, 60, 240, 200), size=(320, 240), seed=i))
    png = tmp_path / "docs" / "cost.png"
    res = bench_scaling(quick=True, png=png, photos=photos, sizes=(300, 1000))
    assert [r["photos"] for r in res["rows"]] == [300, 1000]
    for r in res["rows"]:
        assert r["alignment s"] > 0 and r["fused s"] > 0 and r["open + first fused s"] > 0
        assert 0 < r["bytes/photo"] < 1600  # alignment + rotation + compact image and sketch codes
        assert r["folder bytes/photo"] > r["bytes/photo"]  # the catalog and the bases besides
    assert [(r["workers"], r["images"]) for r in res["indexing"]] == [(1, 3), (2, 3)]
    assert all(r["images_per_s"] > 0 for r in res["indexing"])
    assert len(res["tables"]) == 2 and res["png"] == str(png)
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (PANEL[1], 3 * PANEL[0], 3)


def test_ticks_and_labels():
    assert log_ticks(1_000, 1_000_000) == (1e3, 1e6, [1e3, 1e4, 1e5, 1e6])
    assert log_ticks(1353, 3205) == (1e3, 1e4, [1e3, 1e4])  # widened to whole decades
    assert log_ticks(0.05, 2.0)[2] == [0.01, 0.1, 1.0, 10.0]
    assert linear_ticks(2, whole=True) == (0.0, 3.0, [0.0, 1.0, 2.0, 3.0])
    lo, hi, ticks = linear_ticks(5.1)
    assert lo == 0 and hi >= 5.61 and 3 <= len(ticks) <= 6
    assert [label(v) for v in (1e3, 1e6, 2.5e4, 0.01, 300)] == ["1k", "1M", "25k", "0.01", "300"]


def test_plot_panel_draws_each_line_where_its_points_are():
    img = plot_panel({"a": ([1e3, 1e6], [0.1, 10.0]), "b": ([1e3, 1e6], [1.0, 0.0])},  # b's 0 is left out (log)
                     xlabel="photos", ylabel="seconds", title="t", size=(400, 300))
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    x0, y0, x1, y1 = 70, 300 - 60, 400 - 15, 50
    blue = (img[..., 0] > 150) & (img[..., 2] < 80)  # "a": the first colour (BGR)
    # a runs corner to corner of the axes: from (1k, 0.1) bottom left to (1M, 10) top right
    assert blue[y0 - 3:y0 + 4, x0 - 3:x0 + 4].any() and blue[y1 - 3:y1 + 4, x1 - 3:x1 + 4].any()
    orange = (img[..., 2] > 150) & (img[..., 0] < 80)
    assert orange[(y0 + y1) // 2 - 3:(y0 + y1) // 2 + 4, x0 - 3:x0 + 4].any()  # b's one point: (1k, 1), mid-height
    assert not orange[:, x0 + 50:x1 - 10].any()  # b has no line: its other point is not on a log axis
