"""Acting on results as in a photo app: paths copied as text and files, photos exported into a folder (copies
or links, never overwriting), results saved as JSON or CSV, a photo opened in the default viewer, the grid's
context menu and the export dialog."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import pytest
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QDialog

from app import actions
from app.actions import (
    CSV_HEADER,
    ExportDialog,
    ResultActions,
    ask_export,
    copy_paths,
    export_photos,
    open_externally,
    result_menu,
    save_results,
    selection_mime,
)
from engine.hits import Hit

PHOTOS = sorted((Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos").glob("*.jpg"))


def _hit(i: int, path, score: float, **kw) -> Hit:
    return Hit(rank=i + 1, path=str(path), score=score, box=(10.04, 20.0, 110.26, 90.5), scale=0.5,
               mirrored=bool(i % 2), row=i, **kw)


@pytest.fixture
def photos(tmp_path):
    """Three small "photos": a/beach.jpg and b/beach.jpg (same name, different bytes), and a/forest.jpg."""
    out = []
    for folder, name, data in [("a", "beach.jpg", b"AAAA"), ("b", "beach.jpg", b"BBBBBB"), ("a", "forest.jpg", b"F")]:
        p = tmp_path / "src" / folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out.append(p)
    return out


# -- clipboard ---------------------------------------------------------------------------------------------
def test_selection_mime_holds_the_paths_as_text_and_as_files(qapp, photos):
    paths = [str(p) for p in photos]
    md = selection_mime([*paths, paths[0]])  # a photo given twice comes once
    assert md.text().splitlines() == paths
    assert [u.toLocalFile() for u in md.urls()] == paths and all(u.isLocalFile() for u in md.urls())
    assert md.hasFormat("text/uri-list")
    gnome = bytes(md.data(actions.GNOME_COPIED)).decode().splitlines()
    assert gnome[0] == "copy" and len(gnome) == 4  # a GNOME file manager pastes the files


def test_copy_paths_puts_them_on_the_clipboard(qapp, photos):
    paths = [str(p) for p in photos[:2]]
    copy_paths(paths)
    md = QGuiApplication.clipboard().mimeData()
    assert md.text().splitlines() == paths
    assert [u.toLocalFile() for u in md.urls()] == paths
    assert QGuiApplication.clipboard().text().splitlines() == paths


# -- export ------------------------------------------------------------------------------------------------
def test_export_never_overwrites_a_file_of_the_same_name(tmp_path, photos):
    dest = tmp_path / "out"
    dest.mkdir()
    old = dest / "beach.jpg"
    old.write_bytes(b"the one already there")
    report = export_photos([photos[0]], dest)
    assert old.read_bytes() == b"the one already there"  # byte for byte
    assert (dest / "beach (2).jpg").read_bytes() == b"AAAA"
    assert report.done == [(str(photos[0]), str(dest / "beach (2).jpg"))]
    assert report.renamed == report.done and report.failed == [] and report.ok
    assert "Copied 1 photo to" in report.summary() and "1 renamed" in report.summary()
    assert "beach (2).jpg" in report.lines()[0]
    again = export_photos([photos[0]], dest)  # and the next time, (3)
    assert again.done[0][1] == str(dest / "beach (3).jpg") and old.read_bytes() == b"the one already there"


def test_two_photos_of_the_same_name_from_different_folders_both_arrive(tmp_path, photos):
    dest = tmp_path / "new" / "folder"  # created
    report = export_photos(photos, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["beach (2).jpg", "beach.jpg", "forest.jpg"]
    assert (dest / "beach.jpg").read_bytes() == b"AAAA" and (dest / "beach (2).jpg").read_bytes() == b"BBBBBB"
    assert len(report.done) == 3 and [s for s, _ in report.renamed] == [str(photos[1])]
    assert os.path.getmtime(dest / "forest.jpg") == pytest.approx(os.path.getmtime(photos[2]), abs=1e-3)  # copy2
    assert export_photos([photos[0], photos[0]], tmp_path / "once").done == [
        (str(photos[0]), str(tmp_path / "once" / "beach.jpg"))]  # one photo selected twice arrives once


def test_link_mode_makes_links_that_resolve_to_the_photos(tmp_path, photos):
    dest = tmp_path / "links"
    try:
        os.symlink(photos[0], tmp_path / "probe")
    except (OSError, NotImplementedError):
        pytest.skip("this system makes no symbolic links")
    report = export_photos(photos[:2], dest, mode="link")
    assert report.ok and report.mode == "link"
    a, b = dest / "beach.jpg", dest / "beach (2).jpg"
    assert a.is_symlink() and b.is_symlink()
    assert a.resolve() == photos[0].resolve() and b.resolve() == photos[1].resolve()
    assert b.read_bytes() == b"BBBBBB"
    assert report.summary().startswith("Linked 2 photos")


def test_a_link_the_system_refuses_is_reported(tmp_path, photos, monkeypatch):
    def refuse(*_a, **_k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", refuse)
    report = export_photos([photos[0]], tmp_path / "out", mode="link")
    assert report.done == [] and len(report.failed) == 1
    assert "refused a link" in report.failed[0][1] and "\n" not in report.summary()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_photo_is_reported_not_raised(tmp_path, photos):
    gone = tmp_path / "src" / "gone.jpg"
    report = export_photos([gone, photos[2]], tmp_path / "out")
    assert [s for s, _ in report.done] == [str(photos[2])]
    assert report.failed == [(str(gone), "is gone (no such file)")] and not report.ok
    assert "1 failed: gone.jpg: is gone" in report.summary()
    with pytest.raises(ValueError):
        export_photos([photos[0]], tmp_path / "out", mode="move")


def test_a_folder_that_cannot_be_made_fails_every_photo_with_the_reason(tmp_path, photos):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    report = export_photos(photos[:2], blocker / "sub")
    assert report.done == [] and len(report.failed) == 2 and "cannot create the folder" in report.failed[0][1]


# -- saving results ------------------------------------------------------------------------------------------
def _hits() -> list[Hit]:
    return [dataclasses.replace(_hit(0, "/photos/a,b.jpg", 0.91234567, raw_score=0.3), box_sure=False, likely=True,
                                taken=1.7e9), _hit(1, "/photos/ü/c.jpg", 0.4)]


def test_save_results_json_has_the_command_lines_fields_and_the_query(tmp_path):
    hits = _hits()
    out = tmp_path / "sub" / "results.json"
    save_results(out, hits, query={"sketch": "/tmp/house.png", "top": 50}, kind="sketch")
    got = json.loads(out.read_text(encoding="utf-8"))
    assert got["query"] == {"sketch": "/tmp/house.png", "top": 50} and got["kind"] == "sketch"
    assert got["results"] == [h.to_json() for h in hits]  # what `search --json` prints for each
    assert set(got["results"][0]) >= {"rank", "path", "score", "box", "scale", "mirrored"}
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temporary file left


def test_save_results_csv_has_the_header_and_a_row_per_hit(tmp_path):
    hits = _hits()
    out = tmp_path / "results.CSV"
    save_results(out, hits, query={}, kind="image")
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSV_HEADER) == ("rank,path,score,x0,y0,x1,y1,scale,mirrored,raw_score,box_sure,likely,"
                                           "taken").split(",")  # the JSON's fields, found missing under Xvfb
    assert rows[1][:9] == ["1", "/photos/a,b.jpg", "0.912346", "10.0", "20.0", "110.3", "90.5", "0.5", "false"]
    assert rows[1][9] == (str(hits[0].to_json()["raw_score"]) if hits[0].raw_score is not None else "")
    assert rows[2][:2] == ["2", "/photos/ü/c.jpg"] and rows[2][8] == "true" and len(rows) == 3
    for row, h in zip(rows[1:], hits, strict=True):
        flags = [None if v is None else ("true" if v else "false") for v in (h.box_sure, h.likely)]
        assert row[10:12] == [f or "" for f in flags]
        assert row[12] == (str(h.to_json()["taken"]) if h.taken is not None else "")
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # readable as any file written (the umask's mode)


def test_save_results_refuses_another_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.txt.*use \.json or \.csv") as e:
        save_results(tmp_path / "results.txt", _hits(), query={}, kind="sketch")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="without a suffix"):
        save_results(tmp_path / "results", _hits(), query={}, kind="sketch")
    assert list(tmp_path.iterdir()) == []


# -- opening -------------------------------------------------------------------------------------------------
def test_open_externally_says_why_a_photo_did_not_open(qapp, tmp_path, photos, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or False)
    msg = open_externally(photos[0])
    assert msg is not None and msg.startswith("No application is set to open photos") and "beach.jpg" in msg
    assert [u.toLocalFile() for u in opened] == [str(photos[0])] and "\n" not in msg
    gone = open_externally(tmp_path / "gone.jpg")
    assert gone == f"gone.jpg is gone (no file at {tmp_path / 'gone.jpg'})" and len(opened) == 1  # not tried
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: True)
    assert open_externally(photos[0]) is None


# -- the context menu and the export dialog ----------------------------------------------------------------
def _menu_actions(menu) -> dict:
    return {a.objectName(): a for a in menu.actions() if not a.isSeparator()}


def test_the_context_menu_emits_what_was_chosen(qtbot, photos):
    acts = ResultActions()
    hits = [_hit(0, photos[0], 0.9), _hit(1, photos[1], 0.5)]
    got = []
    for name in ("openViewer", "openExternally", "copyPaths", "export", "saveResults", "searchImage"):
        getattr(acts, name).connect(lambda *args, n=name: got.append((n, *args)))
    one = result_menu(None, hits[:1], acts)
    items = _menu_actions(one)
    assert [a.text().replace("&", "") for a in items.values()] == [
        "Open", "Open in the Default Viewer", "Copy Paths", "Export…", "Save Results…", "Search with This Photo"]
    keys = [a.text()[a.text().index("&") + 1].lower() for a in items.values()]
    assert len(set(keys)) == len(keys)  # an underlined letter each, none shared
    assert all(a.isEnabled() for a in items.values())
    for a in items.values():
        a.trigger()
    p0 = str(photos[0])
    assert got == [("openViewer", hits[0]), ("openExternally", p0), ("copyPaths", [p0]), ("export", [p0]),
                   ("saveResults",), ("searchImage", p0)]
    got.clear()
    menu = result_menu(None, hits, acts)
    several = _menu_actions(menu)  # one photo's actions need one photo
    assert {n for n, a in several.items() if a.isEnabled()} == {"copyPaths", "export", "saveResults"}
    several["copyPaths"].trigger()
    assert got == [("copyPaths", [p0, str(photos[1])])]
    empty = result_menu(None, [], acts, can_save=False)
    none = _menu_actions(empty)
    assert not any(a.isEnabled() for a in none.values())


def test_ask_export_gives_the_folder_and_copy_or_link(qtbot, tmp_path, monkeypatch):
    def pick_link(dlg):
        assert dlg.copy_radio.isChecked()  # copies by default
        dlg.folder_edit.setText(str(tmp_path / "out"))
        dlg.link_radio.setChecked(True)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExportDialog, "exec", pick_link)
    assert ask_export(None, ["/a.jpg", "/b.jpg"]) == (str(tmp_path / "out"), "link")
    monkeypatch.setattr(ExportDialog, "exec", lambda dlg: QDialog.DialogCode.Rejected)
    assert ask_export(None, ["/a.jpg"], folder=str(tmp_path)) is None


def test_the_export_dialog_needs_a_folder_and_starts_where_told(qtbot, tmp_path, monkeypatch):
    dlg = ExportDialog(["/a.jpg", "/b.jpg", "/a.jpg"], folder="", mode="link")
    qtbot.addWidget(dlg)
    ok = dlg.buttons.button(dlg.buttons.StandardButton.Ok)
    assert not ok.isEnabled() and dlg.mode() == "link"
    monkeypatch.setattr(actions.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    dlg.choose_folder()
    assert dlg.folder() == str(tmp_path) and ok.isEnabled()
