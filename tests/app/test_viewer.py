"""The photo viewer, headless: it shows the hit asked for once decoded off the UI thread (stale decodes
dropped, neighbours preloaded), steps with the keys, closes on Escape/Space, zooms (wheel under the cursor,
Fit, 100 % with the full decode swapped in) and pans, lands the box right on an EXIF-rotated photo, and
turns a rubber band into a region in the photo's original pixels to search with."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QKeySequence, QWheelEvent
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

import app.viewer as viewer_module
from app.detail import REGION_MODES, clip_box, original_to_widget, widget_rect_to_original
from app.results import BOX_COLOUR, format_score
from app.viewer import PhotoViewer
from app.workers import Runner
from engine.hits import Hit

COLOURS = {"a.png": (40, 160, 60), "b.png": (40, 60, 170), "c.png": (150, 150, 150)}
BLUE_SQUARE = (50.0, 250.0, 150.0, 350.0)  # in rotated.jpg's displayed (original) pixels


def hit(path, box=(0.0, 0.0, 10.0, 10.0), score=0.7, mirrored=False, rank=1) -> Hit:
    return Hit(rank=rank, path=str(path), score=score, box=box, scale=0.4, mirrored=mirrored, row=0)


@pytest.fixture
def photos(tmp_path):
    out = {}
    for name, colour in COLOURS.items():
        Image.new("RGB", (400, 300), colour).save(tmp_path / name)
        out[name] = tmp_path / name
    big = np.zeros((900, 1200, 3), np.uint8)
    big[..., 0] = np.linspace(0, 255, 1200)[None, :].astype(np.uint8)  # a ramp: where is which
    big[..., 1] = np.linspace(0, 255, 900)[:, None].astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    out["big.png"] = tmp_path / "big.png"
    # shown upright 200 x 400 with a blue square at BLUE_SQUARE; stored turned, EXIF orientation 6
    shown = np.full((400, 200, 3), 235, np.uint8)
    x0, y0, x1, y1 = (int(v) for v in BLUE_SQUARE)
    shown[y0:y1, x0:x1] = (30, 40, 200)
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: 400 x 200
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer turns it 90 degrees clockwise
    stored.save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    out["rotated.jpg"] = tmp_path / "rotated.jpg"
    return out


@pytest.fixture
def runner():
    r = Runner()
    yield r
    r.wait(30_000)
    QApplication.processEvents()  # the last decodes report while their viewer still exists


@pytest.fixture
def viewer(qtbot, runner):
    v = PhotoViewer(runner)
    v.screen_side = 600
    qtbot.addWidget(v)
    v.resize(720, 560)
    with qtbot.waitExposed(v):
        v.show()
    return v


def wait_shown(qtbot, v, path) -> None:
    qtbot.waitUntil(lambda: v.canvas.has_photo() and v.canvas.path == str(path), timeout=20_000)


def colour_at(v, point: QPointF) -> tuple[int, int, int]:
    c = v.canvas.grab().toImage().pixelColor(point.toPoint())
    return c.red(), c.green(), c.blue()


def centre(v) -> QPointF:
    return QPointF(v.canvas.width() / 2, v.canvas.height() / 2)


def close(a, b, tol=12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def three(photos) -> list[Hit]:
    return [hit(photos[n], score=s, rank=i + 1) for i, (n, s) in enumerate([("a.png", 0.9), ("b.png", 0.7),
                                                                           ("c.png", 0.2)])]


def test_shows_the_hit_asked_for_once_decoded(qtbot, viewer, photos):
    with qtbot.waitSignal(viewer.currentChanged, timeout=1000) as sig:
        viewer.set_results(three(photos), 1)
    assert sig.args == [1] and viewer.current_row == 1
    wait_shown(qtbot, viewer, photos["b.png"])
    assert close(colour_at(viewer, centre(viewer)), COLOURS["b.png"])
    text = viewer.caption.text()
    assert "b.png" in text and "2 of 3" in text and "match 70%" in text
    assert viewer.canvas.is_fit() and viewer.canvas.original_size == (400, 300)
    assert max(viewer.canvas.image.width(), viewer.canvas.image.height()) <= 600  # the screen-size decode
    # the neighbours are preloaded: stepping shows them at once
    qtbot.waitUntil(lambda: {str(photos[n]) for n in COLOURS} <= set(viewer._cache), timeout=20_000)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.canvas.path == str(photos["c.png"]) and viewer.canvas.has_photo()


def test_keys_step_through_the_results(qtbot, viewer, photos):
    viewer.set_results(three(photos), 0)
    for key, row in [(Qt.Key.Key_Right, 1), (Qt.Key.Key_PageDown, 2), (Qt.Key.Key_Left, 1), (Qt.Key.Key_Home, 0),
                     (Qt.Key.Key_End, 2), (Qt.Key.Key_PageUp, 1)]:
        with qtbot.waitSignal(viewer.currentChanged, timeout=1000) as sig:
            qtbot.keyClick(viewer, key)
        assert sig.args == [row] and viewer.current_row == row
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    with qtbot.assertNotEmitted(viewer.currentChanged):
        qtbot.keyClick(viewer, Qt.Key.Key_Right)  # past the last: stays
    assert viewer.current_row == 2
    wait_shown(qtbot, viewer, photos["c.png"])
    assert close(colour_at(viewer, centre(viewer)), COLOURS["c.png"])


def test_a_decode_for_a_photo_left_behind_is_not_shown(qtbot, viewer, photos, monkeypatch, runner):
    gate = threading.Event()
    real = viewer_module.load_photo

    def slow(path, max_side):
        if path.endswith("a.png"):
            gate.wait(10)
        return real(path, max_side)

    monkeypatch.setattr(viewer_module, "load_photo", slow)
    hits = three(photos)
    viewer.set_results(hits[:1] + hits[2:], 0)  # a (slow), c
    assert viewer.canvas.message == "Loading…"
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    wait_shown(qtbot, viewer, photos["c.png"])
    gate.set()
    qtbot.waitUntil(lambda: str(photos["a.png"]) in viewer._cache, timeout=20_000)
    assert viewer.canvas.path == str(photos["c.png"])  # cached for later, not shown
    assert close(colour_at(viewer, centre(viewer)), COLOURS["c.png"])


def test_escape_space_and_back_close(qtbot, viewer, photos):
    viewer.set_results(three(photos), 0)
    for close_it in (lambda: qtbot.keyClick(viewer, Qt.Key.Key_Escape),
                     lambda: qtbot.keyClick(viewer, Qt.Key.Key_Space),
                     viewer.back.click):
        with qtbot.waitSignal(viewer.closed, timeout=1000):
            close_it()


def test_the_viewer_takes_its_keys_before_window_shortcuts(qtbot, runner, photos):
    window = QWidget()
    qtbot.addWidget(window)
    fired = []
    for keys in ("Escape", "Return", "Right"):
        a = QAction(keys, window)
        a.setShortcut(QKeySequence(keys))
        a.triggered.connect(lambda _=False, k=keys: fired.append(k))
        window.addAction(a)
    v = PhotoViewer(runner)
    QVBoxLayout(window).addWidget(v)
    window.resize(600, 500)
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    v.setFocus()
    assert QApplication.activeWindow() is window and QApplication.focusWidget() is v  # where shortcuts work
    v.set_results(three(photos), 0)
    opened = []
    v.openExternally.connect(opened.append)
    with qtbot.waitSignal(v.closed, timeout=1000):
        qtbot.keyClick(v, Qt.Key.Key_Escape)
    qtbot.keyClick(v, Qt.Key.Key_Right)
    qtbot.keyClick(v, Qt.Key.Key_Return)
    assert fired == [] and v.current_row == 1 and opened == [str(photos["b.png"])]


def wheel(widget, pos: QPointF, notches: float) -> None:
    ev = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(), QPoint(0, int(120 * notches)),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def test_the_wheel_zooms_under_the_cursor_and_fit_restores(qtbot, viewer, photos):
    viewer.set_results([hit(photos["big.png"])], 0, kind="browse")
    wait_shown(qtbot, viewer, photos["big.png"])
    c = viewer.canvas
    fit = c.scale()
    assert fit == pytest.approx(min(c.width() / 1200, c.height() / 900))
    pos = QPointF(c.width() * 0.3, c.height() * 0.4)
    under = c.to_original(pos)
    wheel(c, pos, 2)
    assert c.scale() == pytest.approx(fit * 1.25 ** 2) and not c.is_fit()
    after = c.to_original(pos)
    assert after.x() == pytest.approx(under.x(), abs=0.5) and after.y() == pytest.approx(under.y(), abs=0.5)
    wheel(c, pos, -1)
    assert c.scale() == pytest.approx(fit * 1.25)
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert c.is_fit() and c.scale() == pytest.approx(fit)
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    assert c.scale() == pytest.approx(fit * 1.25)
    viewer.fit_button.click()
    assert c.is_fit()
    wheel(c, pos, -3)  # no smaller than fit
    assert c.is_fit()
    assert "Fit" in viewer.zoom_label.text()


def test_one_is_100_percent_and_then_the_full_photo_is_decoded(qtbot, viewer, photos):
    viewer.screen_side = 300
    viewer.set_results([hit(photos["big.png"], box=(100.0, 100.0, 200.0, 200.0))], 0)
    wait_shown(qtbot, viewer, photos["big.png"])
    c = viewer.canvas
    assert c.image.width() == 300 and not c.is_full()
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert c.scale() == pytest.approx(1.0) and c.zoom_percent() == pytest.approx(100)
    assert viewer.zoom_label.text() == "100 %"
    qtbot.waitUntil(lambda: c.image.width() == 1200, timeout=20_000)
    assert c.is_full() and c.original_size == (1200, 900)
    # centred: the photo's middle (the ramp's middle) at the widget's centre
    r, g, _ = colour_at(viewer, centre(viewer))
    assert abs(r - 127) <= 3 and abs(g - 127) <= 3
    viewer.actual_button.click()
    assert c.scale() == pytest.approx(1.0)


def test_a_drag_pans_when_zoomed_in(qtbot, viewer, photos):
    viewer.set_results([hit(photos["big.png"])], 0, kind="browse")
    wait_shown(qtbot, viewer, photos["big.png"])
    c = viewer.canvas
    before = c.photo_rect()
    qtbot.mousePress(c, Qt.MouseButton.LeftButton, pos=QPoint(300, 200))  # at fit: no pan
    qtbot.mouseMove(c, QPoint(250, 180))
    qtbot.mouseRelease(c, Qt.MouseButton.LeftButton, pos=QPoint(250, 180))
    assert c.photo_rect() == before
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    before = c.photo_rect()
    qtbot.mousePress(c, Qt.MouseButton.LeftButton, pos=QPoint(300, 200))
    qtbot.mouseMove(c, QPoint(280, 190))
    qtbot.mouseMove(c, QPoint(250, 170))
    qtbot.mouseRelease(c, Qt.MouseButton.LeftButton, pos=QPoint(250, 170))
    after = c.photo_rect()
    assert after.left() - before.left() == pytest.approx(-50) and after.top() - before.top() == pytest.approx(-30)
    assert c.region is None


def test_the_box_lands_on_its_place_in_an_exif_rotated_photo(qtbot, viewer, photos):
    sketch = np.full((60, 60), 255, np.uint8)
    sketch[29:32, 10:51] = 0  # a bar across the middle
    sketch[10, 10] = sketch[50, 50] = 0  # the corners of the ink's box
    viewer.set_results([hit(photos["rotated.jpg"], box=BLUE_SQUARE)], 0, kind="sketch", sketch=sketch)
    wait_shown(qtbot, viewer, photos["rotated.jpg"])
    c = viewer.canvas
    assert c.original_size == (200, 400) and c.image.height() > c.image.width()
    assert c.box == BLUE_SQUARE and c.overlay is not None
    rect = c.to_widget(BLUE_SQUARE)
    inside = rect.center() + QPointF(0, rect.height() / 4)  # off the overlay's bar
    assert close(colour_at(viewer, inside), (30, 40, 200), tol=30)
    outside = QPointF(rect.center().x(), rect.top() - 0.1 * rect.height())
    assert close(colour_at(viewer, outside), (235, 235, 235), tol=20)
    edge = QPointF(rect.center().x(), rect.top())
    assert close(colour_at(viewer, edge), (BOX_COLOUR.red(), BOX_COLOUR.green(), BOX_COLOUR.blue()), tol=40)
    bar = rect.center()
    assert colour_at(viewer, bar)[0] > 200  # the sketch's red ink in the box
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    assert not viewer.overlay_button.isChecked() and not c.show_overlay
    assert close(colour_at(viewer, bar), (30, 40, 200), tol=30)


def drag(qtbot, widget, a: QPointF, b: QPointF, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, modifier, a.toPoint())
    qtbot.mouseMove(widget, ((a + b) / 2).toPoint())
    qtbot.mouseMove(widget, b.toPoint())
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, modifier, b.toPoint())


def test_a_shift_drag_selects_a_region_in_original_pixels_to_search_with(qtbot, viewer, photos):
    viewer.set_results([hit(photos["rotated.jpg"], box=BLUE_SQUARE)], 0)
    wait_shown(qtbot, viewer, photos["rotated.jpg"])
    c = viewer.canvas
    assert viewer.region() is None and not viewer.region_search.isEnabled() and not viewer.region_mode.isEnabled()
    rect = c.to_widget(BLUE_SQUARE)
    drag(qtbot, c, rect.bottomRight(), rect.topLeft(), Qt.KeyboardModifier.ShiftModifier)  # any direction
    region = viewer.region()
    assert region is not None and np.allclose(region, BLUE_SQUARE, atol=2)
    assert viewer.region_search.isEnabled() and viewer.region_mode.currentData() == "both"
    with qtbot.waitSignal(viewer.regionSearch, timeout=1000) as sig:
        viewer.region_search.click()
    path, box, mode = sig.args
    assert path == str(photos["rotated.jpg"]) and mode == "both"
    assert isinstance(box, tuple) and all(isinstance(v, float) for v in box) and np.allclose(box, region)
    viewer.region_mode.setCurrentIndex([m for _, m in REGION_MODES].index("shape"))
    with qtbot.waitSignal(viewer.regionSearch, timeout=1000) as sig:
        qtbot.keyClick(viewer, Qt.Key.Key_Return)
    assert sig.args[2] == "shape"
    # Escape clears the region first, then closes
    with qtbot.assertNotEmitted(viewer.closed):
        qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert viewer.region() is None and not viewer.region_search.isEnabled()
    with qtbot.waitSignal(viewer.closed, timeout=1000):
        qtbot.keyClick(viewer, Qt.Key.Key_Escape)


def test_region_mode_drags_a_region_when_zoomed_and_clips_it_to_the_photo(qtbot, viewer, photos):
    viewer.set_results([hit(photos["big.png"])], 0, kind="browse")
    wait_shown(qtbot, viewer, photos["big.png"])
    c = viewer.canvas
    assert c.box is None  # browse: no box
    assert "1 of 1" in viewer.caption.text() and "match" not in viewer.caption.text()
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    qtbot.keyClick(viewer, Qt.Key.Key_R)
    assert viewer.region_button.isChecked() and c.region_mode
    want = (500.0, 400.0, 640.0, 480.0)
    rect = c.to_widget(want)
    drag(qtbot, c, rect.topLeft(), rect.bottomRight())  # no Shift: region mode drags a band, not the photo
    assert np.allclose(viewer.region(), want, atol=1.5)
    # a band reaching beyond the photo is clipped to it
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    r = c.photo_rect()
    drag(qtbot, c, QPointF(r.center().x(), r.center().y()), QPointF(c.width() + 30, c.height() + 30))
    x0, y0, x1, y1 = viewer.region()
    assert x0 == pytest.approx(600, abs=2) and y0 == pytest.approx(450, abs=2) and (x1, y1) == (1200, 900)


def test_a_click_or_a_band_of_no_area_selects_nothing(qtbot, viewer, photos):
    viewer.set_results([hit(photos["a.png"])], 0)
    wait_shown(qtbot, viewer, photos["a.png"])
    c = viewer.canvas
    p = c.photo_rect().center()
    drag(qtbot, c, p, p, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.region() is None
    drag(qtbot, c, p, p + QPointF(60, 0), Qt.KeyboardModifier.ShiftModifier)  # a line: no area
    assert viewer.region() is None
    viewer.set_region((-50, -50, 100, 80))
    assert viewer.region() == (0.0, 0.0, 100.0, 80.0)
    viewer.set_region((10, 10, 10, 90))
    assert viewer.region() is None


def test_enter_without_a_region_opens_the_photo_externally(qtbot, viewer, photos):
    viewer.set_results(three(photos), 2)
    with qtbot.waitSignal(viewer.openExternally, timeout=1000) as sig:
        qtbot.keyClick(viewer, Qt.Key.Key_Enter)
    assert sig.args == [str(photos["c.png"])]


def test_a_new_hit_clears_the_region_and_the_zoom(qtbot, viewer, photos):
    viewer.set_results(three(photos), 0)
    wait_shown(qtbot, viewer, photos["a.png"])
    viewer.set_region((10, 10, 100, 100))
    qtbot.keyClick(viewer, Qt.Key.Key_Plus)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    wait_shown(qtbot, viewer, photos["b.png"])
    assert viewer.region() is None and viewer.canvas.is_fit() and not viewer.region_search.isEnabled()


def test_an_unreadable_photo_says_so_in_the_view(qtbot, viewer, photos, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    viewer.set_results([hit(tmp_path / "missing.jpg"), hit(tmp_path / "broken.jpg"), hit(photos["a.png"])], 0)
    qtbot.waitUntil(lambda: viewer.canvas.message.startswith("Cannot show missing.jpg"), timeout=20_000)
    assert not viewer.canvas.has_photo()
    viewer.canvas.grab()  # paints the message
    qtbot.keyClick(viewer, Qt.Key.Key_1)  # nothing to zoom: no error
    wheel(viewer.canvas, centre(viewer), 1)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: viewer.canvas.message.startswith("Cannot show broken.jpg"), timeout=20_000)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    wait_shown(qtbot, viewer, photos["a.png"])


def test_image_queries_name_the_query_photo_and_hide_the_overlay(qtbot, viewer, photos):
    hits = [hit(photos["a.png"], box=(0.0, 0.0, 400.0, 300.0), score=0.93)]
    viewer.set_results(hits, 0, kind="image", query_path=str(photos["a.png"]), sketch=np.zeros((5, 5), np.uint8))
    assert "similarity 0.93" in viewer.caption.text() and "the query photo" in viewer.caption.text()
    assert viewer.overlay_button.isHidden()
    wait_shown(qtbot, viewer, photos["a.png"])
    assert viewer.canvas.box is None and viewer.canvas.overlay is None  # the whole photo: no box drawn
    viewer.set_results([hit(photos["a.png"], box=(10.0, 10.0, 90.0, 90.0), score=0.5)], 0, kind="region")
    assert format_score(0.5, "region") in viewer.caption.text()  # as results.format_score says it
    wait_shown(qtbot, viewer, photos["a.png"])
    assert viewer.canvas.box == (10.0, 10.0, 90.0, 90.0)


def test_no_results_is_said(qtbot, viewer):
    viewer.set_results([], 0)
    assert viewer.current_row == -1 and viewer.canvas.message == "No results"
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.keyClick(viewer, Qt.Key.Key_Return)
    assert viewer.current_row == -1


def reference(rect, target, size):
    """The conversion written out with numbers only."""
    (rx0, ry0, rx1, ry1), (tx, ty, tw, th), (ow, oh) = rect, target, size
    xs = sorted(np.clip([(rx0 - tx) / tw * ow, (rx1 - tx) / tw * ow], 0, ow))
    ys = sorted(np.clip([(ry0 - ty) / th * oh, (ry1 - ty) / th * oh], 0, oh))
    if xs[1] <= xs[0] or ys[1] <= ys[0]:
        return None
    return xs[0], ys[0], xs[1], ys[1]


def test_the_widget_to_original_conversion_by_brute_force():
    rng = np.random.default_rng(7)
    nones = 0
    for _ in range(3000):
        ow, oh = int(rng.integers(1, 5000)), int(rng.integers(1, 5000))
        s = float(rng.uniform(0.01, 8))
        target = (float(rng.uniform(-2000, 500)), float(rng.uniform(-2000, 500)), ow * s, oh * s)
        pts = rng.uniform(-2500, 3000, 4)
        if rng.random() < 0.1:
            pts[2] = pts[0]  # no width
        rect = QRectF(QPointF(pts[0], pts[1]), QPointF(pts[2], pts[3]))  # any corner order
        got = widget_rect_to_original(rect, QRectF(*target), (ow, oh))
        want = reference(pts, target, (ow, oh))
        if want is None:
            nones += 1
            assert got is None
        else:
            assert got is not None and np.allclose(got, want, rtol=1e-9, atol=1e-6), (got, want)
            x0, y0, x1, y1 = got
            assert 0 <= x0 < x1 <= ow and 0 <= y0 < y1 <= oh
            # and back: the box drawn where it was dragged (clipped to the photo)
            back = original_to_widget(got, QRectF(*target), (ow, oh))
            again = widget_rect_to_original(back, QRectF(*target), (ow, oh))
            assert np.allclose(again, got, rtol=1e-9, atol=1e-6)
    assert 100 < nones < 2900  # both outcomes were tried
    assert widget_rect_to_original(QRectF(0, 0, 10, 10), QRectF(), (100, 100)) is None
    assert widget_rect_to_original(QRectF(0, 0, 10, 10), QRectF(0, 0, 100, 100), (0, 0)) is None
    assert clip_box((5, 8, 1, 2), (4, 4)) == (1.0, 2.0, 4.0, 4.0)
    assert clip_box((5, 5, 9, 9), (4, 4)) is None and clip_box(None, (4, 4)) is None


@pytest.mark.parametrize("window", [(245, 245, 245), (30, 30, 34)])
def test_the_background_and_message_follow_the_palette(qtbot, viewer, window):
    from PySide6.QtGui import QColor, QPalette

    pal = viewer.palette()
    pal.setColor(QPalette.ColorRole.Window, QColor(*window))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor(*(255 - v for v in window)))
    viewer.setPalette(pal)
    viewer.set_results([], 0)
    assert close(colour_at(viewer, QPointF(3, 3)), window, tol=2)
