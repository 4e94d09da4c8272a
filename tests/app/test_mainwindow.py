"""The main window, headless: draw -> results with boxes, undo/redo/clear re-search, drop an image,
the detail panel, indexing with a corrupt file, cancelling an indexing run."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtWidgets import QApplication, QTableWidget  # noqa: E402

from app import mainwindow  # noqa: E402
from app._testsupport import HOUSE, SHAPES  # noqa: E402
from app._testsupport import draw_stroke as draw  # noqa: E402
from app.mainwindow import MainWindow  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def draw_house(canvas) -> None:
    for stroke in HOUSE:
        draw(canvas, stroke)


@pytest.fixture
def window(qtbot, tmp_path, demo_db):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(db=demo_db, settings=settings, restore=False)
    win.index_workers = 1
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: not win.warming_up, timeout=60_000)  # the search models loaded at start-up
    qtbot.waitUntil(lambda: win.model.kind == "browse", timeout=30_000)  # and the collection shown (no query yet)
    yield win
    win.runner.wait(30_000)
    win.thumb_runner.wait(30_000)


def test_a_drawn_stroke_searches_and_fills_the_grid_with_boxed_results(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000) as blocker:
        draw_house(window.canvas)
    n = blocker.args[0]
    assert n == window.model.rowCount() > 0
    hit = window.model.hits[0]
    x0, y0, x1, y1 = hit.box
    assert x1 > x0 and y1 > y0 and window.model.kind == "sketch"
    assert "house" in " ".join(Path(h.path).name for h in window.model.hits[:6])
    assert "search" in window.time_label.text()


def test_undo_redo_and_clear_change_the_canvas_and_search_again(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    one = window.canvas.to_image().copy()
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw(window.canvas, [(0.1, 0.1), (0.9, 0.1)])
    two = window.canvas.to_image().copy()
    assert (two < 128).sum() > (one < 128).sum()
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.canvas.undo()
    np.testing.assert_array_equal(window.canvas.to_image(), one)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.canvas.redo()
    np.testing.assert_array_equal(window.canvas.to_image(), two)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.canvas.clear()  # no query: the collection itself, newest first
    assert window.canvas.is_empty() and window.model.kind == "browse"
    assert "newest first" in window.count_label.text() and "draw a shape" in window.count_label.text()
    assert window.model.rowCount() == min(window.top_k, len(window.index))
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.canvas.undo()  # the clear is undone: the sketch and its results come back
    assert window.model.rowCount() > 0 and window.model.kind == "sketch"


def test_a_dropped_image_file_starts_an_image_search(qtbot, window):
    from PySide6.QtGui import QDropEvent

    photo = DEMO / "photos" / "lomiri_fig.jpg"
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(photo))])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, md, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):
        window.dropEvent(ev)
    assert window.query_kind == "image" and window.query_stack.currentIndex() == 1
    assert window.model.kind == "image" and Path(window.model.hits[0].path).name == "lomiri_fig.jpg"
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.back_to_sketch()  # an empty canvas: no results
    assert window.query_stack.currentIndex() == 0


def test_selecting_a_result_fills_the_detail_panel_with_its_box(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    window.results.setCurrentIndex(window.model.index(1))
    hit = window.model.hits[1]
    qtbot.waitUntil(lambda: window.detail.photo.image is not None, timeout=20_000)
    assert window.detail.hit is hit and window.detail.photo.box == hit.box
    assert window.detail.photo.overlay is not None  # the sketch drawn over the photo
    assert Path(hit.path).name in window.detail.title.text()
    window.detail.overlay_box.setChecked(False)
    assert not window.detail.photo.show_overlay
    qtbot.waitUntil(lambda: window.detail.rotation.best_angle is not None, timeout=20_000)  # the polar plot
    assert window.detail.rotation.view.isVisible() and window.detail.rotation.reading is not None


def test_indexing_a_folder_with_a_corrupt_file_lists_it_as_skipped(qtbot, window, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("gen_house_1.jpg", "gen_cup_1.jpg", "lomiri_fig.jpg"):
        shutil.copy(DEMO / "photos" / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    db = tmp_path / "db"
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000) as blocker:
        window.index_folder(folder, db)
        assert window.progress.isVisible() and window.cancel_button.isVisible()
    assert blocker.args == ["done"]
    assert len(window.index) == 3 and window.index.n_skipped == 1
    assert "1 skipped" in window.collection_label.text()
    window.show_skipped()
    table = window.skipped_dialog.findChild(QTableWidget)
    assert table.rowCount() == 1 and table.item(0, 0).text().endswith("broken.jpg")
    assert table.item(0, 1).text()  # the reason
    window.skipped_dialog.close()


def test_indexing_an_older_collection_again_says_its_photos_were_described_again(qtbot, window, tmp_path):
    """Photos of a collection indexed before the edge cells were kept are described again by the next run from
    the app, which tells them apart from new photos in its message."""
    import sqlite3

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("gen_house_1.jpg", "gen_cup_1.jpg"):
        shutil.copy(DEMO / "photos" / name, folder / name)
    db = tmp_path / "db"
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000):
        window.index_folder(folder, db)
    con = sqlite3.connect(db / "catalog.sqlite3")
    with con:
        con.execute("UPDATE files SET cells = NULL")
    con.close()
    shutil.copy(DEMO / "photos" / "lomiri_fig.jpg", folder / "lomiri_fig.jpg")
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000) as blocker:
        window.index_folder(folder, db)
    assert blocker.args == ["done"] and len(window.index) == 3
    assert "(1 new, 2 described again for this version's boxes)" in window.message_label.text()


def test_indexing_that_fails_before_making_its_collection_shows_the_previous_one_again(qtbot, window, tmp_path,
                                                                                       demo_db):
    """Found under Xvfb: a run into a new collection that failed at once (its folder gone) left the window on
    'the collection is being indexed', and the collection never made was the one opened next time."""
    assert window.db == Path(demo_db)
    with qtbot.waitSignal(window.indexingFinished, timeout=60_000) as blocker:
        window.index_folder(tmp_path / "gone", tmp_path / "never-made")
    assert blocker.args == ["failed"]
    assert window.db == Path(demo_db) and window.index is not None and len(window.index) == 36
    assert Path(window.settings.value("collection/db")) == Path(demo_db)
    assert tmp_path / "never-made" not in window.recent_collections()
    qtbot.waitUntil(lambda: window.model.rowCount() > 0, timeout=30_000)  # the collection listed again
    assert "being indexed" not in window.count_label.text()


def test_the_indexing_rate_counts_only_what_this_run_describes(qtbot, window, monkeypatch):
    """A run that continues a cancelled one starts at, say, 700 of 1,000 done: its rate and time left count the
    photos it describes from then on (found under Xvfb: 813 photos/s and 1 s left, for 10 s)."""
    import app.mainwindow as mw

    now = [1000.0]
    monkeypatch.setattr(mw.time, "monotonic", lambda: now[0])
    window._index_first, window._index_name = None, "photos"
    window._indexing_progress(700, 1000)
    assert window.progress_label.text() == "Indexing photos…"
    now[0] += 10.0
    window._indexing_progress(800, 1000)
    assert window.progress_label.text() == "photos: 10.0 photos/s · 20 s left"


def test_indexing_a_folder_without_photos_says_none_were_found(qtbot, window, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no photos here")
    with qtbot.waitSignal(window.indexingFinished, timeout=60_000) as blocker:
        window.index_folder(folder, tmp_path / "db")
    assert blocker.args == ["done"]
    assert window.message_label.text().startswith("No photos found in notes (JPEG, PNG")



def test_photos_deleted_from_the_folder_can_be_removed_from_the_collection(qtbot, window, tmp_path, monkeypatch):
    """Found under Xvfb: indexing a folder again after deleting a photo said "Indexed 31 photos (0 new)", the photo
    stayed in the results as "file not found", and the app had no way to drop it.  The run now says how many are
    gone and asks whether to remove them (kept when the answer is no: a drive that is not connected looks the
    same)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("gen_house_1.jpg", "gen_house_2.jpg", "gen_cup_1.jpg"):
        shutil.copy(DEMO / "photos" / name, folder / name)
    db = tmp_path / "db"
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000):
        window.index_folder(folder, db)
    (folder / "gen_house_2.jpg").unlink()
    answers = []

    def answer(reply):
        def question(parent, title, text, *a, **k):
            answers.append(text)
            return reply
        return question

    monkeypatch.setattr(mainwindow.QMessageBox, "question", answer(mainwindow.QMessageBox.StandardButton.No))
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000):
        window.index_folder(folder, db)
    assert "1 whose file no longer exists kept" in window.message_label.text()
    assert len(answers) == 1 and answers[0].startswith("1 photo of ") and "no longer exists on disk" in answers[0]
    assert "Remove it from the collection?" in answers[0]
    assert len(window.index) == 3 and window._indexing is None  # kept: no run started
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    row = next(i for i, h in enumerate(window.model.hits) if h.path.endswith("gen_house_2.jpg"))
    window.results.setCurrentIndex(window.model.index(row))
    caption = window.detail.rotation.caption  # not "computing…" for ever (found under Xvfb)
    qtbot.waitUntil(lambda: "not available" in caption.text(), timeout=30_000)
    monkeypatch.setattr(mainwindow.QMessageBox, "question", answer(mainwindow.QMessageBox.StandardButton.Yes))
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000):
        window.index_folder(folder, db)
    assert window._indexing is not None  # the removing run
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000):
        pass
    assert len(window.index) == 2 and "1 whose file no longer exists removed" in window.message_label.text()
    assert not any(p.endswith("gen_house_2.jpg") for p in window.index.paths)


def test_cancelling_indexing_leaves_a_usable_index(qtbot, window, tmp_path, monkeypatch):
    import engine.indexer as indexer

    monkeypatch.setattr(indexer, "FLUSH_EVERY", 2)  # commit often, so some photos are in when it stops
    folder = tmp_path / "photos"
    shutil.copytree(DEMO / "photos", folder)
    db = tmp_path / "db"
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 6 and window._indexing is not None and window.cancel_button.isEnabled():
            window.cancel_indexing()

    with qtbot.waitSignal(window.indexingFinished, timeout=120_000) as blocker:
        window.index_folder(folder, db)
        window._indexing.signals.progress.connect(progress)
    assert blocker.args == ["cancelled"]
    assert window.index is not None and 0 < len(window.index) < 36
    with qtbot.waitSignal(window.searchFinished, timeout=30_000) as found:
        draw_house(window.canvas)
    assert found.args[0] > 0  # what was indexed is searchable
    with qtbot.waitSignal(window.indexingFinished, timeout=180_000) as again:
        window.index_folder(folder, db)  # and the next run completes it
    assert again.args == ["done"] and len(window.index) == 36


def test_a_new_search_shows_its_list_from_the_top_and_a_failed_one_no_time(qtbot, window):
    """Found under Xvfb: a new search kept the last list's scroll position (its first heading half cut off),
    and a failed search kept the last one's "search 69 ms"."""
    window.resize(1100, 700)
    bar = window.results.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10_000)  # the collection's 36 photos: more than a screen
    bar.setValue(bar.maximum())
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    assert window.model.rowCount() > 4 and bar.value() == 0
    assert window.time_label.text().startswith("search ")
    photo = str((DEMO / "photos" / "gen_cup_1.jpg").resolve())
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):
        window.search_region(photo, (2.0, 2.0, 14.0, 14.0), "shape")  # no edges: the search fails
    assert window.time_label.text() == ""


def test_a_score_cut_keeps_the_result_shown_selected_or_shows_the_first_left(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    hits = window.model.hits
    window.results.setCurrentIndex(window.model.index(1))
    qtbot.waitUntil(lambda: window.detail.hit is hits[1], timeout=10_000)
    window._cutoff_changed(min(hits[1].score, hits[0].score))  # both kept
    assert window.results.currentIndex().row() == window.model.hits.index(hits[1])
    assert window.detail.hit is hits[1]
    window._cutoff_changed(1.01)  # none kept
    assert window.model.rowCount() == 0 and window.detail.hit is None
    window._cutoff_changed(0.0)
    assert window.results.currentIndex().row() == 0 and window.detail.hit is window.model.hits[0]


def test_the_score_cut_reads_in_the_units_of_the_results_shown(qtbot, window):
    """Found under Xvfb: "score ≥ 0.50" beside hits that read "match 54%"."""
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    cut = window.cutoff
    cut.setValue(0.5)
    assert cut.text() == "match ≥ 50%"
    cut.lineEdit().selectAll()
    qtbot.keyClicks(cut.lineEdit(), "54")
    cut.interpretText()
    assert cut.value() == pytest.approx(0.54)
    assert all(h.score >= 0.54 for h in window.model.hits)
    cut.setValue(0.0)
    photo = str(DEMO / "photos" / "lomiri_fig.jpg")
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.search_image_file(photo)
    cut.setValue(0.5)
    assert cut.text() == "similarity ≥ 0.50"
    # each scale keeps its own cut: a similarity of 0.70 set for a photo was a match of 70 % on the next sketch,
    # above every likely match, and the list was empty
    cut.setValue(0.7)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.back_to_sketch()
    assert window.query_kind == "sketch" and cut.value() == 0.0 and cut.text() == "match ≥ 0%"
    assert window.model.rowCount() == len(window.model.hits) > 0
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.search_image_file(photo)
    assert cut.value() == pytest.approx(0.7) and cut.text() == "similarity ≥ 0.70"


def test_searches_that_became_stale_are_dropped(qtbot, window):
    draw_house(window.canvas)
    window.search_now()
    first = window._generation
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.search_now()
    assert window._generation == first + 1
    window.runner.wait(30_000)
    qtbot.wait(50)  # any late result of the stale search arrives and must be ignored
    assert window._generation == first + 1


def test_search_with_this_photo_and_a_pasted_image_run_image_queries(qtbot, window):
    from PySide6.QtGui import QGuiApplication, QImage

    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    window.results.setCurrentIndex(window.model.index(2))
    hit = window.model.hits[2]
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):
        window.detail.search_with.click()
    assert window.model.kind == "image" and window.model.hits[0].path == hit.path
    QGuiApplication.clipboard().setImage(QImage(str(DEMO / "photos" / "skimage_coffee.jpg")))
    with qtbot.waitSignal(window.searchFinished, timeout=60_000):
        window.paste_image()
    assert Path(window.model.hits[0].path).name == "skimage_coffee.jpg"


def test_the_last_collection_and_the_splitter_are_restored(qtbot, tmp_path, demo_db):
    ini = str(tmp_path / "settings.ini")
    first = MainWindow(db=demo_db, settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.splitter.setSizes([300, 700, 300])
    sizes = first.splitter.sizes()
    first.close()
    second = MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    assert second.db == demo_db and second.warming_up  # opened in the background: the window shows at once
    qtbot.waitUntil(lambda: not second.warming_up, timeout=60_000)
    assert len(second.index) == 36
    assert second.splitter.sizes() == sizes


def test_keyboard_moves_through_the_results(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    window.results.setFocus()
    qtbot.keyClick(window.results, Qt.Key.Key_Right)
    assert window.results.currentIndex().row() == 1
    assert window.detail.hit is window.model.hits[1]


def test_the_responsiveness_bench_runs(qtbot):
    from app.bench import bench_app

    row = bench_app(300, repeats=1)
    assert row["images"] == 300 and 0 < row["enter_to_results_s"] < row["stroke_to_results_s"]


def test_the_dark_scheme_gives_a_dark_palette_and_the_canvas_stays_paper(qtbot, monkeypatch):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from app.main import follow_colour_scheme

    app = QApplication.instance()
    before = app.palette()
    monkeypatch.setenv("SKETCHSEARCH_THEME", "dark")
    try:
        follow_colour_scheme(app)
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 100
        from app.canvas import SketchCanvas

        canvas = SketchCanvas()
        qtbot.addWidget(canvas)
        canvas.resize(120, 120)
        assert canvas.grab().toImage().pixelColor(60, 60).lightness() > 240  # white paper
        monkeypatch.setenv("SKETCHSEARCH_THEME", "light")
        follow_colour_scheme(app)
        assert app.palette().color(QPalette.ColorRole.Window).lightness() > 128
    finally:
        app.setPalette(before)


def test_a_sharded_collection_indexes_opens_and_searches_like_an_index(qtbot, window, tmp_path):
    from engine.shards import ShardedIndex

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("gen_house_1.jpg", "gen_cup_1.jpg", "lomiri_fig.jpg"):
        shutil.copy(DEMO / "photos" / name, folder / name)
    db = tmp_path / "collection.json"
    progress = []
    window.progress.valueChanged.connect(progress.append)
    with qtbot.waitSignal(window.indexingFinished, timeout=120_000) as blocker:
        window.index_folder(folder, db)  # a manifest: indexed shard after shard, progress summed
    assert blocker.args == ["done"] and progress and max(progress) == 3
    assert isinstance(window.index, ShardedIndex) and len(window.index) == 3
    assert "3 photos" in window.collection_label.text()
    window.canvas.clear()
    # no query: the new collection is shown, newest first, once it is opened
    qtbot.waitUntil(lambda: window.model.kind == "browse" and window.model.rowCount() == 3, timeout=30_000)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000) as found:
        draw_house(window.canvas)
    assert found.args[0] > 0 and "house" in Path(window.model.hits[0].path).name
    window.results.setCurrentIndex(window.model.index(0))  # the detail panel and its polar plot
    qtbot.waitUntil(lambda: window.detail.rotation.best_angle is not None, timeout=20_000)
    assert window.open_index(db) and window.db == db


def test_the_count_says_what_it_counts_and_image_queries_mark_the_query_photo(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    likely, other, hidden = window.model.counts()
    assert likely + other == window.model.rowCount() == len(window.model.hits)
    text = window.count_label.text()
    assert "likely match" in text and "other photos" in text and "photos with the shape" not in text
    photo = DEMO / "photos" / "skimage_coffee.jpg"
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.search_image_file(str(photo))
    assert "similar" in window.count_label.text() and "query" in window.count_label.text()
    first = window.model.hits[0]
    assert Path(first.path).name == photo.name and window.model.is_query(first)
    assert not window.model.is_query(window.model.hits[1])


def test_typing_a_result_count_searches_once(qtbot, window):
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    window.runner.wait(30_000)
    starts = []
    window.runner.start = (lambda orig: lambda task, **kw: (starts.append(task), orig(task, **kw))[1])(
        window.runner.start)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        for v in (1, 12, 120):  # typing "120"
            window.top_spin.setValue(v)
    searches = [t for t in starts if getattr(t.fn, "__name__", "") == "search"]
    assert len(searches) == 1 and searches[0].kwargs["top_k"] == 120


def test_opening_a_photo_without_a_viewer_says_so(qtbot, window, monkeypatch):
    from PySide6.QtGui import QDesktopServices, QGuiApplication

    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: False))
    hit = window.model.hits[0]
    window.results.openRequested.emit(hit)  # Enter or double click on a result
    text = window.message_label.text()
    assert text.startswith("No application is set to open photos") and text.count("clipboard") == 1
    assert QGuiApplication.clipboard().text() == hit.path
    # one line, no dialog to dismiss (found under Xvfb: a dialog that said twice where the path went)
    box = getattr(window, "last_error_box", None)
    assert box is None or not box.isVisible()


def _clipped(win) -> list[str]:
    """Visible controls of the window narrower or lower than they need to be, or partly hidden."""
    from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QSlider, QWidget

    bad = []
    kinds = (QAbstractButton, QAbstractSpinBox, QComboBox, QSlider, QLabel)
    for w in win.findChildren(QWidget):
        if not isinstance(w, kinds) or not w.isVisible() or w.width() == 0 or isinstance(w.parentWidget(), type(None)):
            continue
        if w in (win.message_label, win.collection_label, win.count_label) or w.objectName().startswith("qt_"):
            continue  # elided by design
        need = w.minimumSizeHint()
        if w.width() < need.width() - 1 or w.height() < need.height() - 1:
            bad.append(f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r} {w.size().toTuple()} < "
                       f"{need.toTuple()}")
    return bad


def _settled_unclipped(qtbot, window, timeout_ms: int = 5000) -> None:
    try:
        qtbot.waitUntil(lambda: _clipped(window) == [], timeout=timeout_ms)
    except qtbot.TimeoutError:
        assert _clipped(window) == []


def test_nothing_is_cut_off_at_1024x640_and_smaller_windows_scroll(qtbot, window):
    # layouts settle in posted events: on a loaded machine 50 ms was not always enough (a combo box 8 px high),
    # so wait until nothing is clipped, with a timeout; a real clip still fails, naming the widgets
    window.resize(1024, 640)
    qtbot.wait(50)
    _settled_unclipped(qtbot, window)
    assert window.scroll.horizontalScrollBar().maximum() == 0 and window.scroll.verticalScrollBar().maximum() == 0
    window.resize(800, 500)
    qtbot.wait(50)
    _settled_unclipped(qtbot, window)  # still not squeezed: the window scrolls instead
    assert window.scroll.horizontalScrollBar().maximum() > 0
    window.resize(500, 400)
    qtbot.wait(50)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    assert not window.canvas.is_empty() and window.model.rowCount() > 0
    window.search_now()  # Enter at this size searches the sketch, it does not clear the results
    qtbot.waitUntil(lambda: window.model.rowCount() > 0 and "likely" in window.count_label.text(), timeout=30_000)


def test_nothing_is_cut_off_in_the_large_view_at_1024x640(qtbot, window):
    """Found under Xvfb: in the large view at 1024 x 640 the buttons read "Back to resul", "Sketch overla",
    "earch with this regio"."""
    window.resize(1024, 640)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    window.view_photo(window.model.hits[0])
    qtbot.waitUntil(lambda: window.viewer.canvas.has_photo(), timeout=20_000)
    window.viewer.canvas.set_region((10.0, 10.0, 200.0, 200.0))
    qtbot.wait(50)
    _settled_unclipped(qtbot, window)


def test_status_messages_are_elided_and_never_run_into_the_other_fields(qtbot, window):
    window.resize(1024, 640)
    text = "a very long message about " + "/a/very/deep/folder" * 30 + "/photo.jpg"
    window.message(text)
    window.time_label.setText("search 123 ms")
    qtbot.wait(50)
    assert window.message_label.text() == text and window.message_label.toolTip() == text
    shown = window.message_label.findChild(type(window.message_label)) or window.message_label
    assert "…" in super(type(shown), shown).text()
    right = window.message_label.mapTo(window, window.message_label.rect().topRight()).x()
    assert right < window.time_label.mapTo(window, window.time_label.rect().topLeft()).x()


def test_the_heap_is_trimmed_once_the_person_pauses_never_while_drawing(qtbot, window, monkeypatch):
    # Counted on this window only (window.trims): a window left by an earlier test in the same process may
    # still trim on its own timer, so the calls to the patched function are not this window's alone.
    monkeypatch.setattr(mainwindow, "TRIM_IDLE_MS", 50)
    monkeypatch.setattr(mainwindow, "trim_heap", lambda: True)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    qtbot.waitUntil(lambda: window.trims >= 1, timeout=10_000)  # after the search and its selection
    window._trim_later()
    assert window._trim_timer.isActive()
    qtbot.mousePress(window.canvas, Qt.MouseButton.LeftButton, pos=QPoint(40, 40))  # a stroke begins
    assert not window._trim_timer.isActive()
    n = window.trims
    qtbot.wait(150)
    assert window.trims == n  # not while the pen is down
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        qtbot.mouseMove(window.canvas, QPoint(120, 90))
        qtbot.mouseRelease(window.canvas, Qt.MouseButton.LeftButton, pos=QPoint(120, 90))
    qtbot.waitUntil(lambda: window.trims > n, timeout=10_000)  # and again after the stroke's search


def _live_counts(qtbot, win) -> dict[str, int]:
    """What a window holds once its background work is done: widgets, objects, tasks, thumbnails."""
    import gc

    from app.workers import Task, TaskSignals

    qtbot.waitUntil(lambda: not win.runner._live and not win.thumb_runner._live and not win.thumbs._pending,
                    timeout=30_000)
    win.runner.wait(30_000)
    win.thumb_runner.wait(30_000)
    qtbot.wait(20)
    gc.collect()
    objects = gc.get_objects()
    return {"widgets": len(QApplication.allWidgets()),
            "window's objects": len(win.findChildren(QObject)),
            "results view's children": len(win.results.children()) + len(win.results.viewport().children()),
            "detail panel's children": len(win.detail.findChildren(QObject)),
            "tasks": sum(type(o) is Task for o in objects),
            "task signals": sum(type(o) is TaskSignals for o in objects)}


def test_searches_and_selections_do_not_grow_the_live_objects(qtbot, window):
    """Twenty searches with a selection each: what the window holds after 20 is what it held after 5 (every
    task freed, no widget or object left behind per search); the thumbnail cache holds at most one entry per
    photo of the collection."""
    window._debounce.setInterval(20)
    shapes = HOUSE + SHAPES
    counts = {}
    for i in range(1, 21):
        with qtbot.waitSignal(window.searchFinished, timeout=30_000):
            if i % 4 == 0:
                window.canvas.clear()
            draw(window.canvas, shapes[i % len(shapes)])
        n = window.model.rowCount()
        assert n > 0
        window.results.setCurrentIndex(window.model.index(i % n))  # the detail panel loads photo and curve
        if i % 2:
            bar = window.results.verticalScrollBar()
            bar.setValue(bar.maximum() if i % 4 == 1 else 0)
            window.results.viewport().repaint()
        if i in (5, 20):
            counts[i] = _live_counts(qtbot, window)
    print(f"\nlive objects after 5 and 20 searches: {counts}")
    assert counts[20] == counts[5], counts
    assert counts[20]["tasks"] == 0 and counts[20]["task signals"] == 0
    assert len(window.thumbs._items) <= len(window.index)


def test_a_status_message_with_line_breaks_shows_on_one_line(qtbot):
    """A message such as "no application opens X; its path is copied:\\n/path" stays one line in the status bar
    (it ran onto a second line under Xvfb), whole in the tooltip."""
    from PySide6.QtWidgets import QLabel

    from app.labels import ElidedLabel

    label = ElidedLabel()
    qtbot.addWidget(label)
    label.resize(2000, 20)
    label.setText("No application opens a.jpg; its path is copied:\n/photos/a.jpg")
    assert "\n" not in QLabel.text(label) and "copied: /photos/a.jpg" in QLabel.text(label)
    assert label.text() == label.toolTip() == "No application opens a.jpg; its path is copied:\n/photos/a.jpg"


def test_closing_hides_the_window_before_waiting_for_tasks_under_way(window, monkeypatch):
    # found under Xvfb: the window stayed on screen for about 2 s after it was asked to close
    seen = []
    wait = window.runner.wait
    monkeypatch.setattr(window.runner, "wait", lambda ms: (seen.append(window.isVisible()), wait(ms))[1])
    window.close()
    assert seen == [False]


def test_a_disabled_icon_is_faint_on_any_colour_scheme(qtbot):
    """The style's grey version of an icon was as bright as the enabled icons on the dark scheme's buttons: the
    disabled undo looked clickable.  Disabled icons are the enabled ones faded."""
    from PySide6.QtGui import QIcon

    from app.mainwindow import DISABLED_OPACITY, icon

    for name in ("undo", "redo", "clear"):
        ic = icon(name)
        for side in (16, 22, 24, 40, 56):
            on = ic.pixmap(side, side).toImage()
            off = ic.pixmap(side, side, QIcon.Mode.Disabled).toImage()
            alpha_on = sum(on.pixelColor(x, y).alphaF() for x in range(on.width()) for y in range(on.height()))
            alpha_off = sum(off.pixelColor(x, y).alphaF() for x in range(off.width()) for y in range(off.height()))
            assert alpha_on > 0 and alpha_off == pytest.approx(DISABLED_OPACITY * alpha_on, rel=0.15), (name, side)


def test_the_pen_width_is_kept_across_restarts(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "pen.ini"), QSettings.Format.IniFormat)
    first = MainWindow(settings=settings, restore=True)
    qtbot.addWidget(first)
    first.width_slider.setValue(17)
    first.close()
    again = MainWindow(settings=settings, restore=True)
    qtbot.addWidget(again)
    assert again.width_slider.value() == 17 and again.canvas.pen_width == 17


def test_unticking_similar_photos_says_why_the_scores_change(qtbot, window):
    """Found under Xvfb: 27 likely matches at 94-96 % became none at 8 % on unticking "Include similar photos",
    with no word in the window (each is a calibrated score, of different evidence: docs/calibration.md)."""
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        draw_house(window.canvas)
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.expand_box.setChecked(False)
    assert window.message_label.text().startswith("Similar photos not included: the scores come from the drawing")
    with qtbot.waitSignal(window.searchFinished, timeout=30_000):
        window.expand_box.setChecked(True)
    assert window.message_label.text().startswith("Similar photos included")
