"""What can be done with results, as in a photo app: copy their paths (as text and as files a file manager
pastes), export the photos into a folder (copies or links, never overwriting), save the results as JSON or
CSV, open a photo in the desktop's default viewer, and the grid's context menu.

Plain functions where a function does; the only widgets are the export dialog (:func:`ask_export`) and the
context menu (:func:`result_menu`), whose choices arrive as :class:`ResultActions`' signals.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMimeData, QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from engine.atomic import atomic_write

if TYPE_CHECKING:
    from engine.hits import Hit

MODES = ("copy", "link")
CSV_HEADER = ("rank", "path", "score", "x0", "y0", "x1", "y1", "scale", "mirrored", "raw_score", "box_sure",
              "likely", "taken")
GNOME_COPIED = "x-special/gnome-copied-files"  # what GNOME's file managers paste files from


def unique_paths(paths: Iterable[str | os.PathLike]) -> list[str]:
    """``paths`` as strings, each file once (the first time it comes), in order."""
    seen, out = set(), []
    for p in paths:
        p = os.fspath(p)
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# -- clipboard and drag ---------------------------------------------------------------------------------
def selection_mime(paths: Iterable[str | os.PathLike]) -> QMimeData:
    """Mime data of photos: the paths as text (one a line) and as file URLs (``text/uri-list``, and GNOME's
    copied-files list), so an editor pastes the paths and a file manager pastes the files."""
    paths = [os.path.abspath(p) for p in unique_paths(paths)]
    md = QMimeData()
    urls = [QUrl.fromLocalFile(p) for p in paths]
    md.setUrls(urls)
    md.setText("\n".join(paths))
    md.setData(GNOME_COPIED, "\n".join(["copy", *(u.toString(QUrl.ComponentFormattingOption.FullyEncoded)
                                                   for u in urls)]).encode())
    return md


def copy_paths(paths: Iterable[str | os.PathLike]) -> None:
    """Put photos on the clipboard (:func:`selection_mime`: their paths as text and as files)."""
    QGuiApplication.clipboard().setMimeData(selection_mime(paths))


# -- export -------------------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    """What :func:`export_photos` did.

    ``done``: (source, written path) of every photo that arrived; ``renamed``: those of them written under
    another name because the name was taken (a subset of ``done``); ``failed``: (source, one-line reason).
    """

    folder: str
    mode: str
    done: list[tuple[str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line for the status bar, e.g. "Copied 5 photos to /x (2 renamed, their names were taken);
        1 failed: a.jpg is gone"."""
        n = len(self.done)
        verb = "Copied" if self.mode == "copy" else "Linked"
        text = f"{verb} {n} photo{'s' if n != 1 else ''} to {self.folder}"
        if self.renamed:
            text += f" ({len(self.renamed)} renamed, their names were taken)"
        if self.failed:
            src, why = self.failed[0]
            more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
            text += f"; {len(self.failed)} failed: {os.path.basename(src)}: {why}{more}"
        return text

    def lines(self) -> list[str]:
        """One line per photo that was renamed or failed (for a details box)."""
        out = [f"{src} → {os.path.basename(dest)} (the name was taken)" for src, dest in self.renamed]
        out += [f"{src}: {why}" for src, why in self.failed]
        return out


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _candidates(folder: str, name: str):
    """``name``, then ``stem (2).ext``, ``stem (3).ext``... in ``folder``."""
    stem, ext = os.path.splitext(name)
    yield os.path.join(folder, name)
    k = 2
    while True:
        yield os.path.join(folder, f"{stem} ({k}){ext}")
        k += 1


def _copy_new(src: str, folder: str) -> str:
    """Copy ``src`` into ``folder`` under its name or the first free `` (k)`` variant; the name is claimed
    by creating the file exclusively, so nothing existing is ever written over."""
    for dest in _candidates(folder, os.path.basename(src)):
        try:
            with open(dest, "xb"):
                pass
        except FileExistsError:
            continue
        try:
            shutil.copy2(src, dest)
        except BaseException:
            try:
                os.unlink(dest)
            except OSError:
                pass
            raise
        return dest
    raise AssertionError("unreachable")


def _link_new(src: str, folder: str) -> str:
    """A symbolic link to ``src`` (absolute) in ``folder`` under its name or the first free variant."""
    target = os.path.abspath(src)
    for dest in _candidates(folder, os.path.basename(src)):
        if os.path.lexists(dest):
            continue
        try:
            os.symlink(target, dest)
        except FileExistsError:
            continue
        return dest
    raise AssertionError("unreachable")


def export_photos(paths: Iterable[str | os.PathLike], folder: str | os.PathLike, *,
                  mode: str = "copy") -> ExportReport:
    """Copy (``mode="copy"``, with their dates) or symbolically link (``"link"``) photos into ``folder``
    (created if missing), never overwriting: a name that is taken gets `` (2)``, `` (3)``... before its
    extension.  Nothing is raised for a photo: a missing one, or a link the system refuses, is reported."""
    if mode not in MODES:
        raise ValueError(f"Unknown export mode {mode!r}: use 'copy' or 'link'")
    folder = os.path.abspath(os.fspath(folder))
    paths = unique_paths(paths)
    report = ExportReport(folder, mode)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        report.failed = [(p, f"cannot create the folder {folder}: {_reason(e)}") for p in paths]
        return report
    for src in paths:
        if not os.path.exists(src):
            report.failed.append((src, "is gone (no such file)"))
            continue
        if not os.path.isfile(src):
            report.failed.append((src, "is not a file"))
            continue
        try:
            dest = _copy_new(src, folder) if mode == "copy" else _link_new(src, folder)
        except (NotImplementedError, AttributeError) as e:
            report.failed.append((src, f"this system makes no symbolic links ({_reason(e)})"))
            continue
        except OSError as e:
            why = _reason(e)
            if mode == "link":
                why = f"the system refused a link here ({why}); copy instead"
            report.failed.append((src, why))
            continue
        report.done.append((src, dest))
        if os.path.basename(dest) != os.path.basename(src):
            report.renamed.append((src, dest))
    return report


# -- saving results -----------------------------------------------------------------------------------------
def save_results(path: str | os.PathLike, hits: Sequence[Hit], *, query: dict, kind: str) -> None:
    """Save ``hits`` by ``path``'s suffix, atomically: ``.json`` writes ``{"query", "kind", "results"}`` with
    each result's fields as ``sketchsearch search --json`` prints them; ``.csv`` writes a header
    (:data:`CSV_HEADER`) and a row per result.  Any other suffix raises ValueError."""
    path = Path(path)
    suffix = path.suffix.lower()
    rows = [h.to_json() for h in hits]
    if suffix == ".json":
        text = json.dumps({"query": query, "kind": kind, "results": rows}, indent=1, ensure_ascii=False,
                          default=str) + "\n"

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
    elif suffix == ".csv":
        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                w.writerow(CSV_HEADER)
                def flag(value) -> str:  # "" where the result does not say (an image query's box, say)
                    return "" if value is None else ("true" if value else "false")

                for r in rows:
                    w.writerow([r["rank"], r["path"], r["score"], *r["box"], r["scale"], flag(r["mirrored"]),
                                r.get("raw_score", ""), flag(r.get("box_sure")), flag(r.get("likely")),
                                r.get("taken", "")])
    else:
        raise ValueError(f"Cannot save results as {suffix or 'a file without a suffix'} ({path.name}): "
                         "use .json or .csv")
    atomic_write(path, write)


# -- opening -----------------------------------------------------------------------------------------------
def open_externally(path: str | os.PathLike) -> str | None:
    """Open a photo in the desktop's default application: None when it opened, else one line saying why not
    (for the status bar)."""
    path = os.fspath(path)
    name = os.path.basename(path) or path
    if not os.path.exists(path):
        return f"{name} is gone (no file at {path})"
    if QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.abspath(path))):
        return None
    return f"No application is set to open photos on this desktop ({name})"


# -- the export dialog ----------------------------------------------------------------------------------------
class ExportDialog(QDialog):
    """Where to export photos to, and whether as copies or links."""

    def __init__(self, paths: Sequence[str], *, folder: str = "", mode: str = "copy", parent=None) -> None:
        super().__init__(parent)
        n = len(unique_paths(paths))
        self.setWindowTitle("Export Photos")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Export {n} photo{'s' if n != 1 else ''} into:"))
        row = QHBoxLayout()
        self.folder_edit = QLineEdit(folder)
        self.folder_edit.setPlaceholderText("a folder (created if missing)")
        self.folder_edit.setMinimumWidth(320)
        self.folder_edit.selectAll()  # the last folder, offered: typing replaces it
        self.folder_edit.setFocus()
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_folder)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(choose)
        lay.addLayout(row)
        self.copy_radio = QRadioButton("Copy the photos")
        self.copy_radio.setToolTip("Independent copies, with their dates; the originals stay where they are")
        self.link_radio = QRadioButton("Link to the photos")
        self.link_radio.setToolTip("Symbolic links to the originals: no extra space, but they break when the "
                                   "originals move")
        (self.link_radio if mode == "link" else self.copy_radio).setChecked(True)
        lay.addWidget(self.copy_radio)
        lay.addWidget(self.link_radio)
        note = QLabel("A name that is taken gets “ (2)”, “ (3)”…: nothing in the folder is overwritten.")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.folder_edit.textChanged.connect(self._update_ok)
        self._update_ok()

    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.folder()))

    def choose_folder(self) -> None:
        got = QFileDialog.getExistingDirectory(self, "Export into", self.folder() or os.path.expanduser("~"))
        if got:
            self.folder_edit.setText(got)

    def folder(self) -> str:
        return os.path.expanduser(self.folder_edit.text().strip())

    def mode(self) -> str:
        return "link" if self.link_radio.isChecked() else "copy"


def ask_export(parent: QWidget | None, paths: Sequence[str], *, folder: str = "",
               mode: str = "copy") -> tuple[str, str] | None:
    """Ask where to export ``paths`` and how: (folder, "copy" | "link"), or None when cancelled.  ``folder``
    and ``mode``: what the dialog starts with (e.g. the last ones used)."""
    dlg = ExportDialog(paths, folder=folder, mode=mode, parent=parent)
    try:
        if dlg.exec() != QDialog.DialogCode.Accepted or not dlg.folder():
            return None
        return dlg.folder(), dlg.mode()
    finally:
        dlg.deleteLater()


# -- the grid's context menu -------------------------------------------------------------------------------
class ResultActions(QObject):
    """What the results' context menu asks for; the main window connects these."""

    openViewer = Signal(object)  # a Hit: open it in the app ("Open", as a double click does)
    openExternally = Signal(str)  # a photo's path: the desktop's default viewer (see open_externally)
    copyPaths = Signal(list)  # paths (see copy_paths)
    export = Signal(list)  # paths (see ask_export, export_photos)
    saveResults = Signal()  # all the shown results (see save_results)
    searchImage = Signal(str)  # a photo's path: search with it as an image query


def result_menu(parent: QWidget | None, hits: Sequence[Hit], actions: ResultActions, *,
                can_save: bool = True) -> QMenu:
    """The context menu of the results ``hits`` (those selected, in rank order): one photo's actions (Open,
    Open in the Default Viewer, Search with This Photo) are enabled for a single hit, the selection's (Copy
    Paths, Export…) for any; Save Results… saves all the results (``can_save``: there are some).  Each action
    emits its signal of ``actions``; each QAction's objectName is that signal's name; each has its own
    underlined letter (the keyboard's way through the menu)."""
    menu = QMenu(parent)
    hits = list(hits)
    one = hits[0] if len(hits) == 1 else None
    paths = unique_paths(h.path for h in hits)

    def add(text: str, name: str, slot, enabled: bool, tip: str = "") -> None:
        a = menu.addAction(text)
        a.setObjectName(name)
        a.setEnabled(enabled)
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(slot)

    add("&Open", "openViewer", lambda: actions.openViewer.emit(one), one is not None)
    add("Open in the &Default Viewer", "openExternally", lambda: actions.openExternally.emit(one.path),
        one is not None, "Open the photo in the desktop's photo viewer")
    menu.addSeparator()
    n = len(paths)
    add("&Copy Paths", "copyPaths", lambda: actions.copyPaths.emit(list(paths)), bool(paths),
        f"Copy the {n} selected photo{'s' if n != 1 else ''} (paste the paths, or the files in a file manager)")
    add("&Export…", "export", lambda: actions.export.emit(list(paths)), bool(paths),
        f"Copy or link the {n} selected photo{'s' if n != 1 else ''} into a folder")
    add("&Save Results…", "saveResults", actions.saveResults.emit, can_save,
        "Save all the results as JSON or CSV")
    menu.addSeparator()
    add("Searc&h with This Photo", "searchImage", lambda: actions.searchImage.emit(one.path), one is not None,
        "Search for photos like this one")
    return menu
