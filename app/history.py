"""The recent queries: the last ``limit`` (30) sketches, photos and photo regions searched for, kept across
restarts in the app's data folder (never beside the photos), and a strip of their thumbnails to run one again.

:class:`QueryHistory` owns a folder (default :func:`history_folder`): ``history.json`` (the entries, newest
first, written atomically) and the PNG files the entries name (a thumbnail of at most :data:`THUMB` px each,
a sketch's pixels, a pasted image's pixels).  An entry that goes (beyond the limit, :meth:`QueryHistory.clear`)
takes its files with it.  A damaged or missing ``history.json`` reads as an empty history and an entry whose
files are missing is dropped, never a traceback.

Everything here runs on the UI thread (the thumbnails are tiny); no Qt object is made or kept elsewhere.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QAction, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from resources import ICONS

from .paths import data_folder
from .sketch import sketch_bbox

__all__ = ["HistoryEntry", "QueryHistory", "HistoryStrip", "history_folder", "KINDS", "MODES", "THUMB"]

log = logging.getLogger(__name__)

KINDS = ("sketch", "image", "region")
MODES = ("both", "shape", "image")
THUMB = 96  # a thumbnail's longest side, px
IMAGE_SIDE = 1024  # a pasted image is kept at most this big (what searching a photo file reads, too)
LIMIT = 30
JSON = "history.json"
VERSION = 1
# the files an entry owns: <kind>-<id>-<role>.png (only such files are ever deleted from the folder)
_OWN = re.compile(r"^(sketch|image|region)-[0-9a-f]{12,32}-(thumb|sketch|image)\.png$")


def history_folder() -> Path:
    """Where the app keeps the recent queries: ``history`` in the app's data folder (never among the photos)."""
    return data_folder() / "history"


@dataclass
class HistoryEntry:
    """One recent query.

    ``kind``: ``"sketch"``, ``"image"`` or ``"region"``.  ``created``: when it was (last) asked, ``time.time()``.
    ``thumb``: the file name of its thumbnail (at most :data:`THUMB` px) in the history folder.

    What runs it again: a sketch's ``sketch`` (file name of the sketch's PNG in the history folder,
    :meth:`QueryHistory.sketch_pixels`); an image's ``path`` (the photo file) or, for pixels that had no file
    (pasted, dropped), ``image`` (file name of their PNG in the history folder, :meth:`QueryHistory.image_pixels`);
    a region's photo ``path``, ``box`` (x0, y0, x1, y1 in the photo's original pixels) and ``mode``
    (``"both"``, ``"shape"`` or ``"image"``).  ``collection``: the collection it was asked of (informational).
    ``key``: what makes two queries the same (a hash of the pixels, the path, the path, box and mode).
    """

    kind: str
    created: float
    thumb: str
    sketch: str | None = None
    path: str | None = None
    image: str | None = None
    box: tuple[int, int, int, int] | None = None
    mode: str | None = None
    collection: str = ""
    key: str = field(default="", repr=False)

    def files(self) -> list[str]:
        """The names of the files in the history folder this entry owns."""
        return [n for n in (self.thumb, self.sketch, self.image) if n]

    def label(self) -> str:
        """What it was, in words: "Sketch", "Photo name.jpg", "Region of name.jpg (shape)", "Pasted image"."""
        if self.kind == "sketch":
            return "Sketch"
        name = os.path.basename(self.path) if self.path else ""
        if self.kind == "image":
            return f"Photo {name}" if name else "Pasted image"
        what = {"both": "shape and look", "shape": "shape", "image": "look"}.get(self.mode or "", self.mode or "")
        return f"Region of {name} ({what})"


class QueryHistory:
    """The recent queries in ``folder`` (created when first written), newest first, at most ``limit``.

    ``add_sketch``, ``add_image`` and ``add_region`` record a query and return its entry; a query that is
    already there (the same sketch pixels, the same photo, the same photo, box and mode) moves to the front
    instead.  They raise ``OSError`` when the folder cannot be written (nothing is left behind then).
    """

    def __init__(self, folder: str | os.PathLike, limit: int = LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.folder = Path(folder)
        self.limit = int(limit)
        self._entries: list[HistoryEntry] = []
        self._load()

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def entries(self) -> list[HistoryEntry]:
        """The entries, newest first (a copy of the list)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def file(self, name: str) -> Path:
        """The path of one of the history's files (an entry's ``thumb``, ``sketch`` or ``image``)."""
        return self.folder / name

    def thumb_path(self, entry: HistoryEntry) -> Path:
        return self.file(entry.thumb)

    def sketch_pixels(self, entry: HistoryEntry) -> np.ndarray:
        """A sketch entry's sketch: (H, W) uint8 grey, what ``SketchCanvas.to_image`` gave.

        Raises ``ValueError`` for another kind of entry, ``OSError`` when its file is gone or unreadable."""
        if entry.kind != "sketch" or not entry.sketch:
            raise ValueError(f"a {entry.kind} entry has no sketch")
        return _read_png(self.file(entry.sketch), grey=True)

    def image_pixels(self, entry: HistoryEntry) -> np.ndarray:
        """The pixels of an image entry that had no file (pasted, dropped): (H, W, 3) float32 RGB in [0, 1].

        Raises ``ValueError`` for an entry with no such pixels (a photo file's: run ``entry.path``),
        ``OSError`` when the file is gone or unreadable."""
        if entry.kind != "image" or not entry.image:
            raise ValueError("this entry has no pixels of its own (search its photo file, entry.path)")
        return _read_png(self.file(entry.image), grey=False)

    # -- adding ----------------------------------------------------------------------------------------
    def add_sketch(self, pixels: np.ndarray, *, collection: str | os.PathLike | None = None) -> HistoryEntry:
        """Record a sketch search: ``pixels`` (H, W) uint8 grey (``SketchCanvas.to_image()``)."""
        grey = _as_uint8(pixels)
        if grey.ndim == 3:
            grey = cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY)
        key = "sketch:" + _digest(grey)
        found = self._bump(key, collection)
        if found is not None:
            return found
        bbox = sketch_bbox(grey)
        if bbox is not None:  # the thumbnail shows the ink, with a margin, not the whole paper
            x0, y0, x1, y1 = bbox
            m = max(4, round(0.08 * max(x1 - x0, y1 - y0)))
            h, w = grey.shape
            shown = grey[max(0, y0 - m):min(h, y1 + m), max(0, x0 - m):min(w, x1 + m)]
        else:
            shown = grey
        return self._add("sketch", key, collection, thumb=shown, sketch=grey)

    def add_image(self, path: str | os.PathLike | None, pixels: np.ndarray | None = None, *,
                  collection: str | os.PathLike | None = None) -> HistoryEntry:
        """Record an image search: a photo file ``path`` (``pixels``, its pixels, make the thumbnail without
        reading the file again) or, with ``path`` None, ``pixels`` that had no file ((H, W, 3) float RGB in
        [0, 1], kept as a PNG of at most :data:`IMAGE_SIDE` px)."""
        if path is None and pixels is None:
            raise ValueError("an image query needs a path or pixels")
        if path is not None:
            path = str(Path(path).resolve())
            key = "image:" + path
        else:
            pixels = _fit(_as_uint8(pixels), IMAGE_SIDE)
            key = "pixels:" + _digest(pixels)
        found = self._bump(key, collection)
        if found is not None:
            return found
        if pixels is None:
            pixels = _load_photo(path)
        if path is not None:
            return self._add("image", key, collection, thumb=pixels, path=path)
        return self._add("image", key, collection, thumb=pixels, image=pixels)

    def add_region(self, path: str | os.PathLike, box, mode: str, crop_pixels: np.ndarray | None = None, *,
                   collection: str | os.PathLike | None = None) -> HistoryEntry:
        """Record a search by a region of a photo: ``box`` (x0, y0, x1, y1) in the photo's original pixels,
        ``mode`` ``"both"``, ``"shape"`` or ``"image"``; ``crop_pixels`` (the region's pixels) make the
        thumbnail (without them the photo is read)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        box = tuple(int(round(v)) for v in box)
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"a box is (x0, y0, x1, y1) with x0 < x1 and y0 < y1, not {box}")
        path = str(Path(path).resolve())
        key = f"region:{path}:{','.join(map(str, box))}:{mode}"
        found = self._bump(key, collection)
        if found is not None:
            return found
        if crop_pixels is None:
            crop_pixels = _load_crop(path, box)
        return self._add("region", key, collection, thumb=crop_pixels, path=path, box=box, mode=mode)

    def remove(self, entry: HistoryEntry) -> None:
        """Forget one entry and delete its files (nothing happens for an entry no longer here)."""
        if entry not in self._entries:
            return
        self._entries = [e for e in self._entries if e is not entry]
        self._save()
        self._delete_files(entry)

    def clear(self) -> None:
        """Forget every entry and delete their files."""
        gone, self._entries = self._entries, []
        self._save()
        for e in gone:
            self._delete_files(e)

    # -- inside ------------------------------------------------------------------------------------------
    def _bump(self, key: str, collection) -> HistoryEntry | None:
        """The entry of ``key`` moved to the front (asked now), or None when there is none."""
        for i, e in enumerate(self._entries):
            if e.key == key:
                e.created = time.time()
                if collection is not None:
                    e.collection = str(collection)
                self._entries.insert(0, self._entries.pop(i))
                self._save()
                return e
        return None

    def _add(self, kind: str, key: str, collection, *, thumb: np.ndarray, sketch: np.ndarray | None = None,
             image: np.ndarray | None = None, **what) -> HistoryEntry:
        stem = f"{kind}-{uuid.uuid4().hex[:16]}"
        entry = HistoryEntry(kind=kind, created=time.time(), thumb=f"{stem}-thumb.png",
                             sketch=f"{stem}-sketch.png" if sketch is not None else None,
                             image=f"{stem}-image.png" if image is not None else None,
                             collection=str(collection) if collection is not None else "", key=key, **what)
        before = list(self._entries)
        try:
            _write_png(self.file(entry.thumb), _fit(_as_uint8(thumb), THUMB))
            if sketch is not None:
                _write_png(self.file(entry.sketch), sketch)
            if image is not None:
                _write_png(self.file(entry.image), image)
            self._entries = [entry, *before]
            gone = self._entries[self.limit:]
            del self._entries[self.limit:]
            self._save()
        except BaseException:
            self._entries = before
            self._delete_files(entry)
            raise
        for e in gone:
            self._delete_files(e)
        return entry

    def _delete_files(self, entry: HistoryEntry) -> None:
        for name in entry.files():
            with contextlib.suppress(OSError):
                self.file(name).unlink()

    def _save(self) -> None:
        doc = {"version": VERSION, "entries": [asdict(e) for e in self._entries]}
        data = json.dumps(doc, indent=1).encode()

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(data)

        from engine.atomic import atomic_write

        atomic_write(self.folder / JSON, write)

    def _load(self) -> None:
        path = self.folder / JSON
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except OSError as e:  # unreadable now (its files are left alone)
            log.warning("the query history %s cannot be read (%s); it starts empty", path, e)
            return
        except ValueError as e:  # JSON and Unicode decoding errors: damaged (its files go)
            log.warning("the query history %s is damaged (%s); it starts empty", path, e)
            doc = None
        raw = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(raw, list):
            if doc is not None:
                log.warning("the query history %s is not a history; it starts empty", path)
            raw = []
        names = {f.name for f in fields(HistoryEntry)}
        seen: set[str] = set()
        for item in raw:
            entry = _entry(item, names) if isinstance(item, dict) else None
            if entry is None or entry.key in seen or not all(self.file(n).is_file() for n in entry.files()):
                continue  # damaged, a duplicate, or its files are gone
            seen.add(entry.key)
            self._entries.append(entry)
        for e in self._entries[self.limit:]:
            self._delete_files(e)
        del self._entries[self.limit:]
        self._sweep()

    def _sweep(self) -> None:
        """Delete the history's files that no entry names (left by a crash between writing them and the
        list), and the temporary files of interrupted writes of the list."""
        kept = {n for e in self._entries for n in e.files()}
        with contextlib.suppress(OSError):
            for p in self.folder.iterdir():
                stale = (_OWN.match(p.name) and p.name not in kept) or \
                    (p.name.startswith(f".{JSON}.") and p.name.endswith(".tmp"))
                if stale:
                    with contextlib.suppress(OSError):
                        p.unlink()


def _entry(item: dict, names: set[str]) -> HistoryEntry | None:
    """A stored entry, checked; None when it is not one."""
    try:
        e = HistoryEntry(**{k: v for k, v in item.items() if k in names})
        e.created = float(e.created)
        if e.kind not in KINDS or not _own_name(e.thumb):
            return None
        if e.sketch is not None and not _own_name(e.sketch) or e.image is not None and not _own_name(e.image):
            return None
        if e.kind == "sketch" and not e.sketch:
            return None
        if e.kind == "image" and not (isinstance(e.path, str) and e.path or e.image):
            return None
        if e.kind == "region":
            if not isinstance(e.path, str) or e.mode not in MODES:
                return None
            box = tuple(int(v) for v in e.box)
            if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
                return None
            e.box = box
        if not isinstance(e.collection, str):
            e.collection = ""
        if not isinstance(e.key, str) or not e.key:
            e.key = _key_of(e)
        return e
    except (TypeError, ValueError):
        return None


def _own_name(name) -> bool:
    return isinstance(name, str) and bool(_OWN.match(name))


def _key_of(e: HistoryEntry) -> str:
    if e.kind == "region":
        return f"region:{e.path}:{','.join(map(str, e.box))}:{e.mode}"
    if e.kind == "image" and e.path:
        return "image:" + e.path
    return f"{e.kind}-file:{e.sketch or e.image}"  # no pixels read here: unique per file


def _digest(a: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    """(H, W) grey or (H, W, 3) RGB, uint8 or float in [0, 1] -> uint8 (grey or RGB)."""
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or a.ndim == 3 and a.shape[2] not in (3, 4) or a.size == 0:
        raise ValueError(f"not an image: an array of shape {a.shape}")
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _fit(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    if max(h, w) <= side:
        return a
    s = side / max(h, w)
    return cv2.resize(a, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _write_png(path: Path, a: np.ndarray) -> None:
    """uint8 grey or RGB -> a PNG file, written atomically."""
    from engine.atomic import atomic_write

    ok, data = cv2.imencode(".png", a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: could not encode the image as PNG")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data.tobytes())

    atomic_write(path, write)


def _read_png(path: Path, *, grey: bool) -> np.ndarray:
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise OSError(e.errno, f"the history's file cannot be read: {e.strerror or e}", str(path)) from e
    a = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if data.size else None
    if a is None:
        raise OSError(f"{path}: the history's file is damaged")
    if grey:
        return a
    return cv2.cvtColor(a, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _load_photo(path: str) -> np.ndarray:
    from engine.imageio import ImageError, load_image

    try:
        return load_image(path, max_side=4 * THUMB).pixels
    except ImageError as e:
        raise OSError(str(e)) from e


def _load_crop(path: str, box: tuple[int, int, int, int]) -> np.ndarray:
    from engine.imageio import ImageError, load_image

    try:
        img = load_image(path, max_side=1024)
    except ImageError as e:
        raise OSError(str(e)) from e
    h, w = img.pixels.shape[:2]
    sx, sy = w / max(1, img.original_size[0]), h / max(1, img.original_size[1])
    x0, y0 = max(0, int(box[0] * sx)), max(0, int(box[1] * sy))
    x1, y1 = min(w, max(x0 + 1, round(box[2] * sx))), min(h, max(y0 + 1, round(box[3] * sy)))
    return img.pixels[y0:y1, x0:x1]


# -- the strip ------------------------------------------------------------------------------------------
EMPTY_TEXT = "Your searches appear here"
STRIP_HEIGHT = 80
ICON = 56


class HistoryStrip(QListWidget):
    """The recent queries' thumbnails in one scrolling row, newest first.

    A click, Enter or Space on one emits ``chosen(entry)`` (a :class:`HistoryEntry`); the context menu has
    "Remove This Search" and "Clear History…" (asked first; ``cleared`` is emitted after it).  Call
    :meth:`refresh` after the history changed.  Empty, it says :data:`EMPTY_TEXT` (or hide it while
    :meth:`isEmpty`; ``emptyChanged(bool)`` tells).
    """

    chosen = Signal(object)
    cleared = Signal()
    emptyChanged = Signal(bool)

    def __init__(self, history: QueryHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # where the keyboard is, seen in any scheme: the strip's frame in the highlight colour while it has focus
        self.setStyleSheet("HistoryStrip:focus { border: 2px solid palette(highlight); }")
        self.history = history
        self._shown: list[HistoryEntry] = []
        self._was_empty: bool | None = None
        self.setObjectName("historyStrip")
        self.setAccessibleName("Recent searches")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setDragEnabled(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setIconSize(QSize(ICON, ICON))
        self.setGridSize(QSize(ICON + 8, ICON + 4))
        self.setSpacing(0)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(STRIP_HEIGHT)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.remove_action = QAction("&Remove This Search", self)
        self.remove_action.setToolTip("Forget the selected search and delete its thumbnail")
        self.remove_action.triggered.connect(self.remove_current)
        self.addAction(self.remove_action)
        self.clear_action = QAction("&Clear History…", self)
        self.clear_action.setToolTip("Forget the recent searches and delete their thumbnails (asks first)")
        self.clear_action.triggered.connect(self._ask_clear)
        self.addAction(self.clear_action)
        self.clicked.connect(self._choose)
        self.refresh(newest_current=False)

    def isEmpty(self) -> bool:  # noqa: N802 - Qt's naming
        return self.count() == 0

    def entry(self, row: int) -> HistoryEntry | None:
        """The entry shown in ``row`` (None beyond them)."""
        return self._shown[row] if 0 <= row < len(self._shown) else None

    def refresh(self, *, newest_current: bool = True) -> None:
        """Show the history's entries as they are now, the newest (the query shown) current (``newest_current``
        False: none, as when the strip is made: no query is shown yet)."""
        self.clear()
        self._shown = self.history.entries
        fallback = {k: QIcon(str(ICONS / f"{'sketch' if k == 'sketch' else 'image'}.svg")) for k in KINDS}
        for e in self._shown:
            item = QListWidgetItem()
            pm = QPixmap(str(self.history.thumb_path(e)))
            item.setIcon(QIcon(_square(pm, ICON)) if not pm.isNull() else fallback.get(e.kind, QIcon()))
            tip = _tooltip(e)
            item.setToolTip(tip)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, tip.replace("\n", ", "))
            item.setSizeHint(self.gridSize())
            self.addItem(item)
        # the newest: the query shown now (a query run again moves to the front); else none (the view makes the
        # first row current as rows come, unasked)
        self.setCurrentRow(0 if self._shown and newest_current else -1)
        self.clear_action.setEnabled(bool(self._shown))
        self.remove_action.setEnabled(bool(self._shown))
        self.viewport().update()
        if self._was_empty is not self.isEmpty():
            self._was_empty = self.isEmpty()
            self.emptyChanged.emit(self._was_empty)

    def _ask_clear(self) -> None:
        """The menu's Clear History…: asked first, as it cannot be undone (found under Xvfb: one click forgot
        every search)."""
        from PySide6.QtWidgets import QMessageBox

        n = len(self._shown)
        asked = QMessageBox.question(self, "Clear history",
                                     f"Forget the {n} recent search{'es' if n != 1 else ''}? This cannot be undone.")
        if asked == QMessageBox.StandardButton.Yes:
            self.clear_history()

    def remove_current(self) -> None:
        """Forget the selected entry (the menu's Remove This Search; right-clicking an entry selects it)."""
        e = self.entry(self.currentRow())
        if e is None:
            return
        try:
            self.history.remove(e)
        except OSError as err:
            log.warning("the search could not be removed from the history: %s", err)
        self.refresh(newest_current=False)

    def clear_history(self) -> None:
        """Forget every recent query (the context menu's "Clear history")."""
        try:
            self.history.clear()
        except OSError as e:
            log.warning("the query history could not be cleared: %s", e)
        self.refresh()
        self.cleared.emit()

    def _choose(self, index) -> None:
        e = self.entry(index.row())
        if e is not None:
            self.chosen.emit(e)

    def event(self, event) -> bool:
        # Enter on an entry runs it, before a window-wide Enter shortcut (Search Now) takes the key (found under
        # Xvfb: Enter re-ran the query shown, Space the entry)
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers() \
                and self.currentIndex().isValid():
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and self.currentIndex().isValid():
            self._choose(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.count() == 0:
            p = QPainter(self.viewport())
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.viewport().rect().adjusted(8, 0, -8, 0),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, EMPTY_TEXT)
            p.end()

    def sizeHint(self) -> QSize:
        return QSize(8 * (ICON + 8), STRIP_HEIGHT)


def _square(pm: QPixmap, side: int) -> QPixmap:
    """A thumbnail scaled to fit ``side`` (aspect kept): icons of one size line up in the row."""
    return pm.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def _tooltip(e: HistoryEntry) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created))
    lines = [e.label(), when]
    if e.kind == "region" and e.box:
        lines.append("box {}, {} – {}, {}".format(*e.box))
    if e.collection:
        lines.append(f"in {Path(e.collection).stem if e.collection.endswith('.json') else Path(e.collection).name}")
    return "\n".join(lines)
