"""Collections in the app: a folder's photos go only to the collection the person chose (asked before the
run), File > Recent Collections, damaged collections get a dialog and the app stays up."""
from __future__ import annotations

import gc
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QDialog  # noqa: E402

from app import mainwindow  # noqa: E402
from app.mainwindow import IndexTargetDialog, MainWindow  # noqa: E402
from engine.indexer import index_folders  # noqa: E402
from engine.shards import open_collection  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos"
A_PHOTOS = ("gen_house_1.jpg", "gen_cup_1.jpg", "gen_fish_1.jpg", "gen_key_1.jpg")
B_PHOTOS = ("gen_sailboat_1.jpg", "gen_bottle_1.jpg")


def photos(folder: Path, names) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(DEMO / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Folder A indexed into its own collection, folder B into another (``--backbone none``: quick)."""
    root = tmp_path_factory.mktemp("collections")
    a, b = photos(root / "A", A_PHOTOS), photos(root / "B", B_PHOTOS)
    return root, a, b


def window_on(qtbot, tmp_path, db, root) -> MainWindow:
    win = MainWindow(db=db, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), restore=False)
    win.collections_root = root
    win.index_workers = 1
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: not win.warming_up, timeout=60_000)
    return win


def settle(qtbot, win) -> None:
    """Wait until the window's background work is over and what it held is freed."""
    qtbot.waitUntil(lambda: not win.warming_up and not win.runner._live, timeout=60_000)
    win.runner.wait(30_000)
    gc.collect()


def answer(monkeypatch, choice: str, seen: list) -> None:
    """The dialog that asks where the photos go answers ``choice`` ("own", "open", "default": as it comes, or
    "cancel")."""

    def exec_(dlg: IndexTargetDialog):
        seen.append((dlg.own_button.text(), dlg.open_button.text() if dlg.open_button.isVisibleTo(dlg) else None,
                     dlg.where.text()))
        if choice == "cancel":
            return QDialog.DialogCode.Rejected
        if choice != "default":
            (dlg.open_button if choice == "open" else dlg.own_button).setChecked(True)
        seen.append(dlg.target())
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(IndexTargetDialog, "exec", exec_)


def run_indexing(qtbot, win, folder, db=None) -> str:
    with qtbot.waitSignal(win.indexingFinished, timeout=180_000) as done:
        assert win.index_folder(folder, db)
    return done.args[0]


def test_a_folder_goes_to_its_own_collection_not_the_open_one(qtbot, tmp_path, folders, monkeypatch):
    """The reported case: A indexed into its own collection, B open, "Index a Photo Folder" on A added A's
    photos to B.  Now the run asks, its default is A's own collection, and B is left as it was."""
    root, a, b = folders
    monkeypatch.setattr(mainwindow, "collections_folder", lambda: root / "apps")  # where the app makes collections
    own_a = mainwindow.default_db_for(a, root / "apps")
    index_folders([a], own_a, backbone="none", workers=1)
    db_b = root / "apps" / "B-collection"
    index_folders([b], db_b, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, db_b, root / "apps")
    win.settings.setValue("collection/folder", str(a))  # A was the last folder indexed, as in the report
    seen: list = []
    answer(monkeypatch, "own", seen)
    assert run_indexing(qtbot, win, a) == "done"
    own_text, open_text, where = seen[0]
    assert "its own collection" in own_text and "4 photos" in own_text  # says what it will update
    assert open_text is not None and "B-collection" in open_text and "2 photos" in open_text
    assert str(own_a) in where
    assert seen[1] == own_a and win.db == own_a
    assert len(open_collection(db_b)) == 2 and len(open_collection(own_a)) == 4  # B untouched
    assert len(win.index) == 4 and win.collection_label.text().startswith("A ·")  # its folder's name, no tag
    assert mainwindow.collection_name(own_a) == "A" and mainwindow.collection_name(db_b) == "B-collection"
    assert mainwindow.collection_name(root / "holiday-202407151030") == "holiday-202407151030"  # a user's own name

    win.switch_collection(db_b)  # back to B: indexing A again still does not touch B
    seen.clear()
    assert run_indexing(qtbot, win, a) == "done"
    assert seen[1] == own_a and len(open_collection(db_b)) == 2


def test_the_folder_of_the_open_collection_updates_it_by_default(qtbot, tmp_path, folders, monkeypatch):
    """Found under Xvfb: a collection made on the command line from a folder, open in the app; indexing that
    folder again defaulted to a new collection of its own, a duplicate.  The open collection holds the folder
    (its recorded folders), so updating it is the default; the folder's own collection stays the other choice."""
    root, a, b = folders
    monkeypatch.setattr(mainwindow, "collections_folder", lambda: root / "apps3")
    cli_db = tmp_path / "made-on-the-command-line"
    index_folders([b], cli_db, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, cli_db, root / "apps3")
    seen: list = []
    answer(monkeypatch, "default", seen)
    assert run_indexing(qtbot, win, b) == "done"
    own_text, open_text, where = seen[0]
    assert "which holds this folder, updated" in open_text and str(cli_db) in where
    assert seen[1] == cli_db and win.db == cli_db and len(win.index) == 2
    assert not (root / "apps3").exists()  # no second collection made
    seen.clear()
    answer(monkeypatch, "default", seen)
    assert run_indexing(qtbot, win, a) == "done"  # another folder: its own collection, as before
    assert "adding them to it" in seen[0][1] and seen[1] == mainwindow.default_db_for(a, root / "apps3")


def test_opening_a_photo_folder_as_an_index_opens_its_collection(qtbot, tmp_path, folders, monkeypatch):
    """Found under Xvfb: File → Open an Existing Index on a photo folder that has a collection of its own
    said only that an index goes into a folder of its own; it opens that collection."""
    root, a, b = folders
    monkeypatch.setattr(mainwindow, "collections_folder", lambda: root / "apps4")
    own_a = mainwindow.default_db_for(a, root / "apps4")
    index_folders([a], own_a, backbone="none", workers=1)
    db_b = root / "apps4" / "B-collection"
    index_folders([b], db_b, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, db_b, root / "apps4")
    monkeypatch.setattr(mainwindow.QFileDialog, "getExistingDirectory", lambda *args, **kw: str(a))
    win.choose_index()
    qtbot.waitUntil(lambda: win.db == own_a and win.index is not None, timeout=30_000)
    assert len(win.index) == 4 and "is a photo folder: opened its collection A" in win.message_label.text()
    monkeypatch.setattr(mainwindow.QFileDialog, "getExistingDirectory", lambda *args, **kw: str(b))
    win.choose_index()  # a photo folder without a collection of its own: said as before
    assert win.db == own_a and "folder of its own" in win.message_label.text()


def test_adding_to_the_open_collection_is_an_explicit_choice(qtbot, tmp_path, folders, monkeypatch):
    root, a, b = folders
    db_b = tmp_path / "B-open"
    index_folders([b], db_b, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, db_b, tmp_path / "apps")
    seen: list = []
    answer(monkeypatch, "cancel", seen)
    assert not win.index_folder(a)  # cancelled: nothing runs, nothing changes
    assert win._indexing is None and win.db == db_b and len(open_collection(db_b)) == 2
    answer(monkeypatch, "open", seen)
    assert run_indexing(qtbot, win, a) == "done"
    assert seen[-1] == db_b and win.db == db_b and len(open_collection(db_b)) == 6
    assert len(win.index) == 6


def test_a_new_folder_makes_a_new_collection_and_says_so(qtbot, tmp_path, folders, monkeypatch):
    root, a, b = folders
    db_b = tmp_path / "B-new"
    index_folders([b], db_b, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, db_b, tmp_path / "apps")
    seen: list = []
    answer(monkeypatch, "own", seen)
    fresh = photos(tmp_path / "fresh", A_PHOTOS[:2])
    assert run_indexing(qtbot, win, fresh) == "done"
    assert seen[0][0].startswith("a new collection")
    assert win.db == mainwindow.default_db_for(fresh, tmp_path / "apps") and len(win.index) == 2
    assert len(open_collection(db_b)) == 2


def test_recent_collections_switch_deliberately(qtbot, tmp_path, folders):
    root, a, b = folders
    db_a, db_b = tmp_path / "recent-A", tmp_path / "recent-B"
    index_folders([a], db_a, backbone="none", workers=1)
    index_folders([b], db_b, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, db_a, tmp_path / "apps")
    assert win.switch_collection(db_b)
    assert win.recent_collections()[:2] == [db_b, db_a]
    actions = [x for x in win.recent_menu.actions() if x.toolTip() in (str(db_a), str(db_b))]
    assert [x.toolTip() for x in actions] == [str(db_b), str(db_a)]
    assert actions[0].isChecked() and not actions[1].isChecked()
    actions[1].trigger()  # File > Recent Collections > recent-A
    assert win.db == db_a and len(win.index) == 4 and "recent-A" in win.windowTitle()
    # the work the switches started (loading B's search models, then A's, then the pending search) ends
    # before B goes: a task still reading B's catalog makes SQLite create its -wal/-shm files in B while
    # rmtree empties it ("Directory not empty", about 1 run in 13)
    settle(qtbot, win)
    shutil.rmtree(db_b)  # a collection that went away is shown, greyed out
    win._update_recent_menu()
    gone = [x for x in win.recent_menu.actions() if x.toolTip() == str(db_b)]
    assert gone and not gone[0].isEnabled()
    # remembered across restarts
    again = MainWindow(settings=win.settings, restore=True)
    qtbot.addWidget(again)
    assert again.db == db_a and again.recent_collections()[0] == db_a
    qtbot.waitUntil(lambda: not again.warming_up, timeout=60_000)


def test_a_damaged_collection_gets_a_dialog_and_the_app_stays_up(qtbot, tmp_path, folders):
    root, a, b = folders
    good = tmp_path / "good"
    index_folders([b], good, backbone="none", workers=1)
    win = window_on(qtbot, tmp_path, good, tmp_path / "apps")
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    (bad / "catalog.sqlite3").write_bytes(b"this is not a database" * 100)
    for name in ("catalog.sqlite3-wal", "catalog.sqlite3-shm"):
        (bad / name).unlink(missing_ok=True)
    assert not win.open_index(bad)
    assert win.last_error_box.isVisible() and "bad" in win.last_error_box.text()
    assert win.db == good and len(win.index) == 2  # the open collection stays
    win.last_error_box.close()
    manifest = tmp_path / "crafted.json"
    manifest.write_text('{"format": "sketchsearch-manifest", "n_shards": 0, "shards": [null]}')
    assert not win.open_index(manifest)
    assert win.db == good


def test_a_collection_with_damaged_parts_says_so_in_words(qtbot, tmp_path, folders, monkeypatch):
    """The engine's DamagedIndexWarning reaches no one in a window: the app says which photos are left out and
    what to do, at start-up and when the person opens the collection."""
    import warnings

    from engine.errors import DamagedIndexWarning

    root, a, _ = folders
    db = tmp_path / "A-index"
    index_folders([a], db, workers=1, backbone="none")
    chunk = sorted(db.glob("chunk-*.codes.npy"))[0]
    chunk.write_bytes(chunk.read_bytes()[:100])  # truncated
    shown = []
    monkeypatch.setattr(MainWindow, "error", lambda self, text, **k: shown.append(text))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedIndexWarning)
        win = window_on(qtbot, tmp_path, db, root)  # start-up: opened in the background
        assert shown and "4 photos are left out of searches" in shown[-1], shown
        assert "File → Index a Photo Folder" in shown[-1] and "--" not in shown[-1]
        shown.clear()
        assert win.open_index(db)
    assert shown and str(db) in shown[-1] and "left out" in shown[-1]
    settle(qtbot, win)



def last_collection_settings(tmp_path, db) -> QSettings:
    s = QSettings(str(tmp_path / "last.ini"), QSettings.Format.IniFormat)
    s.setValue("collection/db", str(db))
    return s


def test_gui_db_index_into_a_new_collection_shows_no_error_and_opens_nothing_else(qtbot, tmp_path, folders,
                                                                                  monkeypatch):
    """``sketchsearch gui --db NEW --index FOLDER``: NEW is made by the run. The window used to open NEW as
    well (a "no such index" dialog) while the run started; the last collection is not opened either."""
    from app.main import start_window

    root, a, b = folders
    db_b = tmp_path / "last-B"
    index_folders([b], db_b, backbone="none", workers=1)
    opened, errors = [], []
    real = mainwindow.open_and_warm
    monkeypatch.setattr(mainwindow, "open_and_warm", lambda db: (opened.append(db), real(db))[1])
    monkeypatch.setattr(MainWindow, "error", lambda self, text, **k: errors.append(text))
    new = tmp_path / "made-by-the-run"
    win = start_window(new, folder=a, settings=last_collection_settings(tmp_path, db_b))
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.indexingFinished, timeout=180_000) as done:
        pass
    assert done.args[0] == "done" and errors == [] and opened == []
    assert win.db == new and len(win.index) == 4 and len(open_collection(db_b)) == 2
    assert win.settings.value("collection/db") == str(new)
    settle(qtbot, win)


@pytest.mark.parametrize("refresh_s", [mainwindow.REFRESH_S, 0.0], ids=["before-a-refresh", "refreshed-at-once"])
def test_a_run_into_another_collection_drops_the_opening_of_the_last(qtbot, tmp_path, folders, monkeypatch,
                                                                     refresh_s):
    """The last collection opens in the background at start-up; a run into another collection started before
    it is open must not have that collection shown (searched) as the one being written.  The run's own
    refreshes (which open and warm what it has committed) may come first: CI's loaded machine did."""
    root, a, b = folders
    db_b = tmp_path / "opening-B"
    index_folders([b], db_b, backbone="none", workers=1)
    opened = []
    real = mainwindow.open_and_warm

    def slow_open(db):
        index = real(db)
        time.sleep(0.5)  # the run has started by now
        opened.append(db)
        return index

    monkeypatch.setattr(mainwindow, "open_and_warm", slow_open)
    monkeypatch.setattr(mainwindow, "REFRESH_S", refresh_s)
    win = MainWindow(settings=last_collection_settings(tmp_path, db_b))
    win.index_workers = 1
    qtbot.addWidget(win)
    assert win.warming_up and win.db == db_b
    new = tmp_path / "the-run's"
    with qtbot.waitSignal(win.indexingFinished, timeout=180_000) as done:
        assert win.index_folder(a, new)
        qtbot.waitUntil(lambda: bool(opened), timeout=60_000)
        qtbot.wait(200)  # the opening's result is delivered (and dropped)
        # not left "Opening opening-B…": the label and the warming are the new collection's, if any
        label = win.loading_label
        assert win.db == new and (label.isHidden() or (win.warming_up and "opening-B" not in label.text()))
        assert win.index is None or {Path(n).parent for n in win.index.paths} <= {a}  # what the run committed
    assert done.args[0] == "done" and win.db == new and len(win.index) == 4
    settle(qtbot, win)


@pytest.mark.filterwarnings("ignore::engine.errors.DamagedIndexWarning")  # the engine's, in the start-up search
def test_a_damaged_image_index_is_said_and_searches_rank_by_the_shape(qtbot, tmp_path, folders):
    """The engine warned in a pool thread, where no one saw it: the app says it in the status bar, and the
    collection's label keeps saying it while it lasts."""
    from app._testsupport import HOUSE, draw_stroke

    root, a, _ = folders
    db = tmp_path / "A-images"
    index_folders([a], db, workers=1)
    basis = next(db.glob("image-*.basis.npz"))
    basis.write_bytes(basis.read_bytes()[:100])
    win = window_on(qtbot, tmp_path, db, root)
    with qtbot.waitSignal(win.searchFinished, timeout=60_000) as done:
        for stroke in HOUSE:
            draw_stroke(win.canvas, stroke)
    assert done.args[0] == 4  # the shape still searched
    assert "image part damaged" in win.collection_label.text()
    assert basis.name in win.index.image_damage
    settle(qtbot, win)
