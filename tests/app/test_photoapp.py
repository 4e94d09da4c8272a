"""The main window as a photo app: the collection shown with no query, the viewer, a region as the query, the
history of queries, filters, acting on results, the welcome panel."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QSettings, Qt  # noqa: E402

from app import mainwindow  # noqa: E402
from app._testsupport import HOUSE  # noqa: E402
from app._testsupport import draw_stroke as draw  # noqa: E402
from app.history import QueryHistory  # noqa: E402
from app.mainwindow import GRID, VIEWER, WELCOME, MainWindow  # noqa: E402
from engine.filters import PhotoFilter  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def _window(qtbot, tmp_path, db):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(db=db, settings=settings, restore=False, history=QueryHistory(tmp_path / "history"))
    win.index_workers = 1
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def window(qtbot, tmp_path, demo_db):
    win = _window(qtbot, tmp_path, demo_db)
    qtbot.waitUntil(lambda: not win.warming_up and win.model.kind == "browse" and win.model.rowCount() > 0,
                    timeout=60_000)
    yield win
    win.runner.wait(30_000)
    win.thumb_runner.wait(30_000)


def test_with_no_query_the_grid_shows_the_collection_newest_first(window):
    assert window.pages.currentIndex() == GRID
    hits = window.model.hits
    assert len(hits) == min(window.top_k, len(window.index))
    dates = [h.taken for h in hits]
    assert dates == sorted(dates, reverse=True)
    assert "newest first" in window.count_label.text()


def test_first_run_without_a_collection_welcomes(qtbot, tmp_path, monkeypatch):
    win = _window(qtbot, tmp_path, None)
    assert win.pages.currentIndex() == WELCOME
    asked, indexed = [], []
    monkeypatch.setattr(win, "choose_folder", lambda: asked.append(True))
    monkeypatch.setattr(win, "index_folder", lambda folder, db=None: indexed.append((Path(folder), db)))
    win.welcome.addFolder.disconnect()
    win.welcome.addFolder.connect(win.choose_folder)
    win.welcome.tryDemo.disconnect()
    win.welcome.tryDemo.connect(win.try_demo)
    win.welcome.addFolder.emit()
    win.welcome.tryDemo.emit()
    assert asked == [True] and indexed and indexed[0][0] == DEMO / "photos"
    assert "version" in mainwindow.about_text("1.2.3").lower() or "1.2.3" in mainwindow.about_text("1.2.3")


def test_the_viewer_steps_through_the_results_and_escape_goes_back(qtbot, window):
    window.results.setCurrentIndex(window.model.index(2))
    window.view_photo(window.model.hits[2])
    assert window.pages.currentIndex() == VIEWER and window.viewer.current_row == 2
    qtbot.keyClick(window.viewer, Qt.Key.Key_Right)
    assert window.viewer.current_row == 3 and window.results.currentIndex().row() == 3  # the grid follows
    qtbot.keyClick(window.viewer, Qt.Key.Key_Escape)
    assert window.pages.currentIndex() == GRID and window.results.currentIndex().row() == 3


def test_space_on_the_grid_opens_the_viewer(qtbot, window):
    window.results.setFocus()
    window.results.setCurrentIndex(window.model.index(0))
    qtbot.keyClick(window.results, Qt.Key.Key_Space)
    assert window.pages.currentIndex() == VIEWER


def test_a_region_of_a_photo_is_a_query_and_is_remembered(qtbot, window):
    photo = str((DEMO / "photos" / "gen_cup_1.jpg").resolve())
    with qtbot.waitSignal(window.searchFinished, timeout=60_000) as found:
        window.viewer.regionSearch.emit(photo, (30.0, 40.0, 390.0, 380.0), "both")
    assert found.args[0] > 0 and window.query_kind == "region" and window.model.kind == "region"
    assert window.region_mode.isVisible() and window.region_mode.currentData() == "both"
    assert any("cup" in Path(h.path).name for h in window.model.hits[:3])
    entry = window.history.entries[0]
    assert (entry.kind, entry.mode) == ("region", "both") and entry.path == photo
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):  # the toggle picks shape only
        window.region_mode.setCurrentIndex(window.region_mode.findData("shape"))
    assert window.model.kind == "sketch" and window.query_region[2] == "shape"
    own = [h for h in window.model.hits if h.path == photo]  # the query photo, marked, boxed on the region
    assert len(own) == 1 and window.model.is_query(own[0]) and own[0].box == (30.0, 40.0, 390.0, 380.0)
    window.detail.show_hit(own[0], kind="sketch", query_path=photo)
    words = html.unescape(window.detail.scores.text())
    assert "query photo itself" in words and "region's shape at" in words
    assert "turning the query region" in window.detail.rotation.heading.text()
    window.search_region(photo, (0, 0, 0, 10))  # no area: said in the status bar, the query kept
    qtbot.waitUntil(lambda: "no area" in window.message_label.text(), timeout=10_000)
    assert window.query_region[2] == "shape"


def test_a_drawing_is_one_history_entry_and_a_click_runs_it_again(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE[:2]:
            draw(window.canvas, stroke)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE[2:]:
            draw(window.canvas, stroke)
    sketches = [e for e in window.history.entries if e.kind == "sketch"]
    assert len(sketches) == 1  # replaced as the drawing grew
    first = [h.path for h in window.model.hits]
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.canvas.clear()
    assert window.model.kind == "browse"
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.history_strip.chosen.emit(sketches[0])
    assert window.model.kind == "sketch" and [h.path for h in window.model.hits][:3] == first[:3]
    photo = str(DEMO / "photos" / "lomiri_fig.jpg")
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.search_image_file(photo)
    assert [e.kind for e in window.history.entries][:2] == ["image", "sketch"]



def test_an_opened_sketch_file_is_a_new_history_entry_and_enter_in_the_strip_runs_the_entry(qtbot, window,
                                                                                          tmp_path, monkeypatch):
    """Found under Xvfb: File → Open a Sketch replaced the drawing's history entry (it counted as more strokes
    on it), and Enter on an entry of the strip re-ran the query shown (the window's Search Now took the key)."""
    import cv2

    from app import mainwindow as mw
    from tests.engine.synth import sketch_of

    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    house = [h.path for h in window.model.hits][:3]
    star = tmp_path / "star.png"
    cv2.imwrite(str(star), sketch_of("star"))
    monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(star), ""))
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.choose_sketch()
    sketches = [e for e in window.history.entries if e.kind == "sketch"]
    assert len(sketches) == 2  # the house's entry stays beside the star's
    assert [h.path for h in window.model.hits][:3] != house
    window.history_strip.setFocus()
    window.history_strip.setCurrentRow(1)  # the house, the older entry
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        qtbot.keyClick(window.history_strip, Qt.Key.Key_Return)
    assert [h.path for h in window.model.hits][:3] == house


def test_a_click_is_not_searched_as_a_shape_nor_remembered(qtbot, window):
    """A single click drew a dot that was searched as a shape (a 72 % match, a blob in the history); now the
    grid says to draw an outline, and only sketches that were searched go into the history."""
    with qtbot.waitSignal(window.searchFinished, timeout=30_000) as done:
        draw(window.canvas, [(0.5, 0.5), (0.5, 0.5)])
    assert done.args[0] == 0 and window.model.rowCount() == 0
    assert "only a dot" in window.results.empty_text and "draw the outline" in window.message_label.text()
    assert [e for e in window.history.entries if e.kind == "sketch"] == []
    with qtbot.waitSignal(window.searchFinished, timeout=30_000) as done:
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    assert done.args[0] > 0 and len([e for e in window.history.entries if e.kind == "sketch"]) == 1
    assert "only a dot" not in window.message_label.text()  # the failure is not this search's

def test_filters_narrow_every_query(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.filter_bar.set_filter(PhotoFilter(min_side=100_000))
    assert window.model.rowCount() == 0
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.filter_bar.set_filter(PhotoFilter(min_side=500))
    assert window.model.rowCount() > 0 and "filtered" in window.count_label.text()
    sizes = window.index.geometry[:, :2].min(axis=1)
    big = {p for p, s in zip(window.index.paths, sizes, strict=True) if s >= 500}
    assert {h.path for h in window.model.hits} <= big
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    assert {h.path for h in window.model.hits} <= big
    qtbot.waitUntil(lambda: window.filter_bar.roots() == [str((DEMO / "photos").resolve())], timeout=10_000)


def test_saved_sketch_results_carry_the_sketch_searched(qtbot, window, tmp_path):
    """Found under Xvfb: the saved JSON named the query's kind, collection and filter, not the sketch."""
    import numpy as np
    from PIL import Image

    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    searched = window.canvas.to_image()
    draw(window.canvas, [(10, 10), (40, 40)])  # a stroke drawn since: not what the results are of
    out = tmp_path / "house results.json"
    assert window.save_results(str(out))
    doc = json.loads(out.read_text())
    sketch = tmp_path / "house results.sketch.png"
    assert doc["query"]["sketch"] == str(sketch) and doc["kind"] == "sketch"
    assert np.array_equal(np.asarray(Image.open(sketch)), searched)
    assert "the sketch in house results.sketch.png" in window.message_label.text()
    csv_out = tmp_path / "r.csv"
    assert window.save_results(str(csv_out)) and not (tmp_path / "r.sketch.png").exists()


def test_results_can_be_saved_and_exported(qtbot, window, tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    assert window.save_results(str(out))
    doc = json.loads(out.read_text())
    assert doc["kind"] == "browse" and len(doc["results"]) == window.model.rowCount()
    assert set(doc["results"][0]) >= {"rank", "path", "score", "box", "scale", "mirrored"}
    window.results.selectAll()
    picked = window.results.selected_paths()[:3]
    dest = tmp_path / "export"
    monkeypatch.setattr(mainwindow, "ask_export", lambda *_a, **_k: (str(dest), "copy"))
    with qtbot.waitSignal(window.exportFinished, timeout=30_000):  # copied off the UI thread
        window.export_selection(picked)
    assert sorted(p.name for p in dest.iterdir()) == sorted(Path(p).name for p in picked)
    with qtbot.waitSignal(window.exportFinished, timeout=30_000) as done:
        window.export_selection(picked)  # again: nothing overwritten, the copies get new names
    assert len(list(dest.iterdir())) == 2 * len(picked) and len(done.args[0].renamed) == len(picked)


def test_browsing_and_region_results_read_right_in_the_detail_panel(qtbot, window):
    window.results.setCurrentIndex(window.model.index(0))  # browsing: the date, no score, no polar plot
    qtbot.waitUntil(lambda: window.detail.hit is window.model.hits[0], timeout=10_000)
    assert "taken" in window.detail.scores.text() and "cosine" not in window.detail.scores.text()
    assert window.detail.rotation.isHidden()
    photo = str((DEMO / "photos" / "gen_cup_1.jpg").resolve())
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):
        window.search_region(photo, (30.0, 40.0, 390.0, 380.0), "both")
    window.results.setCurrentIndex(window.model.index(1))
    hit = window.model.hits[1]
    assert "fused" in window.detail.scores.text() and "not a probability" in window.detail.scores.text()
    assert "cosine" not in window.detail.scores.text()
    qtbot.waitUntil(lambda: window.detail.photo.image is not None, timeout=20_000)
    assert window.detail.photo.box == hit.box  # the box drawn, as in the grid
    # the polar plot: the region against the photo, as an image (not "computing…" for ever)
    qtbot.waitUntil(lambda: window.detail.rotation.best_angle is not None, timeout=30_000)
    assert not window.detail.rotation.isHidden()


def test_a_sketch_from_the_history_searches_exactly_as_it_did(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    before = [(h.path, h.score) for h in window.model.hits]
    entry = window.history.entries[0]
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.canvas.clear()
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.history_strip.chosen.emit(entry)
    assert [(h.path, h.score) for h in window.model.hits] == before  # the very pixels searched again
    assert window.history.entries[0] is entry and len(window.history) == 1  # not a new entry
    assert window.history_strip.currentRow() == 0  # the strip marks the query shown


def test_an_empty_filtered_grid_says_why(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.filter_bar.set_filter(PhotoFilter(min_side=100_000))
    assert "filters" in window.results.empty_text
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.filter_bar.set_filter(PhotoFilter())
    assert window.results.empty_text == ""


def test_save_results_adds_the_chosen_type_to_a_bare_name(qtbot, window, tmp_path, monkeypatch):
    target = tmp_path / "mine"
    monkeypatch.setattr(mainwindow.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "CSV (*.csv)")))
    action = next(a for a in window.actions() if a.text() == "Save the Res&ults…")
    action.trigger()  # the menu's action (its triggered(bool) must not be taken for a path)
    assert (tmp_path / "mine.csv").read_text().startswith("rank,path,score")
    (tmp_path / "mine.csv").write_text("mine")  # the name typed again: the file there is not replaced unasked
    monkeypatch.setattr(mainwindow.QMessageBox, "question",
                        staticmethod(lambda *a, **k: mainwindow.QMessageBox.StandardButton.No))
    assert not window.save_results()
    assert (tmp_path / "mine.csv").read_text() == "mine"



def test_save_the_sketch_adds_png_to_a_bare_name(qtbot, window, tmp_path, monkeypatch):
    for stroke in HOUSE:
        draw(window.canvas, stroke)
    monkeypatch.setattr(mainwindow.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "hex"), "PNG (*.png)")))
    next(a for a in window.actions() if a.text() == "Sa&ve the Sketch As…").trigger()
    assert (tmp_path / "hex.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "hex").exists()
    (tmp_path / "hex.png").write_bytes(b"mine")
    monkeypatch.setattr(mainwindow.QMessageBox, "question",
                        staticmethod(lambda *a, **k: mainwindow.QMessageBox.StandardButton.No))
    window.save_sketch()
    assert (tmp_path / "hex.png").read_bytes() == b"mine"
    monkeypatch.setattr(mainwindow.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "my.sketch"), "PNG (*.png)")))
    window.save_sketch()  # a dot in the name is not a type: the PNG is named as one
    assert (tmp_path / "my.sketch.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "my.sketch").exists()


def test_every_menu_letter_picks_one_item(window):
    """Alt+F then a letter picks one item: no two items of a menu share their underlined letter."""
    for menu_action in window.menuBar().actions():
        menu = menu_action.menu()
        letters = [a.text().replace("&&", "").split("&")[1][0].lower() for a in menu.actions()
                   if not a.isSeparator() and "&" in a.text().replace("&&", "")]
        assert len(letters) == len(set(letters)), (menu.title(), letters)
        assert len(letters) == len([a for a in menu.actions() if not a.isSeparator()]), menu.title()

def test_a_sketch_from_the_history_while_viewing_a_region_result_searches_the_sketch(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    sketch = window.history.entries[0]
    photo = str((DEMO / "photos" / "gen_cup_1.jpg").resolve())
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):
        window.search_region(photo, (30.0, 40.0, 390.0, 380.0), "image")
    window.view_photo(window.model.hits[0])
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.history_strip.chosen.emit(sketch)
    assert window.query_kind == "sketch" and window.model.kind == "sketch"
    assert window.pages.currentIndex() == GRID
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):  # drawing on: a new entry; the recalled one stays
        draw(window.canvas, [(0.1, 0.9), (0.9, 0.9)])
    assert sketch in window.history.entries and window.history.entries[0] is not sketch


def test_a_search_that_ends_while_viewing_keeps_the_grid_and_the_detail_on_the_viewers_photo(qtbot, window):
    # found under Xvfb: the viewer stayed on its photo while the grid and the detail panel showed result 1,
    # and after some searches the detail panel said "Select a result" beside a highlighted result
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    assert window.detail.hit is window.model.hits[0]  # the first result, shown
    window.results.setCurrentIndex(window.model.index(3))
    shown = window.model.hits[3]
    window.view_photo(shown)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):  # the same sketch again: new results, same photo
        window.search_now()
    assert window.pages.currentIndex() == VIEWER
    row = window.viewer.current_row
    assert window.model.hits[row].path == shown.path
    assert window.results.currentIndex().row() == row and window.detail.hit.path == shown.path
    qtbot.keyClick(window.viewer, Qt.Key.Key_Escape)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.search_now()
    assert window.results.currentIndex().row() == 0 and window.detail.hit is window.model.hits[0]


def test_a_region_searched_by_its_image_alone_reads_so_and_says_why(qtbot, window):
    """'Shape and image' on a region without edges ranks by its image alone: the hits read as image hits (a
    similarity, not 'fused'), and the status bar says why (found under Xvfb: it read as fused)."""
    photo = str((DEMO / "photos" / "gen_cup_1.jpg").resolve())
    with qtbot.waitSignal(window.searchFinished, timeout=60_000) as found:
        window.search_region(photo, (2.0, 2.0, 14.0, 14.0), "both")  # a corner of plain background
    assert found.args[0] > 0
    assert "no edges" in window.message_label.text() and "image alone" in window.message_label.text()
    window.results.setCurrentIndex(window.model.index(0))
    qtbot.waitUntil(lambda: window.detail.hit is window.model.hits[0], timeout=10_000)
    assert "fused" not in window.detail.scores.text() and "similarity" in window.detail.scores.text()


def test_a_search_that_fails_leaves_no_earlier_results_under_its_no_results(qtbot, window):
    # found under Xvfb: a region without edges said "No results" above the previous query's grid
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    assert window.model.rowCount() > 0
    window.view_photo(window.model.hits[0])
    photo = str((DEMO / "photos" / "gen_cup_1.jpg").resolve())
    with qtbot.waitSignal(window.searchFinished, timeout=60_000) as found:
        window.search_region(photo, (2.0, 2.0, 14.0, 14.0), "shape")  # a corner of plain background: no edges
    assert found.args[0] == 0 and window.count_label.text() == "No results"
    assert window.model.rowCount() == 0 and window.detail.hit is None and window.pages.currentIndex() == GRID
    assert window.results.empty_text.startswith("No results: ") and "edges" in window.results.empty_text


def test_a_region_searched_from_the_viewer_opens_its_results_at_the_first(qtbot, window):
    """Found under Xvfb: after "Search with this region" in the viewer, the viewer stayed on the region's own
    photo (19th of the new results); a new region's results open at the first, the same region again keeps the
    place."""
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for stroke in HOUSE:
            draw(window.canvas, stroke)
    own = next(h for h in window.model.hits if h.path.endswith("gen_house_1.jpg"))
    window.view_photo(own)
    assert window.pages.currentIndex() == VIEWER
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):  # the door: its photo is not the first
        window.search_region(own.path, (250.0, 250.0, 350.0, 380.0), "image")
    assert [h.path for h in window.model.hits].index(own.path) > 0
    assert window.pages.currentIndex() == VIEWER and window.viewer.current_row == 0
    assert window.results.currentIndex().row() == 0
    window.viewer.set_results(window.model.hits, 2, kind=window.model.kind)  # the person moves on
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):  # the same region again: the place is kept
        window.search_now()
    assert window.viewer.current_row == 2
