"""The results grid, headless: sections by the calibrated score, the query photo marked, a grid that
fills its width at any thumbnail size, keyboard walking in rank order, Enter / double click opening."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QContextMenuEvent, QDrag, QGuiApplication, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from app.results import (
    HitRole,
    ResultDelegate,
    ResultsModel,
    ResultsView,
    ThumbnailCache,
    ThumbSizeSlider,
    format_score,
)
from app.workers import Runner
from engine.hits import Hit

PHOTOS = sorted((Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos").glob("*.jpg"))


def hits_with(scores, *, box=(10.0, 10.0, 60.0, 60.0)) -> list[Hit]:
    """Hits on the demo photos (cycled) with these scores, best first."""
    return [Hit(rank=i + 1, path=str(PHOTOS[i % len(PHOTOS)]), score=float(s), box=box, scale=0.5,
                mirrored=False, row=i, raw_score=0.3) for i, s in enumerate(scores)]


@pytest.fixture
def grid(qtbot):
    runner = Runner()
    thumbs = ThumbnailCache(runner)
    model = ResultsModel(thumbs)
    model.set_likely_cut(0.5)
    view = ResultsView()
    view.setModel(model)
    view.setItemDelegate(ResultDelegate(model, view))
    qtbot.addWidget(view)
    yield model, view, thumbs
    runner.wait(30_000)


def _all_loaded(thumbs, model) -> bool:
    return all(thumbs.get(h.path) is not None for h in model.hits)


def test_sketch_results_split_into_likely_matches_and_other_photos(grid):
    model, view, _ = grid
    scores = [0.9, 0.7, 0.55, 0.3, 0.1, 0.02]
    model.set_hits(hits_with(scores), "sketch")
    titles = [(s.title, s.first, s.count) for s in model.sections()]
    assert titles == [("Likely matches (3)", 0, 3), ("Other photos (3)", 3, 3)]
    assert model.counts() == (3, 3, 0)
    assert model.summary() == "3 likely matches · 3 other photos"
    model.set_min_score(0.05)  # the fish at 0.02 is hidden, and the label says so
    assert model.counts() == (3, 2, 1)
    assert model.summary() == "3 likely matches · 2 other photos · 1 below 0.05 hidden"
    model.set_hits(hits_with([0.3, 0.2]), "sketch")  # nothing above the cut: said in its own header
    assert model.sections()[0].title == "No likely matches" and model.sections()[0].count == 0
    assert model.summary() == "0 likely matches · 2 other photos"


def test_hits_the_engine_says_are_not_likely_stay_out_of_the_likely_matches(grid):
    # the engine's stand-out test (engine.fusion.FusionParams.stand_out_z): in a collection whose best hit does
    # not stand out from what the best of as many photos without the shape reach, no hit is a likely match,
    # whatever its score; the grid says why instead of "no photo scores >= the cut"
    import dataclasses

    model, _, _ = grid
    hits = [dataclasses.replace(h, likely=False) for h in hits_with([0.7, 0.55, 0.3])]
    model.set_hits(hits, "sketch")
    first, other = model.sections()
    assert (first.title, first.count) == ("No likely matches", 0) and "stands out" in first.note
    assert other.title == "Other photos (3)" and not other.note.startswith("below")
    assert [h.score for h in model.hits] == [0.7, 0.55, 0.3]  # the ranking is unchanged
    said = [dataclasses.replace(h, likely=i < 1) for i, h in enumerate(hits_with([0.7, 0.55, 0.3]))]
    model.set_hits(said, "sketch")
    assert model.counts()[:2] == (1, 2)


def test_likely_matches_hidden_by_the_score_cut_off_are_not_called_absent(grid):
    # with "score >= 0.90", likely matches at 0.6 are hidden: the grid says so, never "no photo scores >= 25%"
    model, _, _ = grid
    assert model.likely < 0.6
    model.set_hits(hits_with([0.62, 0.61, 0.6, 0.01]), "sketch")
    assert model.counts()[0] == 3
    model.set_min_score(0.9)
    (first,) = model.sections()
    assert first.title == "No likely matches shown" and "3 hidden by the score cut-off (≥ 0.90)" in first.note
    assert "4 below 0.90 hidden" in model.summary()
    model.set_min_score(0.605)
    (first,) = model.sections()
    assert first.title == "Likely matches (2)"  # some shown: the summary line counts the hidden ones


def test_sketch_results_keep_the_engines_order_within_each_section(grid):
    # the engine ranks the hits both signals confirm first (engine.fusion.confirmed_first), so a score may be
    # lower than the next one's; the grid keeps that order inside each section instead of sorting by score
    model, _, _ = grid
    given = hits_with([0.62, 0.9, 0.2, 0.55, 0.35, 0.01])
    model.set_hits(given, "sketch")
    assert [h.score for h in model.hits] == [0.62, 0.9, 0.55, 0.2, 0.35, 0.01]
    assert [s.note.endswith("where the shape stands out first") for s in model.sections()] == [True, True]
    model.set_likely_cut(0.3)  # from the engine's order again, not from the previous split
    assert [h.score for h in model.hits] == [0.62, 0.9, 0.55, 0.35, 0.2, 0.01]
    model.set_min_score(0.3)
    assert [h.score for h in model.hits] == [0.62, 0.9, 0.55, 0.35]
    model.set_min_score(0.0)
    model.set_hits(given, "region")  # a region's shape ranking is ordered the same way
    assert [h.score for h in model.hits] == [0.62, 0.9, 0.2, 0.55, 0.35, 0.01]


def test_a_box_that_is_not_sure_is_drawn_dashed(qtbot):
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    from app.results import box_is_sure, draw_box

    def ink(sure: bool) -> int:
        img = QImage(100, 100, QImage.Format.Format_RGB32)
        img.fill(0xFFFFFFFF)
        p = QPainter(img)
        draw_box(p, QRectF(0, 0, 100, 100), (10, 10, 90, 90), (100, 100), width=2, sure=sure)
        p.end()
        row = [img.pixelColor(x, 10).lightness() < 250 for x in range(15, 85)]  # along the top edge
        return sum(row)

    assert ink(True) == 70 and 15 < ink(False) < 60  # solid: every pixel; dashed: gaps
    h = hits_with([0.5])[0]
    assert box_is_sure(h)  # hits that do not say (older scripts) are drawn as sure
    assert not box_is_sure(Hit(1, h.path, 0.5, h.box, 0.5, False, 0, 0.3, box_sure=False))


def test_the_grid_draws_a_header_above_each_section(qtbot, grid):
    model, view, _ = grid
    view.resize(700, 900)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9, 0.8, 0.7, 0.6, 0.3, 0.1]), "sketch")
    headers = view.header_rects()
    assert [s.title for s, _ in headers] == ["Likely matches (4)", "Other photos (2)"]
    first_other = view.visualRect(model.index(4))
    last_likely = view.visualRect(model.index(3))
    # the "Other photos" header sits between the last likely match and the first other photo,
    # spanning the width, and no cell overlaps a header
    assert last_likely.bottom() < headers[1][1].top() and headers[1][1].bottom() < first_other.top()
    assert headers[1][1].width() > 0.9 * view.viewport().width()
    for row in range(model.rowCount()):
        for _, h in headers:
            assert not view.visualRect(model.index(row)).intersects(h)
    # a point on a header is no result
    assert not view.indexAt(headers[1][1].center()).isValid()
    assert view.indexAt(first_other.center()).row() == 4


def test_keyboard_walks_all_results_in_rank_order_across_sections(qtbot, grid):
    model, view, _ = grid
    view.resize(620, 700)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05]), "sketch")
    seen = []
    view.selectionModel().currentChanged.connect(lambda cur, _prev: seen.append(cur.data(HitRole)))
    view.setFocus()
    view.setCurrentIndex(model.index(0))
    for _ in range(model.rowCount() - 1):
        qtbot.keyClick(view, Qt.Key.Key_Right)
    assert [h.rank for h in seen] == list(range(1, 10))  # every result once, in rank order, no header
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert view.currentIndex().row() == 0
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.currentIndex().row() == 8
    cols = view.columns()
    assert cols >= 2
    view.setCurrentIndex(model.index(0))
    qtbot.keyClick(view, Qt.Key.Key_Down)  # below the first likely match: the next row of its section
    assert view.currentIndex().row() == min(cols, 3)
    view.setCurrentIndex(model.index(3))  # the last likely match: Down goes into "Other photos"
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.currentIndex().row() >= 4 and view.selectionModel().isSelected(view.currentIndex())


def test_enter_opens_the_result_and_double_click_or_space_views_it(qtbot, grid):
    model, view, _ = grid
    view.resize(600, 600)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9, 0.6, 0.2]), "sketch")
    view.setFocus()
    view.setCurrentIndex(model.index(1))
    with qtbot.waitSignal(view.openRequested, timeout=2000) as sig:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert sig.args[0] is model.hits[1]
    opened = []
    view.openRequested.connect(opened.append)
    qtbot.keyClick(view, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # the window's, not the grid's
    assert opened == []
    view.openRequested.disconnect()
    centre = view.visualRect(model.index(2)).center()
    with qtbot.waitSignal(view.viewRequested, timeout=2000) as sig:
        qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert sig.args[0] is model.hits[2]
    view.setCurrentIndex(model.index(0))
    with qtbot.waitSignal(view.viewRequested, timeout=2000) as sig:
        qtbot.keyClick(view, Qt.Key.Key_Space)
    assert sig.args[0] is model.hits[0]


def test_browsing_reads_as_dates_without_scores_or_boxes(grid):
    import dataclasses
    import datetime

    model, _, _ = grid
    when = datetime.datetime(2019, 6, 1, 12).timestamp()
    hits = [dataclasses.replace(h, taken=when - i * 86400) for i, h in enumerate(hits_with([0.0, 0.0, 0.0]))]
    model.set_min_score(0.5)  # a score cut-off does not hide photos when browsing
    model.set_hits(hits, "browse")
    assert model.rowCount() == 3 and model.hits == hits  # in the order given (newest first)
    assert [s.title for s in model.sections()] == ["The collection, newest first (3)"]
    assert model.summary() == "3 photos, newest first"
    assert "2019-06-01" in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    model.set_min_score(0.0)


def test_image_results_read_as_similarities_and_mark_the_query_photo(grid):
    model, view, _ = grid
    hits = hits_with([0.97, 0.6, 0.4])
    model.set_hits(hits, "image", query_path=hits[0].path)
    assert [s.title for s in model.sections()] == ["Most similar (3)"]  # no likely / other split
    assert model.is_query(hits[0]) and not model.is_query(hits[1])
    assert "query photo" in model.summary()
    assert format_score(0.87, "image") == "similarity 0.87"
    assert format_score(0.87, "sketch") == "match 87%"  # a different scale reads differently
    assert format_score(0.2996, "sketch") == "match 29%"  # below the likely cut (0.30): never reads as reaching it
    assert format_score(0.30, "sketch") == "match 30%" and format_score(0.29, "sketch") == "match 29%"
    model.set_hits(hits_with([0.998, 0.6]), "image")  # a pasted copy: no path, but the same photo
    assert model.is_query(model.hits[0]) and not model.is_query(model.hits[1])
    model.set_hits(hits_with([0.998]), "sketch")  # a sketch hit is never "the query"
    assert not model.is_query(model.hits[0])


def test_the_query_badge_is_drawn_on_the_query_photo(qtbot, grid):
    model, view, thumbs = grid
    view.resize(600, 500)
    view.show()
    qtbot.waitExposed(view)
    hits = hits_with([0.97, 0.6])
    model.set_hits(hits, "image", query_path=hits[1].path)  # the badge goes where the path says
    qtbot.waitUntil(lambda: _all_loaded(thumbs, model), timeout=20_000)
    view.viewport().repaint()
    img = view.viewport().grab().toImage()
    hl = view.palette().color(view.palette().ColorRole.Highlight)

    def badge_pixels(row: int) -> int:
        r = view.visualRect(model.index(row))
        corner = img.copy(r.left(), r.top(), r.width() // 2, r.height() // 3)
        return sum(corner.pixelColor(x, y) == hl for x in range(corner.width()) for y in range(corner.height()))

    assert badge_pixels(1) > 100 and badge_pixels(0) == 0


@pytest.mark.parametrize("width", [700, 1100, 1440])
def test_the_grid_fills_its_width_with_as_many_columns_as_fit(qtbot, grid, width):
    model, view, _ = grid
    view.resize(width, 600)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9 - 0.01 * i for i in range(60)]), "sketch")
    rects = [view.visualRect(model.index(i)) for i in range(model.rowCount())]
    cols = view.columns()
    thumb = view.thumb_size()
    assert cols == len({r.left() for r in rects})
    assert cols >= (view.viewport().width() - 40) // (thumb + 24)  # as many as fit
    right = max(r.right() for r in rects)
    assert view.viewport().width() - right < thumb // 2 + 24  # no wide empty strip on the right
    assert view.verticalScrollBar().maximum() > 0
    qtbot.waitUntil(view.verticalScrollBar().isVisible, timeout=2000)


def test_a_few_results_at_a_high_cut_off_keep_their_columns_names_and_scrollbar(qtbot, grid):
    """At cut-off 0.1 the old grid fell to one column, clipped the last name and lost its scrollbar."""
    model, view, _ = grid
    view.resize(520, 400)
    view.show()
    qtbot.waitExposed(view)
    long = [Hit(rank=i + 1, path=f"/photos/a-very-long-file-name-of-a-holiday-photo-number-{i}.jpg", score=s,
                box=(0, 0, 1, 1), scale=1.0, mirrored=False, row=i) for i, s in enumerate([0.8, 0.5, 0.2, 0.15,
                                                                                          0.12, 0.11, 0.05])]
    model.set_hits(long, "sketch")
    model.set_min_score(0.1)
    assert model.rowCount() == 6
    assert view.columns() >= 2
    bottom = max(view.visualRect(model.index(i)).bottom() for i in range(model.rowCount()))
    sb = view.verticalScrollBar()
    assert bottom > view.viewport().height() and sb.maximum() > 0
    qtbot.waitUntil(sb.isVisible, timeout=2000)
    view.scrollTo(model.index(5))  # the last one can be brought fully into view
    last = view.visualRect(model.index(5))
    assert view.viewport().rect().contains(last)
    # and its name is elided to its cell, never cut
    fm = view.fontMetrics()
    name = fm.elidedText(Path(long[5].path).name, Qt.TextElideMode.ElideMiddle, last.width() - 12)
    assert "…" in name and fm.horizontalAdvance(name) <= last.width() - 12


def test_thumbnail_size_slider_and_ctrl_wheel_change_the_grid_and_reload_sharper(qtbot, grid):
    model, view, thumbs = grid
    view.resize(1000, 700)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9, 0.8, 0.3]), "sketch")
    qtbot.waitUntil(lambda: _all_loaded(thumbs, model), timeout=20_000)
    small = max(thumbs.get(model.hits[0].path)[0].width(), thumbs.get(model.hits[0].path)[0].height())
    cols = view.columns()
    slider = ThumbSizeSlider(view)
    qtbot.addWidget(slider)
    with qtbot.waitSignal(view.thumbSizeChanged, timeout=1000) as sig:
        slider.setValue(380)
    assert sig.args == [380] and view.thumb_size() == 380
    assert view.columns() < cols
    assert view.visualRect(model.index(0)).width() >= 380
    # the thumbnail shown is reloaded at the larger size (not the small one blown up)
    view.viewport().repaint()
    qtbot.waitUntil(lambda: max(thumbs.get(model.hits[0].path)[0].width(),
                                thumbs.get(model.hits[0].path)[0].height()) > small, timeout=20_000)
    assert max(thumbs.get(model.hits[0].path)[0].width(), thumbs.get(model.hits[0].path)[0].height()) >= 380
    # Ctrl+wheel down makes them smaller, and the slider follows
    pos = QPointF(view.viewport().rect().center())
    ev = QWheelEvent(pos, view.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, -240),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase,
                     False)
    with qtbot.waitSignal(view.thumbSizeChanged, timeout=1000):
        view.wheelEvent(ev)
    assert view.thumb_size() < 380 and slider.value() == view.thumb_size()
    view.set_thumb_size(10)  # clamped
    assert view.thumb_size() == 96


def test_a_loaded_thumbnail_repaints_only_its_own_cell(qtbot, grid, monkeypatch):
    model, view, thumbs = grid
    view.resize(800, 700)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9, 0.8, 0.7, 0.6, 0.5]), "sketch")
    qtbot.waitUntil(lambda: _all_loaded(thumbs, model), timeout=20_000)
    painted = []
    delegate = view.itemDelegate()
    original = delegate.paint
    monkeypatch.setattr(delegate, "paint", lambda p, o, ix: (painted.append(ix.row()), original(p, o, ix)))
    view.viewport().repaint()
    assert sorted(painted) == [0, 1, 2, 3, 4]
    painted.clear()
    thumbs.loaded.emit(model.hits[2].path)  # one thumbnail arrives
    qtbot.waitUntil(lambda: bool(painted), timeout=2000)
    assert painted == [2]


def test_a_thumbnail_is_never_drawn_larger_than_the_size_it_was_loaded_for(qtbot, grid):
    model, view, _ = grid
    view.resize(700, 600)  # two columns of cells wider than the thumbnails
    view.set_thumb_size(200)
    model.set_hits(hits_with([0.9, 0.8]), "sketch")
    cell = view.visualRect(model.index(0))
    assert cell.width() > 230
    target = view.itemDelegate().image_rect(cell.adjusted(6, 6, -6, -40), 640, 480)  # a landscape photo
    assert target.width() <= 200 and target.height() <= 150
    assert abs(target.center().x() - cell.center().x()) <= 1  # centred in its cell


# -- selecting several results, copying and dragging them out ---------------------------------------------------
@pytest.fixture
def shown(qtbot, grid):
    """The grid shown 620 px wide (three columns) with nine results in two sections."""
    model, view, thumbs = grid
    view.resize(620, 900)
    view.show()
    qtbot.waitExposed(view)
    model.set_hits(hits_with([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05]), "sketch")
    view.setFocus()
    return model, view, thumbs


def _click(qtbot, view, model, row, modifier=Qt.KeyboardModifier.NoModifier, button=Qt.MouseButton.LeftButton):
    qtbot.mouseClick(view.viewport(), button, modifier, view.visualRect(model.index(row)).center())


def _send_mouse(widget, kind, pos, button, buttons) -> None:
    """A mouse event with ``buttons`` held (QTest's moves hold none: a drag needs them)."""
    QApplication.sendEvent(widget, QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))


def _ranks(view) -> list[int]:
    return [h.rank for h in view.selected_hits()]


def test_ctrl_click_toggles_shift_click_extends_a_range_in_rank_order_and_ctrl_a_selects_all(qtbot, shown):
    model, view, _ = shown
    assert view.columns() == 3
    ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
    _click(qtbot, view, model, 4)
    assert _ranks(view) == [5] and view.currentIndex().row() == 4
    _click(qtbot, view, model, 1, ctrl)
    _click(qtbot, view, model, 7, ctrl)
    assert _ranks(view) == [2, 5, 8]  # rank order, not the order clicked
    _click(qtbot, view, model, 4, ctrl)  # toggled off again
    assert _ranks(view) == [2, 8]
    _click(qtbot, view, model, 2)  # a plain click selects that one alone
    assert _ranks(view) == [3]
    # Shift-click: the run of results from the anchor to it in rank order (across grid rows and sections),
    # not the rectangle between them
    _click(qtbot, view, model, 6, shift)
    assert _ranks(view) == [3, 4, 5, 6, 7]
    _click(qtbot, view, model, 1, shift)  # from the same anchor, backwards
    assert _ranks(view) == [2, 3]
    _click(qtbot, view, model, 8, ctrl)
    assert _ranks(view) == [2, 3, 9]
    qtbot.keyClick(view, Qt.Key.Key_A, ctrl)
    assert _ranks(view) == list(range(1, 10))
    # Shift+arrows extend from the current result in rank order too
    _click(qtbot, view, model, 4)  # the first of "Other photos" (rows 4 5 6 / 7 8)
    qtbot.keyClick(view, Qt.Key.Key_Down, shift)  # one grid row down: three results on
    assert _ranks(view) == [5, 6, 7, 8]
    qtbot.keyClick(view, Qt.Key.Key_Right)  # a plain arrow moves and selects one again
    assert _ranks(view) == [9] and view.currentIndex().row() == 8


def test_selected_hits_fall_back_to_the_current_result(qtbot, shown):
    model, view, _ = shown
    view.setCurrentIndex(model.index(5))
    view.selectionModel().clearSelection()
    assert view.currentIndex().row() == 5 and [h.rank for h in view.selected_hits()] == [6]
    view.selectionModel().clear()
    assert view.selected_hits() == []
    _click(qtbot, view, model, 3, Qt.KeyboardModifier.ShiftModifier)  # no anchor to extend from: that one
    assert [h.rank for h in view.selected_hits()] == [4]


def test_dragging_on_empty_space_selects_the_results_the_band_touches(qtbot, shown):
    model, view, _ = shown
    vp = view.viewport()
    r0, r5 = view.visualRect(model.index(0)), view.visualRect(model.index(5))
    start = QPoint(r0.left() - 3, r0.top() - 3)  # the padding above and left of the first result
    assert not view.indexAt(start).isValid()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, pos, button, buttons):
        _send_mouse(vp, kind, pos, button, buttons)

    send(QEvent.Type.MouseButtonPress, start, left, left)
    for k in range(1, 6):
        send(QEvent.Type.MouseMove, start + (r5.center() - start) * k / 5, none, left)
    assert view.state() == view.State.DragSelectingState
    view.viewport().repaint()  # the band is drawn
    send(QEvent.Type.MouseButtonRelease, r5.center(), left, none)
    # the first two columns of rows 0 1 2 / 3 / 4 5 6: the band is a rectangle, not a range
    assert _ranks(view) == [1, 2, 4, 5, 6]


def test_ctrl_c_copies_the_selected_photos_as_paths_and_files(qtbot, shown):
    model, view, _ = shown
    _click(qtbot, view, model, 0)
    _click(qtbot, view, model, 2, Qt.KeyboardModifier.ControlModifier)
    with qtbot.waitSignal(view.pathsCopied, timeout=1000) as sig:
        qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    paths = [model.hits[0].path, model.hits[2].path]
    assert sig.args == [paths]
    md = QGuiApplication.clipboard().mimeData()
    assert md.text().splitlines() == paths
    assert [u.toLocalFile() for u in md.urls()] == paths


def test_the_model_offers_its_results_as_files_to_drag(shown):
    model, view, _ = shown
    ix = model.index(3)
    assert model.flags(ix) & Qt.ItemFlag.ItemIsDragEnabled and model.flags(ix) & Qt.ItemFlag.ItemIsSelectable
    assert {"text/uri-list", "text/plain"} <= set(model.mimeTypes())
    md = model.mimeData([model.index(3), model.index(1)])
    paths = [model.hits[1].path, model.hits[3].path]
    assert [u.toLocalFile() for u in md.urls()] == paths and md.text().splitlines() == paths
    assert not model.supportedDragActions() & Qt.DropAction.MoveAction  # a drop never moves the photos away


def test_dragging_a_selected_thumbnail_drags_the_selected_photos_out_as_files(qtbot, shown, monkeypatch):
    model, view, thumbs = shown
    qtbot.waitUntil(lambda: _all_loaded(thumbs, model), timeout=20_000)
    started = []

    def fake_exec(drag, *args):
        started.append((drag.mimeData(), drag.pixmap(), args))
        return Qt.DropAction.CopyAction

    monkeypatch.setattr(QDrag, "exec", fake_exec)
    _click(qtbot, view, model, 1)
    _click(qtbot, view, model, 5, Qt.KeyboardModifier.ControlModifier)
    vp = view.viewport()
    p = view.visualRect(model.index(5)).center()
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, pos, button, buttons):
        _send_mouse(vp, kind, pos, button, buttons)

    send(QEvent.Type.MouseButtonPress, p, left, left)
    far = p + QPoint(QApplication.startDragDistance() + 20, 0)
    send(QEvent.Type.MouseMove, p + QPoint(2, 0), none, left)
    send(QEvent.Type.MouseMove, far, none, left)
    send(QEvent.Type.MouseButtonRelease, far, left, none)
    assert len(started) == 1
    md, pm, args = started[0]
    paths = [model.hits[1].path, model.hits[5].path]
    assert [u.toLocalFile() for u in md.urls()] == paths and md.text().splitlines() == paths
    assert not pm.isNull() and max(pm.width(), pm.height()) <= 128  # the thumbnail follows the mouse
    assert not args[0] & Qt.DropAction.MoveAction
    assert model.rowCount() == 9 and _ranks(view) == [2, 6]  # nothing removed, the selection kept


def test_a_right_click_asks_for_the_context_menu_of_the_selected_results(qtbot, shown):
    model, view, _ = shown
    vp = view.viewport()
    got = []
    view.contextMenuRequested.connect(lambda pos, hits: got.append((pos, [h.rank for h in hits])))

    def right_click(row):
        p = view.visualRect(model.index(row)).center()
        qtbot.mousePress(vp, Qt.MouseButton.RightButton, pos=p)
        QApplication.sendEvent(vp, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, p, vp.mapToGlobal(p)))
        qtbot.mouseRelease(vp, Qt.MouseButton.RightButton, pos=p)
        return vp.mapToGlobal(p)

    _click(qtbot, view, model, 0)
    _click(qtbot, view, model, 1, Qt.KeyboardModifier.ControlModifier)
    where = right_click(1)  # on one of the selection: the menu is for the whole selection
    assert got[-1] == (where, [1, 2])
    right_click(4)  # on another result: that one alone is selected, as in a photo app
    assert got[-1][1] == [5] and _ranks(view) == [5]


def test_shift_f10_asks_for_the_context_menu_of_the_selected_results_like_the_menu_key(qtbot, shown):
    model, view, _ = shown
    got = []
    view.contextMenuRequested.connect(lambda pos, hits: got.append((pos, [h.rank for h in hits])))
    _click(qtbot, view, model, 2)
    qtbot.keyClick(view, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    centre = view.viewport().mapToGlobal(view.visualRect(model.index(2)).center())
    assert got == [(centre, [3])]
    qtbot.keyClick(view, Qt.Key.Key_F10)  # F10 alone is not the menu's key
    assert len(got) == 1
