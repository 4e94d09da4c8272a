"""The sketch model (no Qt) and the drawing canvas, headless: strokes, undo/redo, tools, load and save."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.sketch import Stroke, fit_centered, render_strokes, sketch_bbox

# -- render_strokes, without Qt ------------------------------------------------------------------------


def test_a_single_point_is_drawn_as_a_round_dot():
    img = render_strokes([Stroke(np.array([[20.0, 10.0]]), 6)], (40, 30))
    assert img.shape == (30, 40) and img.dtype == np.uint8
    assert img[10, 20] == 0 and img[0, 0] == 255
    x0, y0, x1, y1 = sketch_bbox(img)
    assert 16 <= x0 <= 18 and 22 <= x1 <= 24 and 6 <= y0 <= 8 and 12 <= y1 <= 14


def test_an_erase_stroke_whitens_what_was_drawn_before_it():
    line = Stroke([[5, 20], [55, 20]], 4)
    eraser = Stroke([[30, 0], [30, 39]], 16, erase=True)
    img = render_strokes([line, eraser], (60, 40))
    assert img[20, 10] == 0 and img[20, 50] == 0
    assert (img[:, 25:36] == 255).all()
    assert render_strokes([eraser, line], (60, 40))[20, 30] == 0  # order matters


def test_strokes_are_drawn_on_the_background_which_is_left_alone():
    bg = np.full((30, 40), 200, np.uint8)
    img = render_strokes([Stroke([[0, 15], [39, 15]], 3)], (40, 30), background=bg)
    assert img[0, 0] == 200 and img[15, 20] == 0 and (bg == 200).all()
    padded = render_strokes([], (50, 35), background=bg)  # another size: top-left, padded with white
    assert (padded[:30, :40] == 200).all() and (padded[30:] == 255).all() and (padded[:, 40:] == 255).all()


def test_sketch_bbox_is_half_open_and_none_without_ink():
    img = np.full((10, 12), 255, np.uint8)
    assert sketch_bbox(img) is None
    img[2:5, 3:7] = 127
    assert sketch_bbox(img) == (3, 2, 7, 5)
    img[2:5, 3:7] = 128  # not dark enough
    assert sketch_bbox(img) is None


def test_fit_centered_keeps_the_aspect_inside_the_margin():
    tall = np.zeros((50, 10), np.uint8)
    out = fit_centered(tall, (200, 100), margin=0.05)
    assert out.shape == (100, 200)
    assert sketch_bbox(out) == (91, 5, 109, 95)  # 90 px high, 18 px wide, centred


def test_stroke_checks_its_points_and_width():
    s = Stroke([1, 2], 3)
    assert s.points.shape == (1, 2) and s.points.dtype == np.float64 and not s.points.flags.writeable
    with pytest.raises(ValueError):
        Stroke(np.zeros((0, 2)), 3)
    with pytest.raises(ValueError):
        Stroke([[1, 2, 3]], 3)
    with pytest.raises(ValueError):
        Stroke([[1, 2]], 0)


# -- the canvas ------------------------------------------------------------------------------------------

pytest.importorskip("PySide6")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QInputDevice, QMouseEvent, QPalette, QPointingDevice, QTabletEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app._testsupport import stroke_events  # noqa: E402
from app.canvas import SketchCanvas  # noqa: E402
from engine.imageio import ImageError  # noqa: E402

SIZE = 240
LEFT, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton


def send_mouse(canvas, kind, p: QPointF, button, buttons) -> None:
    QApplication.sendEvent(canvas, QMouseEvent(kind, p, canvas.mapToGlobal(p), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))


def draw(canvas, points, steps: int = 8) -> None:
    """A stroke through ``points`` (pixels): press, moves with the left button held, release."""
    stroke_events(canvas, points, steps)


@pytest.fixture
def canvas(qtbot):
    c = SketchCanvas()
    qtbot.addWidget(c)
    c.resize(SIZE, SIZE)
    c.show()
    qtbot.waitExposed(c)
    return c


def dark(img) -> np.ndarray:
    return np.asarray(img) < 128


def test_sizes_and_defaults(canvas):
    assert canvas.sizeHint().toTuple() == (480, 480) and canvas.minimumSizeHint().toTuple() == (200, 200)
    assert canvas.tool == "pen" and canvas.pen_width == 4 and canvas.eraser_width == 16
    assert canvas.testAttribute(Qt.WidgetAttribute.WA_StaticContents) and canvas.hasMouseTracking()
    assert canvas.focusPolicy() == Qt.FocusPolicy.StrongFocus
    assert canvas.is_empty() and canvas.to_image().shape == (SIZE, SIZE) and (canvas.to_image() == 255).all()


def test_a_stroke_draws_along_its_path_and_signals_once_when_finished(qtbot, canvas):
    changes = []
    canvas.sketchChanged.connect(lambda: changes.append(1))
    with qtbot.waitSignal(canvas.strokeStarted, timeout=1000):
        send_mouse(canvas, QEvent.Type.MouseButtonPress, QPointF(40, 60), LEFT, LEFT)
    for x in range(45, 201, 5):
        send_mouse(canvas, QEvent.Type.MouseMove, QPointF(x, 60), NONE, LEFT)
    assert changes == [] and canvas.is_empty()  # nothing committed during the moves
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        send_mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(200, 60), LEFT, NONE)
    assert changes == [1]
    img = canvas.to_image()
    assert dark(img[58:63, 40:201]).any(axis=0).all()  # ink all along the line
    assert not dark(img[70:]).any() and not dark(img[:50]).any()
    assert not canvas.is_empty() and canvas.undo_stack.count() == 1


def test_qtest_mouse_helpers_draw_too(qtbot, canvas):
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        qtbot.mousePress(canvas, LEFT, pos=QPoint(50, 100))
        for x in range(60, 181, 10):
            qtbot.mouseMove(canvas, QPoint(x, 100))
        qtbot.mouseRelease(canvas, LEFT, pos=QPoint(180, 100))
    assert dark(canvas.to_image()[98:103, 50:181]).any(axis=0).all()


def test_hovering_paints_a_cursor_outline_and_does_not_change_the_sketch(qtbot, canvas):
    changes = []
    canvas.sketchChanged.connect(lambda: changes.append(1))
    send_mouse(canvas, QEvent.Type.MouseMove, QPointF(60, 60), NONE, NONE)  # away from the hint text
    assert changes == [] and canvas.is_empty()
    shown = canvas.grab().toImage()
    canvas.set_pen_width(30)
    assert shown.pixelColor(60 + 2, 60).lightness() > 200  # inside the small outline: paper
    outline = canvas.grab().toImage()
    assert min(outline.pixelColor(60 + dx, 60).lightness() for dx in range(13, 18)) < 220
    QApplication.sendEvent(canvas, QEvent(QEvent.Type.Leave))
    assert min(canvas.grab().toImage().pixelColor(60 + dx, 60).lightness() for dx in range(13, 18)) > 250


def test_undo_and_redo_restore_exactly_the_previous_images(qtbot, canvas):
    blank = canvas.to_image()
    draw(canvas, [(30, 30), (200, 200)])
    one = canvas.to_image()
    draw(canvas, [(30, 200), (200, 30)])
    two = canvas.to_image()
    assert not np.array_equal(one, two)
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        canvas.undo()
    np.testing.assert_array_equal(canvas.to_image(), one)
    canvas.undo()
    np.testing.assert_array_equal(canvas.to_image(), blank)
    assert canvas.is_empty()
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        canvas.redo()
    np.testing.assert_array_equal(canvas.to_image(), one)
    canvas.redo()
    np.testing.assert_array_equal(canvas.to_image(), two)


def test_clear_is_undoable_and_a_no_op_when_already_blank(qtbot, canvas):
    canvas.clear()
    assert canvas.undo_stack.count() == 0
    draw(canvas, [(50, 50), (150, 150)])
    drawn = canvas.to_image()
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        canvas.clear()
    assert canvas.is_empty() and canvas.strokes() == []
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        canvas.undo()
    np.testing.assert_array_equal(canvas.to_image(), drawn)
    canvas.redo()
    assert canvas.is_empty()


def test_the_eraser_removes_ink(canvas):
    draw(canvas, [(40, 120), (200, 120)])
    canvas.set_tool("eraser")
    assert canvas.tool == "eraser"
    draw(canvas, [(120, 60), (120, 180)])
    img = canvas.to_image()
    assert not dark(img[:, 112:129]).any()  # eraser 16 px wide
    assert dark(img[115:126, 40:100]).any() and dark(img[115:126, 140:200]).any()
    assert canvas.strokes()[-1].erase and canvas.strokes()[-1].width == 16
    draw(canvas, [(40, 120), (120, 120)])  # the whole line: nothing left
    draw(canvas, [(120, 120), (200, 120)])
    assert canvas.is_empty() and canvas.undo_stack.count() == 4
    with pytest.raises(ValueError):
        canvas.set_tool("brush")


def test_pen_width_sets_the_stroke_thickness(canvas):
    def thickness(width: int, y: int) -> int:
        canvas.set_pen_width(width)
        draw(canvas, [(40, y), (200, y)])
        return int(dark(canvas.to_image()[:, 120]).sum())

    thin = thickness(2, 40)
    thick = thickness(20, 140) - thin
    assert 1 <= thin <= 4 and 18 <= thick <= 22
    canvas.set_pen_width(100)
    assert canvas.pen_width == 40 and canvas.eraser_width == 160
    canvas.set_pen_width(0)
    assert canvas.pen_width == 1 and canvas.eraser_width == 12


def test_tablet_pressure_scales_the_width(qtbot, canvas):
    device = QPointingDevice("test stylus", 1, QInputDevice.DeviceType.Stylus, QPointingDevice.PointerType.Pen,
                             QInputDevice.Capability.Position | QInputDevice.Capability.Pressure, 1, 3)

    def tablet(kind, x, y, pressure, button, buttons):
        p = QPointF(x, y)
        ev = QTabletEvent(kind, device, p, canvas.mapToGlobal(p), pressure, 0.0, 0.0, 0.0, 0.0, 0.0,
                          Qt.KeyboardModifier.NoModifier, button, buttons)
        QApplication.sendEvent(canvas, ev)
        return ev.isAccepted()

    canvas.set_pen_width(10)
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        assert tablet(QEvent.Type.TabletPress, 40, 100, 1.0, LEFT, LEFT)
        for x in range(50, 201, 10):
            tablet(QEvent.Type.TabletMove, x, 100, 1.0, NONE, LEFT)
        tablet(QEvent.Type.TabletRelease, 200, 100, 0.0, LEFT, NONE)
    assert canvas.strokes()[-1].width == pytest.approx(15)
    assert 13 <= dark(canvas.to_image()[:, 120]).sum() <= 17


def test_load_image_shows_the_sketch_fitted_and_is_undoable(qtbot, tmp_path, canvas):
    draw(canvas, [(20, 20), (60, 20)])
    before = canvas.to_image()
    sketch = np.full((100, 200), 255, np.uint8)  # wide: fitted to the width, centred vertically
    cv2.rectangle(sketch, (20, 20), (180, 80), 0, 4)
    path = tmp_path / "house.png"
    assert cv2.imwrite(str(path), sketch)
    with qtbot.waitSignal(canvas.sketchChanged, timeout=1000):
        canvas.load_image(path)
    img = canvas.to_image()
    assert canvas.strokes() == [] and not canvas.is_empty()
    x0, y0, x1, y1 = sketch_bbox(img)
    scale = SIZE * 0.9 / 200
    assert abs(x0 - (SIZE * 0.05 + 18 * scale)) <= 2 and abs(x1 - (SIZE * 0.95 - 18 * scale)) <= 2
    assert abs((y0 + y1) / 2 - SIZE / 2) <= 2  # centred
    assert not dark(img[:30, :70]).any()  # the earlier stroke is gone
    draw(canvas, [(120, 100), (120, 140)])  # strokes go on top of the loaded sketch
    assert dark(canvas.to_image()[100:141, 119:122]).all()
    canvas.undo()
    np.testing.assert_array_equal(canvas.to_image(), img)
    canvas.undo()
    np.testing.assert_array_equal(canvas.to_image(), before)
    canvas.redo()
    np.testing.assert_array_equal(canvas.to_image(), img)
    canvas.clear()
    assert canvas.is_empty()


def test_a_corrupt_file_raises_image_error_naming_it(tmp_path, canvas):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    draw(canvas, [(20, 20), (60, 20)])
    before = canvas.to_image()
    with pytest.raises(ImageError, match="broken.png"):
        canvas.load_image(bad)
    np.testing.assert_array_equal(canvas.to_image(), before)
    assert canvas.undo_stack.count() == 1


def test_save_png_round_trips_and_names_the_path_on_failure(tmp_path, canvas):
    draw(canvas, [(30, 40), (200, 180), (60, 200)])
    path = tmp_path / "sketch.png"
    canvas.save_png(path)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), canvas.to_image())
    missing = tmp_path / "no such folder" / "sketch.png"
    with pytest.raises(OSError, match="no such folder"):
        canvas.save_png(missing)


def test_the_canvas_is_white_paper_even_with_a_dark_palette(canvas):
    pal = canvas.palette()
    for role in (QPalette.ColorRole.Window, QPalette.ColorRole.Base):
        pal.setColor(role, QColor(30, 30, 30))
    canvas.setPalette(pal)
    empty = canvas.grab().toImage()
    assert empty.pixelColor(5, 5).lightness() == 255
    hint = [empty.pixelColor(x, SIZE // 2).lightness() for x in range(SIZE)]
    assert min(hint) < 230  # the grey hint text
    draw(canvas, [(20, 20), (200, 20)])
    shown = canvas.grab().toImage()
    assert shown.pixelColor(100, 20).lightness() < 60 and shown.pixelColor(100, 120).lightness() == 255


def test_a_resize_scales_the_drawing_and_never_crops_what_is_searched(qtbot, canvas):
    draw(canvas, [(20, 20), (220, 20), (220, 220)])
    searched = canvas.to_image()
    assert canvas.paper_size == (SIZE, SIZE)
    for size in [(120, 90), (500, 300), (SIZE, SIZE)]:
        canvas.resize(*size)
        np.testing.assert_array_equal(canvas.to_image(), searched)  # the paper, whatever the widget
        assert not canvas.is_empty()
        shown = canvas.grab().toImage()
        assert (shown.width(), shown.height()) == size
        s = min(size[0] / SIZE, size[1] / SIZE)  # shown fitted and centred
        ox, oy = (size[0] - SIZE * s) / 2, (size[1] - SIZE * s) / 2
        corner = QPoint(round(ox + 220 * s), round(oy + 20 * s) + 1)
        assert shown.pixelColor(corner).lightness() < 128
    canvas.resize(400, 200)  # a stroke drawn now lands on the paper where it is seen
    s, ox = 200 / SIZE, (400 - SIZE * 200 / SIZE) / 2
    draw(canvas, [(ox + 120 * s, 100), (ox + 120 * s, 150)])
    stroke = canvas.strokes()[-1]
    np.testing.assert_allclose(stroke.points[[0, -1]], [[120, 100 / s], [120, 150 / s]], atol=1e-6)
    assert stroke.width == pytest.approx(canvas.pen_width / s)
    assert dark(canvas.to_image()[125:175, 118:123]).any(axis=1).all()


def test_a_blank_canvas_follows_the_widget_and_a_cleared_one_starts_anew(canvas):
    canvas.resize(300, 200)
    assert canvas.to_image().shape == (200, 300) and canvas.is_empty()
    draw(canvas, [(20, 20), (100, 20)])
    canvas.resize(200, 200)
    assert canvas.to_image().shape == (200, 300)
    canvas.clear()
    assert canvas.to_image().shape == (200, 200)
    canvas.undo()  # the cleared sketch comes back on its own paper
    assert canvas.to_image().shape == (200, 300) and not canvas.is_empty()


def test_paint_work_does_not_grow_with_the_stroke(qtbot, canvas):
    """The canvas paints a stroke being drawn segment by segment: the Qt calls made by one mouse move and
    by one paint event are the same for the 10th and the 600th point (they grew with the stroke's length,
    which with PySide6 6.12.0 made the app abort; see pyproject.toml)."""
    import sys

    calls = []

    def count(_frame, event, _arg):
        if event == "c_call":
            calls.append(1)

    def measured(fn) -> int:
        calls.clear()
        sys.setprofile(count)
        try:
            fn()
        finally:
            sys.setprofile(None)
        return len(calls)

    send_mouse(canvas, QEvent.Type.MouseButtonPress, QPointF(10, 10), LEFT, LEFT)
    per_move, per_paint = {}, {}
    for n in range(1, 601):
        p = QPointF(10 + (n % 200), 10 + n * 0.35)
        moved = measured(lambda p=p: send_mouse(canvas, QEvent.Type.MouseMove, p, NONE, LEFT))
        if n in (10, 600):
            per_move[n] = moved
            per_paint[n] = measured(canvas.repaint)
    send_mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(10, 220), LEFT, NONE)
    assert per_move[600] <= per_move[10] + 2 and per_paint[600] <= per_paint[10] + 2, (per_move, per_paint)
    assert dark(canvas.to_image()).sum() > 1000


def test_undo_history_keeps_the_last_undo_limit_steps_and_the_sketch_intact(qtbot, monkeypatch):
    import app.canvas

    monkeypatch.setattr(app.canvas, "UNDO_LIMIT", 5)
    c = SketchCanvas()
    qtbot.addWidget(c)
    c.resize(SIZE, SIZE)
    c.show()
    qtbot.waitExposed(c)
    assert c.undo_stack.undoLimit() == 5
    images = [c.to_image()]
    for i in range(8):  # more steps than the limit
        draw(c, [(20 + 25 * i, 20), (20 + 25 * i, 220)])
        images.append(c.to_image())
    assert c.undo_stack.count() == 5 and len(c.strokes()) == 8  # the oldest steps went, not the strokes
    np.testing.assert_array_equal(c.to_image(), images[8])
    assert dark(c.to_image()[100, 15:26]).any() and dark(c.to_image()[100, 190:201]).any()  # first, last stroke
    undone = 0
    while c.undo_stack.canUndo():
        c.undo()
        undone += 1
        np.testing.assert_array_equal(c.to_image(), images[8 - undone])
    assert undone == 5 and len(c.strokes()) == 3  # the three oldest strokes can no longer be undone
    while c.undo_stack.canRedo():
        c.redo()
    np.testing.assert_array_equal(c.to_image(), images[8])
    assert len(c.strokes()) == 8
