"""The detail panel, headless: the rotation plot read relative to the hit as shown (flat, as shown,
turned), the overlay drawn turned on request, no "-0°", no radial labels over the curve; "Open containing
folder" that cannot open says so; a narrow, short panel lays out without overlap."""
from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QImage

from app.detail import DetailPanel, RotationPlot, describe_curve, format_turn, ink_overlay, read_curve
from app.workers import Runner
from engine.hits import Hit
from engine.rotation import RotationCurve

PHOTO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos" / "gen_cup_1.jpg"


def synthetic(fn, *, mirrored: bool = False) -> RotationCurve:
    """A curve of similarity ``fn(angle in radians)`` on a 1-degree grid."""
    angles = np.arange(0.0, 360.0, 1.0)
    sims = fn(np.radians(angles))
    i = int(np.argmax(sims))
    return RotationCurve(angles, sims, float(angles[i]), float(sims[i]), mirrored, np.zeros(21))


def turned_177():
    return synthetic(lambda d: 0.515 + 0.105 * np.cos(d - np.radians(177)))  # 0.41 at 0 deg, 0.62 at +177


def a_hit(path=PHOTO, box=(40.0, 30.0, 200.0, 190.0), score=0.7) -> Hit:
    return Hit(rank=1, path=str(path), score=score, box=box, scale=0.4, mirrored=False, row=0, raw_score=0.45)


@pytest.fixture
def plot(qtbot):
    p = RotationPlot()
    qtbot.addWidget(p)
    return p


@pytest.fixture
def panel(qtbot):
    runner = Runner()
    p = DetailPanel(runner)
    qtbot.addWidget(p)
    yield p
    runner.wait(30_000)


def test_a_clearly_better_turn_is_said_in_words_and_drawn_on_request(qtbot, panel):
    sketch = np.full((120, 120), 255, np.uint8)
    cv2.line(sketch, (20, 100), (100, 20), 0, 3)
    panel.show_hit(a_hit(), kind="sketch", sketch=sketch, curve=turned_177())
    rot = panel.rotation
    assert rot.reading.verdict == "turned"
    assert rot.caption.text().startswith("Turned +177° it matches better (0.62 vs 0.41 as shown)")
    assert "best +177" not in rot.caption.text()
    assert not rot.turn_button.isHidden() and "+177°" in rot.turn_button.text()
    qtbot.waitUntil(lambda: panel.photo.image is not None, timeout=20_000)
    assert panel.photo.overlay_angle == 0.0  # drawn as matched until asked
    with qtbot.waitSignal(rot.overlayAngleChanged, timeout=1000) as sig:
        rot.turn_button.click()
    assert sig.args == [pytest.approx(177.0)] and panel.photo.overlay_angle == pytest.approx(177.0)
    panel.photo.repaint()  # paints the turned overlay
    rot.turn_button.click()
    assert panel.photo.overlay_angle == 0.0
    panel.show_hit(a_hit(), kind="sketch", sketch=sketch, curve=turned_177())  # another hit: back to as matched
    assert panel.photo.overlay_angle == 0.0 and not rot.turn_button.isChecked()


def test_of_equally_good_turns_the_smallest_is_said():
    """A star matches at five turns, 72 deg apart; the curve's maximum fell at -83 deg by a hair (found under
    Xvfb, where -11 deg was as good); here at -101, and -29 is as good and the turn a person would make.  A
    clearly lower peak is not chosen."""
    star = synthetic(lambda d: 0.6 + 0.1 * np.cos(5 * (d - np.radians(-101)))
                     + 0.001 * np.cos(d - np.radians(-101)))
    assert star.best_angle == pytest.approx(360 - 101)
    r = read_curve(star)
    assert r.verdict == "turned" and r.best_angle == pytest.approx(-29) and r.best == pytest.approx(0.7, abs=2e-3)
    assert describe_curve(r).startswith("Turned -29° it matches better")
    lopsided = synthetic(lambda d: 0.5 + 0.2 * np.cos(d - np.radians(-83)) + 0.05 * np.cos(3 * d))
    assert read_curve(lopsided).best_angle == pytest.approx(lopsided.best_angle - 360)  # others clearly lower


def test_the_plot_is_drawn_relative_to_the_hit_as_shown(plot):
    plot.set_curve(turned_177())
    # 0 deg (the overlay as drawn) is at the top; a counter-clockwise turn is drawn counter-clockwise
    shown = plot.shown.points()
    assert len(shown) == 1 and shown[0].x() == 0.0 and shown[0].y() == pytest.approx(0.41, abs=1e-3)
    best = plot.best.points()
    assert len(best) == 1 and best[0].x() == pytest.approx(360 - 177) and best[0].y() == pytest.approx(0.62)
    plot.set_curve(synthetic(lambda d: 0.5 + 0.2 * np.cos(d - np.radians(90))))  # +90: on the left
    assert plot.best.points()[0].x() == pytest.approx(270)
    labels = plot.angle_axis.categoriesLabels()
    assert "+90°" in labels and "-90°" in labels and "0°" in labels
    assert not plot.radial_axis.labelsVisible()  # no numbers over the curve; they are in the caption


def test_a_flat_curve_has_no_preferred_angle(plot):
    flat = synthetic(lambda d: 0.44 + 0.015 * np.cos(d - np.radians(88)), mirrored=True)
    plot.set_curve(flat)
    text = plot.caption.text()
    assert plot.reading.verdict == "flat"
    assert text.startswith("No preferred angle") and "88" not in text and "best" not in text
    assert "0.42 to 0.46" in text
    assert plot.turn_button.isHidden() and not plot.best.points()


def test_a_best_turn_that_is_no_clear_gain_reads_as_shown(plot):
    plot.set_curve(synthetic(lambda d: 0.5 + 0.1 * np.cos(d - np.radians(12))))  # at 0: 0.598, best 0.6
    assert plot.reading.verdict == "as_shown"
    assert plot.caption.text().startswith("Matches best as shown: 0.60 at 0°")
    assert plot.turn_button.isHidden() and not plot.best.points()
    near_zero = synthetic(lambda d: 0.5 + 0.2 * np.cos(d - np.radians(-0.4)))
    assert read_curve(near_zero).verdict == "as_shown"


@pytest.mark.parametrize(("deg", "text"), [(-0.3, "0°"), (359.6, "0°"), (0.4, "0°"), (-90, "-90°"), (270, "-90°"),
                                           (90.2, "+90°"), (180.4, "180°"), (-179.6, "180°"), (177, "+177°")])
def test_turns_are_never_minus_zero(deg, text):
    assert format_turn(deg) == text


def test_no_minus_zero_in_any_caption(plot):
    for peak in (-0.3, 359.7, 0.2):
        plot.set_curve(synthetic(lambda d, p=peak: 0.5 + 0.2 * np.cos(d - np.radians(p))))
        assert "-0°" not in plot.caption.text() and "−0°" not in plot.caption.text()


def test_a_circle_sketch_on_a_circle_photo_has_no_preferred_angle(tmp_path, demo_db):
    """A real curve (engine.rotsearch.curve_for_hit): a circle matches a circle at every turn."""
    from engine.rotsearch import curve_for_hit
    from engine.shards import open_collection

    rng = np.random.default_rng(0)
    photo = (rng.normal(200, 6, (300, 400, 3))).clip(0, 255).astype(np.uint8)
    cv2.circle(photo, (200, 150), 90, (40, 60, 150), -1)
    cv2.imwrite(str(tmp_path / "ball.png"), photo)
    sketch = np.full((300, 300), 255, np.uint8)
    cv2.circle(sketch, (150, 150), 110, 0, 3)
    hit = Hit(rank=1, path=str(tmp_path / "ball.png"), score=0.5, box=(100.0, 50.0, 300.0, 250.0), scale=0.6,
              mirrored=False, row=0)
    curve = curve_for_hit(open_collection(demo_db), sketch, hit)
    reading = read_curve(curve)
    assert reading.verdict == "flat", reading


def test_open_containing_folder_that_cannot_open_says_so_and_offers_copy_path(qtbot, panel, monkeypatch):
    calls = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: calls.append(url) or False)
    hit = a_hit()
    panel.show_hit(hit, kind="sketch")
    panel.show()
    with qtbot.waitSignal(panel.message, timeout=1000) as sig:
        panel.open_folder.click()
    assert calls and calls[0].toLocalFile() == str(PHOTO.parent)
    assert "No file manager" in sig.args[0] and str(PHOTO.parent) in sig.args[0]
    assert panel.note.isVisible() and "Copy path" in panel.note.text()
    with qtbot.waitSignal(panel.message, timeout=1000):
        panel.copy_path.click()
    assert QGuiApplication.clipboard().text() == str(PHOTO)
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: True)  # where it works, nothing is said
    panel.open_folder.click()
    assert not panel.note.isVisible()


def test_image_hits_read_as_similarity_and_the_query_photo_is_named(panel):
    panel.show_hit(a_hit(score=0.87), kind="image", query_path=None)
    assert "similarity 0.87" in panel.scores.text() and "query photo" not in panel.scores.text()
    panel.show_hit(a_hit(score=0.9), kind="image", query_path=str(PHOTO))
    assert "This is the query photo itself" in panel.scores.text()
    assert panel.rotation.turn_button.isHidden()


@pytest.mark.parametrize("size", [(300, 500), (380, 640)])
def test_a_small_panel_lays_out_without_overlap(qtbot, panel, size):
    sketch = np.full((120, 120), 255, np.uint8)
    cv2.circle(sketch, (60, 60), 40, 0, 3)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_hit(a_hit(), kind="sketch", sketch=sketch, curve=turned_177())
    qtbot.waitUntil(lambda: panel.photo.image is not None, timeout=20_000)
    QGuiApplication.processEvents()
    body = panel.scroll.widget()
    parts = [panel.photo, panel.overlay_box, panel.title, panel.path, panel.scores, panel.open_folder,
             panel.copy_path, panel.search_with, panel.rotation.heading, panel.rotation.view, panel.rotation.caption,
             panel.rotation.turn_button]
    rects = {}
    for w in parts:
        assert w.isVisible(), w
        r = w.rect().translated(w.mapTo(body, w.rect().topLeft()))
        rects[w] = r
        assert r.left() >= 0 and r.right() < panel.scroll.viewport().width(), (w, r)  # not cut off at the side
        assert w.width() >= min(w.minimumSizeHint().width(), panel.scroll.viewport().width()), w
        if hasattr(w, "text") and w in (panel.open_folder, panel.copy_path, panel.search_with):
            assert w.width() >= w.fontMetrics().horizontalAdvance(w.text()), w  # the button's text fits
    for a in parts:
        for b in parts:
            if a is not b:
                assert not rects[a].intersects(rects[b]), (a, b, rects[a], rects[b])
    # the caption is under the plot, and the plot keeps its height; the panel scrolls instead
    assert rects[panel.rotation.caption].top() >= rects[panel.rotation.view].bottom()
    assert panel.rotation.view.height() >= 200
    assert body.height() > panel.scroll.viewport().height() and panel.scroll.verticalScrollBar().maximum() > 0


def test_a_likely_match_with_an_uncertain_box_says_so_without_contradicting_itself(panel):
    import dataclasses

    hit = dataclasses.replace(a_hit(score=0.6), likely=True, box_sure=False)
    panel.show_hit(hit, kind="sketch")
    text = panel.scores.text()
    assert "a likely match" in text and "box is uncertain (dashed)" in text
    assert "does not stand out" not in text  # the photo is a likely match: only its box is in doubt
    assert "rests on the photo's likeness to the drawing as a whole" in html.unescape(text)  # why it is likely
    panel.show_hit(dataclasses.replace(hit, likely=False, score=0.1), kind="sketch")
    assert "box is uncertain" in panel.scores.text() and "rests on" not in panel.scores.text()
    panel.show_hit(dataclasses.replace(hit, box_sure=True), kind="sketch")
    assert "uncertain" not in panel.scores.text()


def test_scores_and_names_are_shown_as_text_never_as_markup(panel):
    odd = a_hit(score=0.004)
    panel.show_hit(odd, kind="sketch")
    assert "match &lt;1%: not a likely match" in panel.scores.text()  # "<1%" is no tag eaten by the label
    weird = Hit(rank=1, path="/photos/<b>bold.jpg", score=0.3, box=(0, 0, 1, 1), scale=1.0, mirrored=False, row=0)
    panel.show_hit(weird, kind="sketch")
    assert panel.path.textFormat() == Qt.TextFormat.PlainText and panel.title.text() == "<b>bold.jpg"


@pytest.mark.parametrize(("gain", "verdict"), [(0.07, "as_shown"), (0.09, "turned")])
def test_clearly_better_means_a_gain_of_the_fitted_margin(gain, verdict):
    from app.detail import MARGIN

    assert MARGIN == pytest.approx(0.08)
    a = 0.5 * gain / (1 - gain)  # best 0.5 + a at +90 deg, 0.5 at 0 deg: (best - at 0) / best = gain
    reading = read_curve(synthetic(lambda d: 0.5 + a * np.cos(d - np.radians(90))))
    assert reading.verdict == verdict and reading.best_angle == pytest.approx(90)


def test_a_tall_photo_leaves_room_for_its_details(qtbot, panel, tmp_path):
    tall = np.full((900, 300, 3), 180, np.uint8)
    cv2.imwrite(str(tmp_path / "tall.png"), tall)
    panel.resize(420, 800)
    panel.show()
    qtbot.waitExposed(panel)
    panel.show_hit(a_hit(path=tmp_path / "tall.png", box=(10.0, 10.0, 200.0, 400.0)), kind="sketch")
    qtbot.waitUntil(lambda: panel.photo.image is not None, timeout=20_000)
    QGuiApplication.processEvents()
    assert panel.photo.height() <= 0.6 * 800 + 1
    buttons = panel.open_folder.mapTo(panel, panel.open_folder.rect().bottomLeft())
    assert buttons.y() < panel.height()  # the buttons show without scrolling


def drag(qtbot, widget, a, b) -> None:
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a.toPoint())
    qtbot.mouseMove(widget, ((a + b) / 2).toPoint())
    qtbot.mouseMove(widget, b.toPoint())
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b.toPoint())


@pytest.fixture
def wide_photo(tmp_path):
    photo = np.full((300, 400, 3), 200, np.uint8)  # 400 x 300
    cv2.imwrite(str(tmp_path / "wide.png"), photo)
    return tmp_path / "wide.png"


def test_a_region_dragged_on_the_photo_is_searched_with(qtbot, panel, wide_photo):
    from app.detail import original_to_widget

    panel.resize(420, 800)
    panel.show()
    panel.show_hit(a_hit(path=wide_photo), kind="sketch")
    assert not panel.region_row.isHidden()
    assert not panel.region_search.isEnabled() and not panel.region_mode.isEnabled()  # no region yet
    qtbot.waitUntil(lambda: panel.photo.image is not None, timeout=20_000)
    photo = panel.photo
    assert photo.original_size == (400, 300)
    want = (100.0, 50.0, 300.0, 250.0)
    rect = original_to_widget(want, photo.photo_rect(), photo.original_size)
    with qtbot.waitSignal(photo.regionChanged, timeout=1000):
        drag(qtbot, photo, rect.topRight(), rect.bottomLeft())  # any direction
    assert np.allclose(photo.region, want, atol=2)
    assert panel.region_search.isEnabled() and panel.region_mode.currentData() == "both"
    with qtbot.waitSignal(panel.regionSearch, timeout=1000) as sig:
        panel.region_search.click()
    path, box, mode = sig.args
    assert path == str(wide_photo) and mode == "both" and np.allclose(box, photo.region)
    assert all(isinstance(v, float) for v in box)
    panel.region_mode.setCurrentIndex(panel.region_mode.findData("image"))
    with qtbot.waitSignal(panel.regionSearch, timeout=1000) as sig:
        panel.region_search.click()
    assert sig.args[2] == "image"
    # a band beyond the photo is clipped to it; a click leaves the region as it is
    r = photo.photo_rect()
    drag(qtbot, photo, r.center(), r.bottomRight() + QPointF(40, 40))
    x0, y0, x1, y1 = photo.region
    assert (x0, y0) == (pytest.approx(200, abs=2), pytest.approx(150, abs=2)) and (x1, y1) == (400, 300)
    drag(qtbot, photo, r.center(), r.center())
    assert photo.region is not None
    photo.repaint()  # paints the region
    # Escape clears it; so does another hit
    photo.set_region(want)
    qtbot.keyClick(photo, Qt.Key.Key_Escape)
    assert photo.region is None and not panel.region_search.isEnabled()
    photo.set_region(want)
    assert panel.region_search.isEnabled()
    panel.show_hit(a_hit(path=wide_photo), kind="sketch")
    assert photo.region is None and not panel.region_search.isEnabled()
    panel.show_hit(None)
    assert panel.region_row.isHidden()


def test_no_region_before_the_photo_is_shown(qtbot, panel, tmp_path):
    panel.show_hit(a_hit(path=tmp_path / "missing.jpg"), kind="sketch")
    panel.photo.set_region((0, 0, 10, 10))
    assert panel.photo.region is None and not panel.region_search.isEnabled()
    with qtbot.assertNotEmitted(panel.regionSearch):
        panel.region_search.click()


def test_the_sketch_overlay_keeps_its_own_shape_in_a_box_of_another_aspect():
    """The box follows the photo's edges (engine.boxes), so it may be wider or taller than the sketch: the sketch
    drawn on the photo is fitted inside it, centred, not stretched."""
    from PySide6.QtCore import QRectF

    from app.detail import fit_aspect

    wide = fit_aspect(QRectF(10, 20, 300, 100), 200, 200)  # a square sketch in a wide box
    assert (wide.width(), wide.height()) == (100, 100) and wide.center() == QRectF(10, 20, 300, 100).center()
    tall = fit_aspect(QRectF(0, 0, 100, 400), 300, 150)
    assert (tall.width(), tall.height()) == (100, 50) and tall.top() == 175
    same = QRectF(5, 5, 60, 30)
    assert fit_aspect(same, 120, 60) == same and fit_aspect(same, 0, 10) == same


def _red_mask(widget) -> tuple[np.ndarray, float]:
    """(rows, columns) mask of the red ink painted on a white photo in ``widget``, and the device pixel ratio."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    a = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    a = a[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)
    return (a[..., 0] > 200) & (a[..., 1] < 140) & (a[..., 2] < 140), image.devicePixelRatio()


def _reddish_above(widget, y_limit: float) -> tuple[float, float, float, float] | None:
    """Bounding box (widget pixels) of the red ink drawn above ``y_limit`` on a white photo."""
    red, ratio = _red_mask(widget)
    red[int(y_limit * ratio):] = False
    ys, xs = np.nonzero(red)
    if not len(xs):
        return None
    return xs.min() / ratio, ys.min() / ratio, (xs.max() + 1) / ratio, (ys.max() + 1) / ratio


def _overlaid(qtbot, where: str, box, frame):
    """A white 400 x 300 photo with ``box`` and a sketch (a frame of ink, its extent its box) placed at ``frame``,
    in the detail panel's view or the large view's canvas: (widget, photo rect, frame rect, the box's top - 4)."""
    from app.detail import PhotoView, original_to_widget
    from app.viewer import PhotoCanvas

    photo = QImage(400, 300, QImage.Format.Format_RGB888)
    photo.fill(QColor("white"))
    sketch = np.full((60, 90), 255, np.uint8)
    sketch[:4, :] = sketch[-4:, :] = sketch[:, :4] = sketch[:, -4:] = 0
    overlay = ink_overlay(sketch, mirrored=False)
    widget = PhotoView() if where == "detail" else PhotoCanvas()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    if where == "detail":
        widget.set_photo(photo, (400, 300), box, overlay, frame=frame)
    else:
        widget.set_photo(photo, (400, 300), "x.png", box, overlay, frame=frame)
    widget.show_overlay = True
    target = widget.photo_rect()
    return (widget, target, original_to_widget(frame, target, (400, 300)),
            original_to_widget(box, target, (400, 300)).top() - 4)


@pytest.mark.parametrize("where", ["detail", "viewer"])
def test_the_sketch_is_drawn_where_it_was_placed_in_the_detail_panel_and_the_large_view_alike(qtbot, where):
    """The box follows the photo's edges; the sketch overlay is drawn at the hit's frame (where the alignment
    placed it), the same in the detail panel and in the large view, not fitted or stretched into the box."""
    widget, _, want, top_of_box = _overlaid(qtbot, where, (20.0, 180.0, 380.0, 290.0),
                                            (100.0, 20.0, 250.0, 120.0))  # the frame above the box
    got = _reddish_above(widget, top_of_box)
    assert got is not None
    assert np.allclose(got, (want.left(), want.top(), want.right(), want.bottom()), atol=2.5), (got, want)


@pytest.mark.parametrize("where", ["detail", "viewer"])
def test_a_sketch_placed_past_the_photos_edge_is_cut_there_not_squashed(qtbot, where):
    widget, target, want, top_of_box = _overlaid(qtbot, where, (20.0, 200.0, 380.0, 290.0),
                                                 (300.0, 20.0, 450.0, 120.0))  # the frame's right third off it
    got = _reddish_above(widget, top_of_box)
    assert got is not None
    assert got[0] == pytest.approx(want.left(), abs=2.5) and got[2] <= target.right() + 1
    # cut at the photo's edge: the ink frame's right side (at 450 in the photo) is not drawn at the edge
    red, ratio = _red_mask(widget)
    col = int((target.right() - 3) * ratio)
    assert red[: int(top_of_box * ratio), col].sum() < 0.3 * (want.height() * ratio)
