"""The recent queries: recorded, deduplicated, limited, kept across restarts, shown in the strip."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app.history import THUMB, HistoryEntry, HistoryStrip, QueryHistory, history_folder


def sketch(i: int, size=(120, 160)) -> np.ndarray:
    """A distinct sketch per ``i``: white paper, a black bar."""
    a = np.full(size, 255, np.uint8)
    a[20 + i % 50: 30 + i % 50, 10 + i // 50: 100] = 0
    return a


def photo(seed: int = 0, size=(300, 400)) -> np.ndarray:
    return np.random.default_rng(seed).random((*size, 3), dtype=np.float32)


def png_files(folder):
    return sorted(p.name for p in folder.glob("*.png"))


def test_the_history_folder_is_in_the_app_data_folder():
    from PySide6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    assert history_folder().name == "history"
    if base:
        assert history_folder().parent == Path(base)


def test_a_sketch_is_recorded_with_a_small_thumbnail_and_can_be_run_again(tmp_path):
    h = QueryHistory(tmp_path / "h")
    s = sketch(1, size=(600, 800))
    e = h.add_sketch(s, collection=tmp_path / "db")
    assert e.kind == "sketch" and h.entries == [e] and e.collection == str(tmp_path / "db")
    assert (tmp_path / "h" / e.thumb).is_file() and (tmp_path / "h" / e.sketch).is_file()
    import cv2

    thumb = cv2.imread(str(h.thumb_path(e)))
    assert max(thumb.shape[:2]) <= THUMB
    assert np.array_equal(h.sketch_pixels(e), s)
    with pytest.raises(ValueError):
        h.image_pixels(e)


def test_the_same_query_moves_to_the_front_instead_of_twice(tmp_path):
    h = QueryHistory(tmp_path)
    a = h.add_sketch(sketch(1))
    b = h.add_sketch(sketch(2))
    assert h.entries == [b, a]
    again = h.add_sketch(sketch(1).copy())
    assert again is a and h.entries == [a, b]
    assert h.add_sketch(sketch(1)) is a and len(h) == 2
    p = tmp_path / "photo.jpg"
    i1 = h.add_image(str(p), photo())
    assert h.add_image(p, photo(5)) is i1 and len(h) == 3  # the same file, whatever its pixels now
    r1 = h.add_region(p, (10, 20, 110, 120), "shape", photo()[:100, :100])
    r2 = h.add_region(p, (10, 20, 110, 120), "image", photo()[:100, :100])
    assert r1 is not r2 and h.add_region(p, (10, 20, 110, 120), "shape", None) is r1
    assert len(h) == 5 and h.entries[0] is r1
    assert len(png_files(tmp_path)) == 2 + 2 + 1 + 1 + 1


def test_beyond_the_limit_the_oldest_go_with_their_files(tmp_path):
    h = QueryHistory(tmp_path, limit=30)
    entries = [h.add_sketch(sketch(i)) for i in range(31)]
    assert len(h) == 30
    assert h.entries[0] is entries[-1] and h.entries[-1] is entries[1]
    oldest = entries[0]
    assert oldest not in h.entries
    assert not (tmp_path / oldest.thumb).exists() and not (tmp_path / oldest.sketch).exists()
    assert len(png_files(tmp_path)) == 60
    assert len(json.loads((tmp_path / "history.json").read_text())["entries"]) == 30


def test_the_history_is_kept_across_restarts(tmp_path):
    h = QueryHistory(tmp_path)
    s = h.add_sketch(sketch(3), collection="/c/one")
    pasted_pixels = photo(1, size=(1500, 2000))
    pasted = h.add_image(None, pasted_pixels)
    f = h.add_image(tmp_path / "a.jpg", photo(2))
    r = h.add_region(tmp_path / "b.jpg", (1, 2, 300, 400), "both", photo(3)[:50, :60])

    again = QueryHistory(tmp_path)
    assert [e.kind for e in again.entries] == ["region", "image", "image", "sketch"]
    assert again.entries == [r, f, pasted, s]
    r2, f2, p2, s2 = again.entries
    assert r2.box == (1, 2, 300, 400) and r2.mode == "both" and r2.path == str((tmp_path / "b.jpg").resolve())
    assert f2.path == str((tmp_path / "a.jpg").resolve()) and f2.image is None
    assert p2.path is None and p2.image
    back = again.image_pixels(p2)
    assert back.shape == (768, 1024, 3) and back.dtype == np.float32  # kept at most 1024 px
    assert np.array_equal(again.sketch_pixels(s2), sketch(3)) and s2.collection == "/c/one"
    # the keys came back too: the same queries still move to the front
    assert again.add_region(tmp_path / "b.jpg", (1, 2, 300, 400), "both") is r2
    assert again.add_sketch(sketch(3)) is s2 and len(again) == 4
    assert again.entries[0] is s2


def test_a_damaged_history_reads_as_empty_and_is_written_anew(tmp_path, caplog):
    h = QueryHistory(tmp_path)
    e = h.add_sketch(sketch(1))
    (tmp_path / "history.json").write_bytes(b'{"version": 1, "entries": [{"kind": "sk')
    h2 = QueryHistory(tmp_path)
    assert h2.entries == []
    assert not (tmp_path / e.thumb).exists()  # its files, named by no entry now, are swept
    h2.add_sketch(sketch(2))
    assert len(QueryHistory(tmp_path)) == 1
    for junk in (b"", b"\xff\xfe", b"[1, 2]", b'{"entries": 3}', b"null"):
        (tmp_path / "history.json").write_bytes(junk)
        assert QueryHistory(tmp_path).entries == []


def test_entries_whose_files_are_gone_or_that_are_damaged_are_dropped(tmp_path):
    h = QueryHistory(tmp_path)
    a = h.add_sketch(sketch(1))
    b = h.add_sketch(sketch(2))
    c = h.add_region(tmp_path / "p.jpg", (0, 0, 10, 10), "shape", photo()[:10, :10])
    (tmp_path / a.thumb).unlink()
    doc = json.loads((tmp_path / "history.json").read_text())
    doc["entries"].append({"kind": "nonsense"})
    doc["entries"].append("not an entry")
    doc["entries"][0]["box"] = None  # c's box damaged
    (tmp_path / "history.json").write_text(json.dumps(doc))
    again = QueryHistory(tmp_path)
    assert again.entries == [b]
    assert not (tmp_path / a.sketch).exists() and not (tmp_path / c.thumb).exists()


def test_clear_forgets_every_entry_and_its_files(tmp_path):
    h = QueryHistory(tmp_path)
    for i in range(3):
        h.add_sketch(sketch(i))
    h.add_image(None, photo())
    h.clear()
    assert h.entries == [] and png_files(tmp_path) == []
    assert QueryHistory(tmp_path).entries == []


def test_bad_queries_are_refused_and_leave_nothing_behind(tmp_path):
    h = QueryHistory(tmp_path)
    with pytest.raises(ValueError):
        h.add_image(None, None)
    with pytest.raises(ValueError):
        h.add_region(tmp_path / "p.jpg", (10, 10, 5, 20), "shape", photo())
    with pytest.raises(ValueError):
        h.add_region(tmp_path / "p.jpg", (0, 0, 5, 5), "colour", photo())
    with pytest.raises(OSError):
        h.add_image(tmp_path / "missing.jpg", None)  # no pixels given: the photo is read, and is not there
    assert h.entries == [] and png_files(tmp_path) == []


def test_a_region_without_its_pixels_reads_the_photo(tmp_path):
    import cv2

    img = np.zeros((200, 300, 3), np.uint8)
    img[50:150, 100:200] = (0, 0, 255)  # a red square (BGR)
    cv2.imwrite(str(tmp_path / "p.png"), img)
    h = QueryHistory(tmp_path / "h")
    e = h.add_region(tmp_path / "p.png", (100, 50, 200, 150), "image")
    thumb = cv2.imread(str(h.thumb_path(e)))
    assert thumb.shape[:2] == (96, 96) and (thumb[48, 48] == (0, 0, 255)).all()


# -- the strip --------------------------------------------------------------------------------------------
@pytest.fixture
def strip(qtbot, tmp_path):
    h = QueryHistory(tmp_path)
    for i in range(4):
        h.add_sketch(sketch(i))
    h.add_image(tmp_path / "p.jpg", photo())
    w = HistoryStrip(h)
    qtbot.addWidget(w)
    w.resize(500, w.height())
    w.show()
    qtbot.waitExposed(w)
    return w


def test_the_strip_shows_the_entries_and_a_click_chooses_one(qtbot, strip):
    assert strip.count() == 5 and not strip.isEmpty() and strip.height() == 80
    fresh = HistoryStrip(strip.history)  # made with no query shown (the app's start): none is current
    qtbot.addWidget(fresh)
    assert fresh.count() == 5 and fresh.currentRow() == -1 and not fresh.selectedItems()
    assert "Photo p.jpg" in strip.item(0).toolTip()
    assert strip.item(1).toolTip().startswith("Sketch")
    target = strip.history.entries[2]
    rect = strip.visualItemRect(strip.item(2))
    with qtbot.waitSignal(strip.chosen) as got:
        qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert got.args == [target] and isinstance(got.args[0], HistoryEntry)


def test_the_strip_is_keyboard_navigable(qtbot, strip):
    strip.setFocus()
    strip.setCurrentRow(0)
    qtbot.keyClick(strip, Qt.Key.Key_Right)
    qtbot.keyClick(strip, Qt.Key.Key_Right)
    assert strip.currentRow() == 2
    with qtbot.waitSignal(strip.chosen) as got:
        qtbot.keyClick(strip, Qt.Key.Key_Return)
    assert got.args == [strip.history.entries[2]]


def test_the_strip_refreshes_and_clears(qtbot, strip, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    e = strip.history.add_sketch(sketch(40))
    strip.refresh()
    assert strip.count() == 6 and strip.entry(0) is e
    assert strip.clear_action in strip.actions() and strip.clear_action.isEnabled()
    asked = []
    answer = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or answer[0])
    strip.clear_action.trigger()  # asked first (found under Xvfb: one click forgot every search); No keeps them
    assert asked == ["Forget the 6 recent searches? This cannot be undone."] and strip.count() == 6
    strip.setCurrentRow(1)
    second = strip.entry(1)
    strip.remove_action.trigger()  # one entry only
    assert strip.count() == 5 and second not in strip.history.entries and e in strip.history.entries
    answer[0] = QMessageBox.StandardButton.Yes
    with qtbot.waitSignal(strip.emptyChanged) as empty, qtbot.waitSignal(strip.cleared):
        strip.clear_action.trigger()
    assert empty.args == [True]
    assert strip.count() == 0 and strip.isEmpty() and not strip.clear_action.isEnabled()
    assert not strip.remove_action.isEnabled()
    assert png_files(tmp_path) == []
    strip.grab()  # paints the placeholder text
    qtbot.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(5, 5))  # nothing to choose


def test_an_empty_strip_says_where_searches_go(qtbot, tmp_path):
    w = HistoryStrip(QueryHistory(tmp_path))
    qtbot.addWidget(w)
    assert w.isEmpty() and w.count() == 0
    img = w.grab().toImage()
    assert not img.isNull()
