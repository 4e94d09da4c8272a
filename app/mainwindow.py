"""The main window: canvas (or image query) | results grid | detail panel, menus, indexing, status."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from resources import ICONS

from .actions import ResultActions, ask_export, copy_paths, export_photos, open_externally, result_menu, save_results
from .canvas import SketchCanvas
from .detail import DetailPanel, region_mode_combo
from .filterbar import FilterBar, inside
from .history import HistoryStrip, QueryHistory, history_folder
from .labels import ElidedLabel
from .memory import trim_heap
from .paths import data_folder
from .results import (
    HitRole,
    ResultDelegate,
    ResultsModel,
    ResultsView,
    ThumbnailCache,
    ThumbSizeSlider,
    qimage_from_pixels,
)
from .viewer import PhotoViewer
from .welcome import WelcomePanel, about_text, app_version
from .workers import Runner, Task

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.bmp *.tif *.tiff *.gif)"
DEBOUNCE_MS = 300
TOP_DEBOUNCE_MS = 500  # typing a result count searches once the typing pauses
RECENT = 8  # collections in File > Recent Collections
MIN_USABLE = QSize(1024, 640)  # nothing is cut off down to this size; below it the window scrolls
EXPAND = None  # sketch-to-image expansion when "Include similar photos" is on (None: the fitted default)
REFRESH_S = 3.0  # while indexing, re-open the index this often so new photos become searchable
GRID, WELCOME, VIEWER = 0, 1, 2  # the pages of the middle pane
TRIM_IDLE_MS = 1500  # the heap's free memory goes back to the system once the person pauses this long


#: opacity of a disabled icon: the style's grey version of an icon was as bright as the enabled icons on the
#: dark scheme's buttons (undo looked clickable with nothing to undo)
DISABLED_OPACITY = 0.3


def icon(name: str) -> QIcon:
    """An icon of the app's own set for buttons, menus and lists, its disabled look the enabled one faded (any
    colour scheme): rendered from the SVG at their sizes (an SVG icon keeps one added pixmap per mode, of one
    size).  The window's icon, never disabled and shown large, is the SVG itself (:func:`window_icon`)."""
    svg = QIcon(str(ICONS / f"{name}.svg"))
    ic = QIcon()
    for side in (16, 20, 24, 32, 40, 48, 64):
        normal = svg.pixmap(side, side)
        faint = QPixmap(normal.size())
        faint.setDevicePixelRatio(normal.devicePixelRatio())
        faint.fill(Qt.GlobalColor.transparent)
        painter = QPainter(faint)
        painter.setOpacity(DISABLED_OPACITY)
        painter.drawPixmap(0, 0, normal)
        painter.end()
        ic.addPixmap(normal, QIcon.Mode.Normal)
        ic.addPixmap(faint, QIcon.Mode.Disabled)
    return ic


def window_icon() -> QIcon:
    """The app's own icon, drawn from its SVG at any size (the window, the task bar)."""
    return QIcon(str(ICONS / "sketchsearch.svg"))


def collections_folder() -> Path:
    """Where the app keeps the collections it makes (the app's data folder, never among the photos)."""
    return data_folder() / "collections"


#: bytes of the tag that keeps the collections of photo folders of the same name apart (``default_db_for``)
TAG_BYTES = 6


def default_db_for(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The collection of a photo folder of its own: in ``root`` (default :func:`collections_folder`)."""
    folder = Path(folder).resolve()
    tag = hashlib.blake2b(str(folder).encode(), digest_size=TAG_BYTES).hexdigest()
    return Path(root or collections_folder()) / f"{folder.name or 'root'}-{tag}"


def collection_name(db: str | os.PathLike) -> str:
    """A short name of a collection for menus and the status bar (its folder's or manifest's name; for a
    collection the app made of a photo folder, :func:`default_db_for`, the photo folder's name without the tag
    that keeps folders of the same name apart: "photos", not "photos-bd3eb606c5bf")."""
    p = Path(db)
    if p.suffix == ".json":
        return p.stem
    name, _, tag = p.name.rpartition("-")
    made = name and re.fullmatch(f"[0-9a-f]{{{2 * TAG_BYTES}}}", tag) and p.parent == collections_folder()
    return name if made else p.name


def is_collection(db: str | os.PathLike) -> bool:
    """Whether ``db`` holds a collection: an index folder (with its catalog) or a manifest file."""
    from engine.catalog import CATALOG

    p = Path(db)
    return p.is_file() and p.suffix == ".json" or (p / CATALOG).is_file()


class IndexTargetDialog(QDialog):
    """Asks where a folder's photos go before a run: a collection of its own (new or updated) or the open
    collection (only as an explicit choice), naming the collection that will be written."""

    def __init__(self, folder: Path, own: Path, own_count: int | None, open_db: Path | None,
                 open_count: int | None, parent=None, *, open_holds: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Index a photo folder")
        self.own, self.open_db = own, open_db
        lay = QVBoxLayout(self)
        head = QLabel(f"Index the photos of <b>{_html(str(folder))}</b> into:")
        head.setWordWrap(True)
        lay.addWidget(head)
        what = ("a new collection" if own_count is None
                else f"its own collection, updated ({own_count:,} photos now)")
        self.own_button = QRadioButton(f"{what}: {collection_name(own)}")
        self.own_button.setToolTip(str(own))
        self.own_button.setChecked(True)
        lay.addWidget(self.own_button)
        self.open_button = QRadioButton()
        if open_db is not None and open_db != own:
            count = f" ({open_count:,} photos)" if open_count is not None else ""
            self.open_button.setText(f"the open collection {collection_name(open_db)}{count}, "
                                     + ("which holds this folder, updated" if open_holds else "adding them to it"))
            self.open_button.setToolTip(str(open_db))
            lay.addWidget(self.open_button)
            if open_holds:  # the folder was indexed into it before: updating it is what the run is for
                self.open_button.setChecked(True)
        else:
            self.open_button.setVisible(False)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.where)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.button(QDialogButtonBox.StandardButton.Ok).setText("Index")
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        lay.addWidget(box)
        for b in (self.own_button, self.open_button):
            b.toggled.connect(self._update)
        self._update()

    def target(self) -> Path:
        return self.open_db if self.open_button.isChecked() and self.open_db is not None else self.own

    def _update(self) -> None:
        self.where.setText(f"Written to: {self.target()}")


class MainWindow(QMainWindow):
    """sketchsearch's window.  ``searchFinished(n)`` is emitted when results are shown (tests, bench)."""

    searchFinished = Signal(int)
    indexingFinished = Signal(str)  # "done" | "cancelled" | "failed"
    exportFinished = Signal(object)  # the ExportReport of File → Export (tests)

    def __init__(self, *, db: str | os.PathLike | None = None, settings: QSettings | None = None,
                 restore: bool = True, history: QueryHistory | None = None, open_last: bool = True) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.history = history if history is not None else QueryHistory(history_folder())
        self._sketch_entry = None  # the history entry of the sketch being drawn (replaced as it grows)
        self.runner = Runner(parent=self)
        self.index = None  # engine.collection.SketchIndex
        self.db: Path | None = None
        self.index_workers: int | None = None  # None: all cores
        self.collections_root: Path | None = None  # where new collections go (None: collections_folder())
        self._warming = None  # the start-up task that loads the search models (engine.warm_up)
        self._search_pending = False  # a search asked for while warming up: run when it is done
        self.top_k = 60
        self.query_kind = "sketch"
        self.query_image: np.ndarray | str | None = None
        self.query_path: str | None = None  # the file of an image query (None: pasted or dropped pixels)
        self.query_region: tuple[str, tuple, str] | None = None  # a region query's (photo, box, mode)
        self._region_token = None  # the region being read (search_region)
        self._region_crop: np.ndarray | None = None  # its pixels
        self._generation = 0
        self._search_started = 0.0
        self._failed_message = ""  # the status bar's words of the last failed search (cleared by the next result)
        self._damage_said: str | None = None  # the damaged image index the status bar said (once)
        self._indexing: Task | None = None
        self._before_indexing: Path | None = None  # the collection shown when the indexing run started
        self._index_first: tuple[int, float] | None = None  # (done, time) at a run's first progress report
        self._index_name = ""  # the folder being indexed
        self._from_top = False  # the next results open at the first, also in the viewer
        self._region_searched = None  # the region of the last region search
        self._index_run: tuple[Path, Path] | None = None  # (folder, collection) of the last run started
        self._last_refresh = 0.0
        self._shown_sketch: np.ndarray | None = None
        self.setWindowTitle("sketchsearch")
        self.setWindowIcon(window_icon())
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_actions()
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS, timeout=self.search_now)
        self._top_debounce = QTimer(self, singleShot=True, interval=TOP_DEBOUNCE_MS, timeout=self.search_now)
        self._message_timer = QTimer(self, singleShot=True, timeout=lambda: self.message_label.setText(""))
        # after a search or a selection, once nothing else happens for TRIM_IDLE_MS (each search, selection
        # or stroke starts it over; a stroke stops it: never in the middle of drawing)
        self._trim_timer = QTimer(self, singleShot=True, timeout=self._trim)
        self.trims = 0  # how often the heap was trimmed (tests)
        self.canvas.sketchChanged.connect(self._sketch_changed)
        self.canvas.strokeStarted.connect(self._trim_timer.stop)
        self.resize(1360, 820)
        if restore:
            self._restore_state()
        if db is None and restore and open_last and self.settings.value("collection/db"):
            last = Path(str(self.settings.value("collection/db")))
            db = last if is_collection(last) else None
        if db is not None:
            self._open_at_start(db)  # in the background: the window shows at once
        self._update_status()
        self._update_recent_menu()

    # -- layout -----------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.canvas = SketchCanvas()
        self.query_view = FittedImage()
        back = QPushButton(icon("sketch"), "Back to the sketch")
        back.clicked.connect(self.back_to_sketch)
        image_page = QWidget()
        lay = QVBoxLayout(image_page)
        self.query_label = QLabel("Searching by this image:")
        lay.addWidget(self.query_label)
        lay.addWidget(self.query_view, 1)
        self.region_mode = region_mode_combo()
        self.region_mode.currentIndexChanged.connect(self._region_mode_changed)
        self.region_mode.setVisible(False)
        lay.addWidget(self.region_mode)
        lay.addWidget(back)
        self.query_stack = QStackedWidget()
        self.query_stack.addWidget(self.canvas)
        self.query_stack.addWidget(image_page)

        self.tools = QWidget()
        tl = QHBoxLayout(self.tools)
        tl.setContentsMargins(0, 0, 0, 0)
        self.pen_button = self._tool_button("pen", "Pen (P)", "P", checkable=True)
        self.eraser_button = self._tool_button("eraser", "Eraser (E)", "E", checkable=True)
        group = QButtonGroup(self)
        group.addButton(self.pen_button)
        group.addButton(self.eraser_button)
        self.pen_button.setChecked(True)
        self.pen_button.toggled.connect(lambda on: on and self.canvas.set_tool("pen"))
        self.eraser_button.toggled.connect(lambda on: on and self.canvas.set_tool("eraser"))
        self.width_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=40, value=4)
        self.width_slider.setToolTip("Pen width")
        self.width_slider.setMaximumWidth(120)
        self.width_slider.setMinimumWidth(60)  # a narrow window squeezed it to a square that read as a checkbox
        self.width_slider.valueChanged.connect(self.canvas.set_pen_width)
        self.undo_button = self._tool_button("undo", "Undo (Ctrl+Z)")
        self.redo_button = self._tool_button("redo", "Redo (Ctrl+Shift+Z)")
        self.clear_button = self._tool_button("clear", "Clear the sketch")
        self.undo_button.clicked.connect(self.canvas.undo)
        self.redo_button.clicked.connect(self.canvas.redo)
        self.clear_button.clicked.connect(self.canvas.clear)
        stack = self.canvas.undo_stack
        stack.canUndoChanged.connect(self.undo_button.setEnabled)
        stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        for w in (self.pen_button, self.eraser_button, QLabel("Width"), self.width_slider, self.undo_button,
                  self.redo_button, self.clear_button):
            tl.addWidget(w)
        tl.addStretch(1)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(self.tools)
        ll.addWidget(self.query_stack, 1)
        self.history_strip = HistoryStrip(self.history)
        self.history_strip.setToolTip("Recent searches: click one to run it again")
        self.history_strip.chosen.connect(self.rerun)
        ll.addWidget(self.history_strip)
        hint = QLabel("Draw a shape, or drop a photo here to find similar ones.")
        hint.setWordWrap(True)
        hint.setEnabled(False)
        ll.addWidget(hint)

        thumb_pool = QThreadPool(self)  # its own threads: thumbnails never queue in front of a search
        thumb_pool.setMaxThreadCount(2)
        self.thumb_runner = Runner(thumb_pool, self)
        self.thumbs = ThumbnailCache(self.thumb_runner, parent=self)
        self.model = ResultsModel(self.thumbs, self)
        self.results = ResultsView()
        self.results.setModel(self.model)
        self.results.setItemDelegate(ResultDelegate(self.model, self.results))
        self.results.selectionModel().currentChanged.connect(self._current_changed)
        self.results.activated.connect(lambda ix: self._current_changed(ix, None))
        self.results.openRequested.connect(self.open_photo)  # Enter: the desktop's viewer
        self.results.viewRequested.connect(self.view_photo)  # double click, Space: the app's viewer
        self.result_actions = ResultActions(self)
        self.results.contextMenuRequested.connect(self._result_menu)
        self.results.pathsCopied.connect(self._paths_copied)
        self.result_actions.openViewer.connect(self.view_photo)
        self.result_actions.openExternally.connect(lambda path: self.open_photo(path=path))
        self.result_actions.copyPaths.connect(lambda paths: (copy_paths(paths), self._paths_copied(paths)))
        self.result_actions.export.connect(self.export_selection)
        self.result_actions.saveResults.connect(lambda: self.save_results())
        self.result_actions.searchImage.connect(self.search_image_file)
        self.thumb_slider = ThumbSizeSlider(self.results)
        self.thumb_slider.setMinimumWidth(80)
        self.results.thumbSizeChanged.connect(lambda px: self.settings.setValue("results/thumb", int(px)))
        self.count_label = QLabel("No results")
        # its text changes with every search: it must not move the splitter's panes
        self.count_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.count_label.setMinimumWidth(80)
        self.top_spin = QSpinBox(minimum=1, maximum=1000, value=self.top_k, suffix=" results")
        self.top_spin.setToolTip("How many results to show")
        self.top_spin.valueChanged.connect(self._top_changed)
        self.cutoff = ScoreCut()
        self.cutoff.setToolTip("Hide results below this score")
        self.cutoff.valueChanged.connect(self._cutoff_changed)
        self.expand_box = QCheckBox("Include similar photos")
        self.expand_box.setToolTip("Rank and score with the photos that look like the best sketch hits too (the "
                                   "query expansion): most sketches find more of their subject with it; off, the "
                                   "ranking and the scores come from the sketch alone")
        self.expand_box.setChecked(True)  # on by default: it helps most sketches (README, sketch search quality)
        self.expand_box.toggled.connect(self._expand_toggled)
        head = QHBoxLayout()
        head.addWidget(self.count_label, 1)
        head.addWidget(self.thumb_slider)
        controls = QHBoxLayout()
        controls.addWidget(self.expand_box)
        controls.addStretch(1)
        controls.addWidget(self.top_spin)
        controls.addWidget(self.cutoff)
        self.filter_bar = FilterBar()
        self.filter_bar.changed.connect(self._filter_changed)
        self.filter_bar.message.connect(self.message)
        self.welcome = WelcomePanel()
        self.welcome.addFolder.connect(self.choose_folder)
        self.welcome.tryDemo.connect(self.try_demo)
        self.viewer = PhotoViewer(self.thumb_runner)
        self.viewer.closed.connect(self.close_viewer)
        self.viewer.currentChanged.connect(self._viewer_moved)
        self.viewer.regionSearch.connect(self.search_region)
        self.viewer.openExternally.connect(lambda path: self.open_photo(path=path))
        self.pages = QStackedWidget()
        for w in (self.results, self.welcome, self.viewer):  # GRID, WELCOME, VIEWER
            self.pages.addWidget(w)
        middle = QWidget()
        ml = QVBoxLayout(middle)
        ml.addLayout(head)
        ml.addLayout(controls)
        ml.addWidget(self.filter_bar)
        ml.addWidget(self.pages, 1)

        self.detail = DetailPanel(self.runner)
        self.detail.searchWithImage.connect(self.search_image_file)
        self.detail.regionSearch.connect(self.search_region)
        self.detail.message.connect(self.message)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, middle, self.detail):
            self.splitter.addWidget(w)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 3)
        self.splitter.setSizes([420, 560, 380])
        self.splitter.setChildrenCollapsible(False)
        self.detail.setMinimumWidth(280)  # its content scrolls; the other panes keep their layouts' minimum
        # nothing is cut off down to MIN_USABLE; a smaller window scrolls instead of clipping
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setWidget(self.splitter)
        self.splitter.setMinimumSize(MIN_USABLE.width(), MIN_USABLE.height() - 120)  # less the menu and status bars
        self.setCentralWidget(self.scroll)

        sb = self.statusBar()
        self.message_label = ElidedLabel()  # messages: elided to the room they have, whole in the tooltip
        sb.addWidget(self.message_label, 1)
        self.collection_label = ElidedLabel()  # the collection's name and counts (its path in the tooltip)
        self.collection_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.collection_label.setMinimumWidth(220)
        self.collection_label.setMaximumWidth(360)
        self.time_label = QLabel()
        self.progress = QProgressBar(maximumWidth=220, textVisible=True)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.setVisible(False)
        self.loading_label = QLabel()
        self.loading_label.setVisible(False)
        sb.addPermanentWidget(self.loading_label)
        sb.addPermanentWidget(self.progress_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.time_label)
        sb.addPermanentWidget(self.collection_label)

    def _tool_button(self, name: str, tip: str, shortcut: str | None = None, *, checkable: bool = False):
        b = QToolButton()
        b.setIcon(icon(name))
        b.setIconSize(QSize(22, 22))
        b.setToolTip(tip)
        b.setCheckable(checkable)
        b.setAutoRaise(True)
        if shortcut:
            b.setShortcut(QKeySequence(shortcut))
        return b

    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None) -> QAction:
        a = QAction(text, self)
        if icon_name:
            a.setIcon(icon(icon_name))
        if shortcut is not None:
            a.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        m = self.menuBar()
        f = m.addMenu("&File")
        self.index_action = self._action("&Index a Photo Folder…", self.choose_folder, "Ctrl+O", "folder")
        self.index_action.setToolTip("Index a folder into a collection of its own, or add it to the open one "
                                     "(asked before the run)")
        f.addAction(self.index_action)
        self.add_action = self._action("&Add a Folder to the Open Collection…", self.choose_folder_to_add)
        f.addAction(self.add_action)
        f.addSeparator()
        f.addAction(self._action("Open an &Existing Index…", self.choose_index, "Ctrl+Shift+O"))
        f.addAction(self._action("Open a S&harded Collection…", self.choose_manifest))
        self.recent_menu = f.addMenu("&Recent Collections")
        f.addSeparator()
        f.addAction(self._action("Open a &Sketch…", self.choose_sketch, None, "sketch"))
        f.addAction(self._action("Search by I&mage…", self.choose_image, "Ctrl+I", "image"))
        f.addAction(self._action("Sa&ve the Sketch As…", self.save_sketch, "Ctrl+S", "save"))
        f.addAction(self._action("Save the Res&ults…", lambda: self.save_results(), "Ctrl+Shift+S"))
        f.addAction(self._action("E&xport the Selected Photos…", lambda: self.export_selection(), "Ctrl+E"))
        f.addSeparator()
        self.skipped_action = self._action("Show S&kipped Files…", self.show_skipped)
        f.addAction(self.skipped_action)
        f.addSeparator()
        f.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))
        e = m.addMenu("&Edit")
        undo = self.canvas.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence("Ctrl+Z"))
        redo = self.canvas.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        undo.setIcon(icon("undo"))
        redo.setIcon(icon("redo"))
        e.addAction(undo)
        e.addAction(redo)
        e.addAction(self._action("&Clear the Sketch", self.canvas.clear, "Ctrl+Backspace", "clear"))
        e.addSeparator()
        e.addAction(self._action("&Paste an Image to Search", self.paste_image, QKeySequence.StandardKey.Paste))
        e.addSeparator()
        copy = QAction("C&opy the Selected Photos' Paths", self)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)  # the grid's own Ctrl+C; the menu says it
        copy.triggered.connect(self.results.copy_selection)
        e.addAction(copy)
        s = m.addMenu("&Search")
        s.addAction(self._action("Search &Now", self.search_now, ["Return", "Enter"], "search"))
        s.addAction(self._action("&Back to the Sketch", self._escape, "Escape"))
        s.addAction(self._action("&View the Photo Large", lambda: self.view_photo(), "Ctrl+Return"))
        s.addSeparator()
        s.addAction(self._action("&Filter by Folder…", self.filter_bar.choose_folder))
        s.addAction(self._action("Filter by &Date…", self.filter_bar.choose_dates))
        s.addAction(self._action("Filter by &Size…", self.filter_bar.choose_min_side))
        s.addAction(self._action("&Clear the Filters", self.filter_bar.clear))
        h = m.addMenu("&Help")
        h.addAction(self._action("&About sketchsearch", self.about))

    # -- collection -------------------------------------------------------------------------------
    def open_index(self, db: str | os.PathLike, *, quiet: bool = False) -> bool:
        """Open a collection (an index folder or a sharded collection's manifest); on failure say why in a
        dialog (``quiet``: only the status bar) and keep the open one.  Starts loading the search models in
        the background the first time."""
        import logging
        import sqlite3
        import traceback

        from engine.errors import SketchSearchError
        from engine.shards import open_collection

        from .messages import damage_words, error_words

        try:
            index = open_collection(db)  # an index folder, or a sharded collection's manifest
        except (SketchSearchError, OSError, sqlite3.Error) as e:
            (self.message if quiet else self.error)(error_words(e))
            return False
        except Exception as e:  # a damaged collection must not take the app down
            logging.getLogger(__name__).error("opening %s failed:\n%s", db, traceback.format_exc())
            (self.message if quiet else self.error)(f"{db}: cannot be opened ({type(e).__name__}: {e})")
            return False
        changed = self.db is None or Path(db) != self.db
        self.index, self.db = index, Path(db)
        if (damage := damage_words(index)) is not None:
            (self.message if quiet else self.error)(damage)
        self.settings.setValue("collection/db", str(self.db))
        self._add_recent(self.db)
        self._update_status()
        if changed or self._warming is None:
            self._warm_up()
        return True

    # -- start-up: load the search models while the person draws ---------------------------------------
    def _open_at_start(self, db: str | os.PathLike) -> None:
        """Open the collection and load the search models in a pool thread (the engine's imports and the
        networks take a second or more; torch only on the very first launch, before the network's weights
        are cached for numpy, see ``engine.npnet``), so the window is there at once; a search asked for
        meanwhile runs when they are loaded."""
        task = Task(open_and_warm, str(db))
        self._warming = task
        self.db = Path(db)
        self.settings.setValue("collection/db", str(self.db))
        self.loading_label.setText(f"Opening {collection_name(db)} and loading the search models…")
        self.loading_label.setVisible(True)

        def done(index, _s, t=task) -> None:
            if self._warming is not t:
                return
            self._warming = True
            self.loading_label.setVisible(False)
            self.index = index
            self.settings.setValue("collection/db", str(self.db))
            self._add_recent(self.db)
            self._update_status()
            from .messages import damage_words

            if (damage := damage_words(index)) is not None:
                self.error(damage)
            self.search_now()  # the query asked for meanwhile, or with none the collection, newest first

        def failed(message: str, t=task) -> None:
            if self._warming is not t:
                return
            self._warming, self.db = None, None
            self.settings.remove("collection/db")
            self.loading_label.setVisible(False)
            self._update_status()
            self.error(message)

        self.runner.start(task, on_done=done, on_error=failed)

    def _warm_up(self) -> None:
        """Load the networks and the collection's arrays in the background with a tiny search, so the
        first real search does not pay for them; searches asked for meanwhile run when it is done."""
        if self.index is None:
            return
        task = Task(warm, self.index)
        self._warming = task
        self.loading_label.setText("Loading the search models…")
        self.loading_label.setVisible(True)

        def done(*_a, t=task) -> None:
            if self._warming is t:
                self._warming = True  # loaded
                self.loading_label.setVisible(False)
                if self._search_pending:
                    self.search_now()

        self.runner.start(task, on_done=done, on_error=done)

    @property
    def warming_up(self) -> bool:
        """True while the start-up loading of the search models runs."""
        return isinstance(self._warming, Task)

    # -- recent collections --------------------------------------------------------------------------
    def recent_collections(self) -> list[Path]:
        value = self.settings.value("collection/recent") or []
        if isinstance(value, str):
            value = [value]
        return [Path(str(v)) for v in value]

    def _add_recent(self, db: Path) -> None:
        recent = [db] + [p for p in self.recent_collections() if p != db]
        self.settings.setValue("collection/recent", [str(p) for p in recent[:RECENT]])
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        recent = self.recent_collections()
        for i, db in enumerate(recent):
            a = menu.addAction(f"&{i + 1} {collection_name(db)}")
            a.setToolTip(str(db))
            a.setStatusTip(str(db))
            a.setCheckable(True)
            a.setChecked(db == self.db)
            a.setEnabled(is_collection(db))
            a.triggered.connect(lambda _on=False, db=db: self.switch_collection(db))
        if not recent:
            menu.addAction("No collections yet").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear the List", self._clear_recent)
        menu.setToolTipsVisible(True)

    def _clear_recent(self) -> None:
        self.settings.setValue("collection/recent", [str(self.db)] if self.db else [])
        self._update_recent_menu()

    def switch_collection(self, db: str | os.PathLike) -> bool:
        """Open another collection (File > Recent Collections) and search it with the current query."""
        if self._indexing is not None:
            self.error("An indexing run is going; wait for it or cancel it before switching collections")
            return False
        if self.open_index(db):
            self.message(f"Opened {collection_name(db)} ({len(self.index):,} photos)")
            self.search_now()
            return True
        return False

    # -- indexing ----------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Index a photo folder",
                                                  str(self.settings.value("collection/folder", str(Path.home()))))
        if folder:
            self.index_folder(folder)

    def choose_folder_to_add(self) -> None:
        if self.db is None:
            self.error("Open a collection first, or index a folder into a collection of its own")
            return
        folder = QFileDialog.getExistingDirectory(self, f"Add a folder to {collection_name(self.db)}",
                                                  str(self.settings.value("collection/folder", str(Path.home()))))
        if folder:
            self.index_folder(folder, self.db)

    def own_collection(self, folder: str | os.PathLike) -> Path:
        """The collection of its own that a folder's photos go to unless the person chooses otherwise."""
        return default_db_for(folder, self.collections_root)

    def ask_index_target(self, folder: Path) -> Path | None:
        """Ask which collection a folder's photos go to (None: cancelled)."""
        own = self.own_collection(folder)
        dlg = IndexTargetDialog(folder, own, _count(own), self.db, len(self.index) if self.index is not None
                                else None, self, open_holds=self._open_collection_holds(folder))
        self.index_target_dialog = dlg
        return dlg.target() if dlg.exec() == QDialog.DialogCode.Accepted else None

    def _open_collection_holds(self, folder: Path) -> bool:
        """Whether the open collection was indexed from ``folder`` or a folder above it."""
        import sqlite3

        from engine.errors import SketchSearchError

        if self.index is None:
            return False
        try:
            indexed = self.index.folders()
        except (SketchSearchError, OSError, sqlite3.Error):  # a damaged catalog: the dialog's usual default
            return False
        return inside(str(folder), indexed) is not None

    def choose_index(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an index folder (made by sketchsearch index)")
        if not folder:
            return
        own = self.own_collection(folder)
        if not is_collection(folder) and own != Path(folder) and is_collection(own):
            # a photo folder the app indexed before: its collection is what was meant
            if self.open_index(own):
                self.message(f"{Path(folder).name} is a photo folder: opened its collection {collection_name(own)}",
                             10000)
                self.search_now()
            return
        if self.open_index(folder):
            self.search_now()

    def choose_manifest(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a sharded collection (its manifest, made by sketchsearch "
                                                    "index --shards N)", "", "Manifests (*.json)")
        if path and self.open_index(path):
            self.search_now()

    def index_folder(self, folder: str | os.PathLike, db: str | os.PathLike | None = None, *,
                     prune: bool = False) -> bool:
        """Index (or update the index of) a folder in the background; searches see photos as they come.

        ``db``: the collection to write; None asks (:meth:`ask_index_target`: a collection of the folder's
        own by default, the open collection only when chosen).  ``prune``: also drop the collection's photos under
        the folder whose files no longer exist.  Returns whether a run started."""
        from engine.indexer import index_folders
        from engine.shards import index_sharded, is_manifest

        if self._indexing is not None:
            self.error("An indexing run is already going; cancel it first")
            return False
        folder = Path(folder)
        if db is None:
            db = self.ask_index_target(folder)
            if db is None:
                return False
        db = Path(db)
        self.settings.setValue("collection/folder", str(folder))
        self._before_indexing = self.db  # shown again if this run fails before it makes a collection
        if db != self.db:  # the collection written is the one shown: results come from it as it grows
            if self.warming_up:  # a collection still being opened is not shown: its result is dropped
                self._warming, self._search_pending = None, False
                self.loading_label.setVisible(False)
            self.index, self.db = None, db
            self.model.set_hits([])
            self.detail.show_hit(None)
            self.count_label.setText("No results yet: the collection is being indexed")
            if is_collection(db):
                self.open_index(db, quiet=True)
        self.settings.setValue("collection/db", str(db))
        self._add_recent(db)
        # a sharded collection is indexed shard after shard here, its progress summed over the shards
        task = Task(index_sharded if is_manifest(db) else index_folders, [str(folder)], str(db),
                    workers=self.index_workers, prune=prune).with_control()
        self._indexing = task
        self._index_started = time.monotonic()
        self._index_first, self._index_name, self._index_run = None, folder.name, (folder, db)
        self._last_refresh = time.monotonic()
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.setVisible(True)
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.index_action.setEnabled(False)
        self.add_action.setEnabled(False)
        self.recent_menu.setEnabled(False)
        self.progress_label.setText(f"Indexing {folder.name} into {collection_name(db)}…")
        self.message(f"Indexing {folder} into {db}")
        self._update_status()
        self.runner.start(task, on_done=self._indexing_done, on_error=self._indexing_failed,
                          on_progress=self._indexing_progress, on_cancelled=self._indexing_cancelled)
        return True

    def cancel_indexing(self) -> None:
        if self._indexing is not None:
            self._indexing.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling…")

    def _indexing_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        now = time.monotonic()
        if self._index_first is None:  # photos a cancelled run described count as done, not in the rate
            self._index_first = (done, now)
        first, since = self._index_first
        rate = (done - first) / (now - since) if now > since and done > first else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        self.progress.setFormat(f"{done:,} / {total:,}")
        self.progress_label.setText(f"{self._index_name}: {rate:.1f} photos/s · {_duration(eta)} left" if rate > 0
                                    else f"Indexing {self._index_name}…")
        if time.monotonic() - self._last_refresh > REFRESH_S and self.db is not None and is_collection(self.db):
            self._last_refresh = time.monotonic()
            if self.open_index(self.db, quiet=True):  # what is committed so far becomes searchable
                self._update_status()

    def _indexing_finished(self, state: str, message: str) -> None:
        self._indexing = None
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.setVisible(False)
        self.index_action.setEnabled(True)
        self.recent_menu.setEnabled(True)
        if state == "failed" and self.db is not None and not is_collection(self.db):
            self._back_from_failed_indexing()
        if self.db is not None and is_collection(self.db):
            self.open_index(self.db, quiet=state == "failed")
        self.message(message, 15000)
        self._update_status()
        self.search_now()
        self.indexingFinished.emit(state)

    def _back_from_failed_indexing(self) -> None:
        """A run that failed before making its collection (a folder gone, a disk full): the collection shown
        before comes back, and the one never made is neither the collection opened next time nor a recent one."""
        failed = self.db
        recent = [p for p in self.recent_collections() if p != failed]
        self.settings.setValue("collection/recent", [str(p) for p in recent])
        back = self._before_indexing
        self.index, self.db = None, None
        if back is not None and back != failed and is_collection(back):
            self.db = back
            self.settings.setValue("collection/db", str(back))
        else:
            self.settings.remove("collection/db")
            self.count_label.setText("No collection: File → Index a Photo Folder")
        self._update_recent_menu()

    def _indexing_done(self, summary, seconds: float) -> None:
        skipped = f", {len(summary.skipped)} skipped (File → Show Skipped Files)" if summary.skipped else ""
        new = summary.described - summary.upgraded
        again = f", {summary.upgraded:,} described again for this version's boxes" if summary.upgraded else ""
        if summary.indexed == 0 and not summary.skipped:
            self._indexing_finished("done", f"No photos found in {self._index_name} (JPEG, PNG, WebP, TIFF, BMP "
                                            f"and GIF files, in it and its subfolders): the collection is empty")
            return
        removed, missing = getattr(summary, "removed", 0), getattr(summary, "missing", 0)
        def whose(k: int) -> str:
            return f"{k:,} whose {'file no longer exists' if k == 1 else 'files no longer exist'}"

        gone = f", {whose(removed)} removed" if removed else ""
        if missing:
            gone = f", {whose(missing)} kept"
        self._indexing_finished("done", f"Indexed {summary.indexed:,} photos ({new:,} new{again}{gone}) in "
                                        f"{_duration(seconds)}{skipped}")
        if missing:
            self._offer_to_remove_missing(missing)

    def _offer_to_remove_missing(self, missing: int) -> None:
        """Photos of the collection under the folder just indexed whose files are gone stay (a folder on a drive
        that is not mounted looks the same); the person is asked whether to remove them (found under Xvfb: a photo
        deleted or moved out stayed in the results, "file not found", and the app had no way to drop it)."""
        folder, db = self._index_run
        photos = "1 photo" if missing == 1 else f"{missing:,} photos"
        asked = QMessageBox.question(
            self, "Photos no longer there",
            f"{photos} of {collection_name(db)} under {folder} no longer {'exists' if missing == 1 else 'exist'} "
            f"on disk (deleted, moved or on a "
            f"drive that is not connected). Remove {'it' if missing == 1 else 'them'} from the collection?\n\n"
            f"No file is touched; indexing the folder again adds back any that return.")
        if asked == QMessageBox.StandardButton.Yes:
            self.index_folder(folder, db, prune=True)

    def _indexing_cancelled(self, message: str) -> None:
        self._indexing_finished("cancelled", message[:1].upper() + message[1:])

    def _indexing_failed(self, message: str) -> None:
        self._indexing_finished("failed", f"Indexing failed: {message}")
        self.error(f"Indexing failed: {message}")

    def show_skipped(self) -> None:
        rows = self.index.skipped if self.index is not None else []
        dlg = QDialog(self)
        dlg.setWindowTitle(f"Skipped files ({len(rows)})")
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["File", "Reason"])
        for i, (path, reason) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(path))
            table.setItem(i, 1, QTableWidgetItem(reason or ""))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(dlg.reject)
        lay = QVBoxLayout(dlg)
        lay.addWidget(QLabel("These files are not searchable:" if rows else "No file was skipped."))
        lay.addWidget(table)
        lay.addWidget(box)
        dlg.resize(760, 420)
        self.skipped_dialog = dlg
        dlg.open()

    # -- queries ----------------------------------------------------------------------------------
    def _sketch_changed(self) -> None:
        if self.query_kind == "sketch":
            self._debounce.start()

    def search_now(self) -> None:
        """Search with the current query now (the stale result of an earlier search is dropped)."""
        self._debounce.stop()
        self._top_debounce.stop()
        self._generation += 1
        gen = self._generation
        if self.warming_up:  # the models are loading: search as soon as they are there
            self._search_pending = True
            self.count_label.setText("Loading the search models…")
            return
        if self.index is None:
            self.message("Open a collection first: File → Index a Photo Folder", 8000)
            return
        self._search_pending = False
        filt = self.filter_bar.filter()
        filt = filt if filt.active else None
        finish = None
        if self.query_kind == "region" and self.query_region is not None:
            path, box, mode = self.query_region
            # a region searched anew opens its results at the first (found under Xvfb: the viewer stayed on the
            # region's own photo, 19th of the new results); the same region searched again keeps the place
            self._from_top = self.query_region != self._region_searched
            self._region_searched = self.query_region
            notes: list = []
            task = Task(self.index.search_region, path, box, mode=mode, top_k=self.top_k, filt=filt, notes=notes)
            kind = {"both": "region", "shape": "sketch", "image": "image"}[mode]
            self._shown_sketch = None
            finish = functools.partial(self._region_done, gen, kind, notes=notes)
        elif self.query_kind == "image" and self.query_image is not None:
            task = Task(self.index.search_image, self.query_image, top_k=self.top_k, filt=filt)
            kind = "image"
            self._shown_sketch = None
        else:
            if self.canvas.is_empty():  # no query: the collection itself, newest first
                self._sketch_entry = None
                self.history_strip.setCurrentRow(-1)  # no recent query is the one shown
                self._shown_sketch = None
                task = Task(self.index.browse, filt, limit=self.top_k)
                kind = "browse"
            else:
                sketch = self.canvas.to_image()
                self._shown_sketch = sketch  # remembered in the history once it is searched (not a dot, say)
                task = Task(self.index.search, sketch, top_k=self.top_k,
                            expand=EXPAND if self.expand_box.isChecked() else 0, filt=filt)
                kind = "sketch"
        if finish is None:
            finish = functools.partial(self._search_done, gen, kind)
        self._search_started = time.perf_counter()
        self.count_label.setText("Searching…" if kind != "browse" else "Listing the collection…")
        self.runner.start(task, on_done=finish,
                          on_error=lambda msg: self._search_failed(gen, msg))

    def _region_done(self, gen: int, kind: str, hits, seconds: float, *, notes: list) -> None:
        """A region's results; where "both" ranked by one of its two searches alone (a region without edges, a
        collection without image descriptors), they read as that one's and the status bar says why."""
        if gen == self._generation and notes:
            kind = "image" if notes[0].ranked_by == "image" else "sketch"
        self._search_done(gen, kind, hits, seconds)
        if gen == self._generation and notes:
            note = str(notes[0])
            self.message(note[:1].upper() + note[1:], 15000)

    def _search_done(self, gen: int, kind: str, hits, seconds: float) -> None:
        if gen != self._generation:
            return  # a newer search started meanwhile
        if kind == "sketch" and self._shown_sketch is not None:
            self._remember_sketch(self._shown_sketch)
        damage = getattr(self.index, "image_damage", None)  # a warning in a pool thread reaches no one: said here
        if damage is not None and damage != self._damage_said:
            self._damage_said = damage
            self.error(f"{damage}: searches rank by the shape alone until the collection's folder is indexed again "
                       f"(File → Index a Photo Folder)", dialog=False)
            self._update_status()  # and says so for as long as it lasts
        if self._failed_message and self.message_label.text() == self._failed_message:
            self.message_label.setText("")  # the last query's failure is not this one's
        self._failed_message = ""
        self.cutoff.set_kind(kind)
        self.model.set_hits(hits, kind, query_path=self.query_path if self.query_kind != "sketch" else None)
        n = self.model.rowCount()
        text = self.model.summary()
        if kind == "browse":
            total = len(self.index) if self.index is not None else n
            text = (f"{text} of {total:,}" if n < total else text) + " · draw a shape to search"
        filt = self.filter_bar.filter()
        if filt.active:
            text += " · filtered"
        self.count_label.setText(text)
        if n:
            self.results.set_empty_text("")
        elif filt.active:
            self.results.set_empty_text("No photo matches the filters. Remove one (✕ above the grid) to see "
                                        "more.")
        elif kind == "browse":
            self.results.set_empty_text("This collection has no photos yet: File → Index a Photo Folder.")
        else:
            self.results.set_empty_text("No results.")
        first = 0  # the result selected: the first, or the one the viewer stays on
        from_top, self._from_top = self._from_top, False
        if self.pages.currentIndex() == VIEWER:
            shown = None if from_top else self.viewer.current_hit()
            rows = [i for i, h in enumerate(self.model.hits) if shown is not None and h.path == shown.path]
            if from_top and n:
                rows = [0]
            if rows:  # e.g. the collection refreshed while indexing: stay on the photo
                first = rows[0]
                self.viewer.set_results(self.model.hits, first, kind=self.model.kind, sketch=self._shown_sketch,
                                        query_path=self.query_path if self.query_kind != "sketch" else None)
            else:
                self.close_viewer()
        self.time_label.setText(f"{'listed in' if kind == 'browse' else 'search'} {1000 * seconds:.0f} ms")
        self.detail.show_hit(None)
        if n:
            # cleared first: where the view kept that row current through the model's reset, setting it again
            # signals no change, and the detail panel would stay empty beside a highlighted result
            self.results.selectionModel().clearCurrentIndex()
            self.results.setCurrentIndex(self.model.index(first))
            if first == 0:  # a new list from its top, its first heading whole (it kept the last list's place)
                self.results.verticalScrollBar().setValue(0)
        self._trim_later()
        self.searchFinished.emit(n)

    def _search_failed(self, gen: int, message: str) -> None:
        if gen == self._generation:
            # the grid says so too: the previous query's results under "No results" read as this query's
            self.model.set_hits([], self.model.kind)
            self.detail.show_hit(None)
            if self.pages.currentIndex() == VIEWER:
                self.close_viewer()
            self.results.set_empty_text(f"No results: {message}")
            self.count_label.setText("No results")
            self.time_label.setText("")  # the last search's time is not this one's
            self.error(message, dialog=False)
            self._failed_message = self.message_label.text()
            self._trim_later()
            self.searchFinished.emit(0)

    def search_image_file(self, path: str) -> None:
        """Search by an image file (drop, File menu, "Search with this photo")."""
        from engine.imageio import ImageError, load_image

        try:
            pixels = load_image(path, max_side=1024).pixels
        except ImageError as e:
            self.error(str(e), dialog=False)
            return
        self._set_image_query(pixels, os.path.basename(path), path=str(Path(path).resolve()))

    def _set_image_query(self, pixels: np.ndarray, name: str, *, path: str | None = None,
                         remember: bool = True) -> None:
        self.query_kind, self.query_image, self.query_path = "image", pixels, path
        self.query_region = None
        self._show_query_image(pixels, name, "Searching by this image:")
        if remember:
            self._remember(lambda: self.history.add_image(path, pixels, collection=self.db))
        self.search_now()

    def _show_query_image(self, pixels: np.ndarray, name: str, label: str) -> None:
        self._sketch_entry = None
        self.query_view.set_image(qimage_from_pixels(pixels))
        self.query_view.setToolTip(name)
        self.query_label.setText(label)
        self.region_mode.setVisible(self.query_kind == "region")
        self.query_stack.setCurrentIndex(1)
        self.tools.setEnabled(False)
        self.expand_box.setEnabled(False)  # a sketch option

    def search_region(self, path: str, box, mode: str = "both", *, remember: bool = True) -> None:
        """Search with a region of a photo (``box`` in its original pixels) by its shape, its image or both
        (the viewer's and the detail panel's "Search with this region")."""
        from engine.region import region_pixels

        self._region_token = token = object()  # the latest region asked for wins
        self.count_label.setText("Reading the region…")

        def done(crop, _s) -> None:
            if self._region_token is token:
                self._set_region_query(path, box, mode, crop, remember=remember)

        def failed(message: str) -> None:
            if self._region_token is token:
                self.count_label.setText(self.model.summary())
                self.error(message, dialog=False)

        self.runner.start(Task(region_pixels, path, box, min_side=256), on_done=done, on_error=failed)

    def _set_region_query(self, path: str, box, mode: str, crop: np.ndarray, *, remember: bool) -> None:
        self.query_kind, self.query_image, self.query_path = "region", None, str(Path(path).resolve())
        self._region_crop = crop
        self.query_region = (self.query_path, tuple(float(v) for v in box), mode)
        self.region_mode.blockSignals(True)
        self.region_mode.setCurrentIndex(max(0, self.region_mode.findData(mode)))
        self.region_mode.blockSignals(False)
        self._show_query_image(crop, f"{os.path.basename(path)}, region {', '.join(f'{v:.0f}' for v in box)}",
                               f"Searching by a region of {os.path.basename(path)}:")
        if remember:
            self._remember(lambda: self.history.add_region(self.query_path, box, mode, crop, collection=self.db))
        self.search_now()

    def _region_mode_changed(self, _i: int) -> None:
        if self.query_kind == "region" and self.query_region is not None:
            path, box, _ = self.query_region
            self._set_region_query(path, box, self.region_mode.currentData(), self._region_crop, remember=True)

    def _escape(self) -> None:
        """Escape: out of the viewer, else back to the sketch."""
        if self.pages.currentIndex() == VIEWER:
            self.close_viewer()
        else:
            self.back_to_sketch()

    def back_to_sketch(self) -> None:
        if self.pages.currentIndex() == VIEWER:
            self.close_viewer()
        if self.query_kind != "sketch":
            self.query_kind, self.query_image, self.query_path, self.query_region = "sketch", None, None, None
            self.region_mode.setVisible(False)
            self.query_stack.setCurrentIndex(0)
            self.tools.setEnabled(True)
            self.expand_box.setEnabled(True)
            self.search_now()

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Search by image", "", IMAGE_FILTER)
        if path:
            self.search_image_file(path)

    def choose_sketch(self) -> None:
        from engine.imageio import ImageError

        path, _ = QFileDialog.getOpenFileName(self, "Open a sketch", "", IMAGE_FILTER)
        if path:
            self.back_to_sketch()
            try:
                self.canvas.load_image(path)
            except (ImageError, OSError, ValueError) as e:
                self.error(str(e))
                return
            self._sketch_entry = None  # another drawing: the last one's history entry stays

    def save_sketch(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the sketch", "sketch.png", "PNG (*.png)")
        path = self._typed_suffix(path, ".png", "Save the sketch") if path else None
        if path:
            try:
                self.canvas.save_png(path)
            except OSError as e:
                self.error(str(e))

    def _typed_suffix(self, path: str, suffix: str, title: str, kept: tuple[str, ...] = ()) -> str | None:
        """A file name typed in a save dialog without ``suffix`` (or one of ``kept``), with it ("my.sketch" ->
        "my.sketch.png"); where that file exists, asked before it is replaced (the dialog asked of the name
        without it).  None: not to be written."""
        if Path(path).suffix.lower() in (suffix, *kept):
            return path
        path += suffix
        if os.path.exists(path) and QMessageBox.question(
                self, title, f"{os.path.basename(path)} exists. Replace it?") != QMessageBox.StandardButton.Yes:
            return None
        return path

    def paste_image(self) -> None:
        cb = QGuiApplication.clipboard()
        md = cb.mimeData()
        if md is not None and md.hasUrls():
            paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            if paths:
                self.search_image_file(paths[0])
                return
        img = cb.image()
        if img.isNull():
            self.message("The clipboard holds no image", 5000)
            return
        self._set_image_query(_pixels(img), "pasted image")

    # -- drag and drop ----------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        md = event.mimeData()
        if (md.hasUrls() and any(u.isLocalFile() for u in md.urls())) or md.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        md = event.mimeData()
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()] if md.hasUrls() else []
        if paths:
            if os.path.isdir(paths[0]):
                self.index_folder(paths[0])
            else:
                self.search_image_file(paths[0])
            event.acceptProposedAction()
        elif md.hasImage():
            self._set_image_query(_pixels(QImage(md.imageData())), "dropped image")
            event.acceptProposedAction()

    # -- history -----------------------------------------------------------------------------------
    def _remember(self, add) -> None:
        """Record a query in the history (``add()`` adds it); a history that cannot be written is said once in
        the status bar, never in the way of the search."""
        try:
            entry = add()
        except (OSError, ValueError) as e:
            self.message(f"The search history could not be saved: {e}", 5000)
            return None
        self.history_strip.refresh()
        return entry

    def _remember_sketch(self, sketch: np.ndarray) -> None:
        """Record the sketch being drawn: one entry per drawing, replaced as strokes are added (cleared, or another
        query, starts the next)."""
        previous = self._sketch_entry
        known = {id(e) for e in self.history.entries}

        def add():
            entry = self.history.add_sketch(sketch, collection=self.db)
            if previous is not None and previous is not entry:
                self.history.remove(previous)
            return entry

        entry = self._remember(add)
        if entry is not None:  # an entry this drawing made (not an earlier sketch asked for again) is replaced
            self._sketch_entry = entry if id(entry) not in known else None

    def rerun(self, entry) -> None:
        """Run a query of the history again (the strip's click)."""
        if entry.kind == "sketch":
            self.back_to_sketch()
            try:
                self.canvas.set_sketch(self.history.sketch_pixels(entry))
            except (OSError, ValueError) as e:
                self.error(f"That sketch cannot be read back: {e}", dialog=False)
                return
            self._sketch_entry = None  # the recalled entry stays; strokes added make a new one
            self.search_now()
        elif entry.kind == "image" and entry.path:
            self.search_image_file(entry.path)
        elif entry.kind == "image":
            try:
                pixels = self.history.image_pixels(entry)
            except (OSError, ValueError) as e:
                self.error(f"That image cannot be read back: {e}", dialog=False)
                return
            self._set_image_query(pixels, "pasted image", remember=False)
        elif entry.kind == "region":
            self.search_region(entry.path, entry.box, entry.mode)

    # -- the viewer and what to do with results ------------------------------------------------------
    def view_photo(self, hit=None) -> None:
        """Show a result large in the middle pane (double click, Space); Escape goes back to the grid."""
        hits = self.model.hits
        if hit is None:
            hit = self.detail.hit
        if hit is None or hit not in hits:
            return
        self.viewer.set_results(hits, hits.index(hit), kind=self.model.kind, sketch=self._shown_sketch,
                                query_path=self.query_path if self.query_kind != "sketch" else None)
        self.pages.setCurrentIndex(VIEWER)
        self.viewer.setFocus()

    def close_viewer(self) -> None:
        row = self.viewer.current_row
        self._update_pages()
        if 0 <= row < self.model.rowCount():
            self.results.setCurrentIndex(self.model.index(row))
            self.results.scrollTo(self.model.index(row))
        self.results.setFocus()

    def _viewer_moved(self, row: int) -> None:
        if 0 <= row < self.model.rowCount() and self.results.currentIndex().row() != row:
            self.results.setCurrentIndex(self.model.index(row))

    def _update_pages(self) -> None:
        """The middle pane: the welcome panel with no collection, else the grid (the viewer only on demand)."""
        self.pages.setCurrentIndex(WELCOME if self.db is None and self.index is None else GRID)

    def _result_menu(self, pos, hits) -> None:
        self._menu = result_menu(self, hits, self.result_actions, can_save=bool(self.model.hits))
        self._menu.popup(pos)

    def _paths_copied(self, paths: list) -> None:
        self.message(f"Copied the path{'s' if len(paths) != 1 else ''} of {len(paths)} photo"
                     f"{'s' if len(paths) != 1 else ''} (paste them as text, or as files in a file manager)", 5000)

    def export_selection(self, paths: list | None = None) -> None:
        """Copy (or link) the selected photos into a folder, never overwriting a file there."""
        paths = paths or self.results.selected_paths()
        if not paths:
            self.message("Select the photos to export first", 5000)
            return
        got = ask_export(self, paths, folder=str(self.settings.value("export/folder", "")),
                         mode=str(self.settings.value("export/mode", "copy")))
        if got is None:
            return
        folder, mode = got
        self.settings.setValue("export/folder", str(folder))
        self.settings.setValue("export/mode", mode)
        self.message(f"Exporting {len(paths)} photo{'s' if len(paths) != 1 else ''} to {folder}…", 60_000)

        def done(report, _s) -> None:  # copies of large photos take a while: off the UI thread
            if report.failed:
                self.error(report.summary() + "\n" + "\n".join(report.lines()))
            else:
                self.message(report.summary(), 8000)
            self.exportFinished.emit(report)

        self.runner.start(Task(export_photos, paths, folder, mode=mode), on_done=done,
                          on_error=lambda msg: self.error(f"Export failed: {msg}"))

    def save_results(self, path: str | None = None) -> bool:
        """Write the results shown as JSON (the command line's fields, plus the query) or CSV."""
        if not self.model.hits:
            self.message("There are no results to save", 5000)
            return False
        if path is None:
            path, chosen = QFileDialog.getSaveFileName(self, "Save the results", "results.json",
                                                       "JSON (*.json);;CSV (*.csv)")
            # a name typed without its suffix: the type chosen in the dialog
            path = path and self._typed_suffix(path, ".csv" if chosen.startswith("CSV") else ".json",
                                               "Save the results", kept=(".csv", ".json"))
            if not path:
                return False
        query: dict = {"kind": self.query_kind, "collection": str(self.db) if self.db else None, "top": self.top_k}
        if self.query_kind == "image":
            query["image"] = self.query_path
        elif self.query_kind == "region" and self.query_region:
            query.update(image=self.query_region[0], region=list(self.query_region[1]), mode=self.query_region[2])
        filt = self.filter_bar.filter()
        if filt.active:
            query["filter"] = {k: v for k, v in vars(filt).items() if v is not None}
        sketch = None
        if self.model.kind == "sketch" and self._shown_sketch is not None and Path(path).suffix.lower() == ".json":
            # the sketch searched, beside the results (found under Xvfb: the JSON named the query but not it)
            sketch = Path(path).with_suffix(".sketch.png")
            query["sketch"] = str(sketch)
        try:
            if sketch is not None:
                from PIL import Image

                from engine.atomic import atomic_write

                drawn = Image.fromarray(np.asarray(self._shown_sketch, np.uint8))
                atomic_write(sketch, lambda tmp: drawn.save(tmp, format="PNG"))
            save_results(path, self.model.hits, query=query, kind=self.model.kind)
        except (OSError, ValueError) as e:
            self.error(str(e))
            return False
        also = f" (the sketch in {sketch.name})" if sketch is not None else ""
        self.message(f"Saved {len(self.model.hits)} results to {path}{also}", 8000)
        return True

    def _filter_changed(self, _filt) -> None:
        self.search_now()

    def try_demo(self) -> None:
        """Index the bundled demo photos into their own collection and open it (the welcome panel)."""
        from engine.demo import DEMO

        root = Path(self.collections_root) if self.collections_root else collections_folder()
        self.index_folder(DEMO / "photos", root / "Demo photos")

    # -- selection, status, settings --------------------------------------------------------------
    def _current_changed(self, current, _previous) -> None:
        hit = current.data(HitRole) if current is not None and current.isValid() else None
        kind = self.model.kind
        self.detail.show_hit(hit, kind=kind, sketch=self._shown_sketch,
                             query_path=self.query_path if self.query_kind != "sketch" else None)
        # the polar plot's query: the sketch, or the query photo or region as an image; none when browsing
        if kind == "sketch" and self._shown_sketch is not None:
            query, curve_kind = self._shown_sketch, "sketch"
        elif self.query_kind == "region":
            query, curve_kind = self._region_crop, "image"
        elif kind == "image":
            query, curve_kind = self.query_image, "image"
        else:
            query, curve_kind = None, None
        self._trim_later()
        if hit is None or query is None or self.index is None:
            return
        from engine.rotsearch import curve_for_hit

        def show(curve, _s, hit=hit) -> None:
            if self.detail.hit is hit:  # still the selected result
                self.detail.rotation.set_curve(curve)

        def failed(msg: str, hit=hit) -> None:
            self.message(f"rotation curve: {msg}", 5000)
            if self.detail.hit is hit:  # not "computing…" for ever
                self.detail.rotation.unavailable()

        self.runner.start(Task(curve_for_hit, self.index, query, hit, kind=curve_kind), on_done=show,
                          on_error=failed)

    def _trim_later(self) -> None:
        """Trim the heap once the person pauses (:data:`TRIM_IDLE_MS`; further activity starts it over)."""
        self._trim_timer.start(TRIM_IDLE_MS)

    def _trim(self) -> None:
        """Give the memory freed since the last pause back to the system (glibc keeps it in its arenas)."""
        if trim_heap():
            self.trims += 1

    def open_photo(self, hit=None, *, path: str | None = None) -> bool:
        """Open a result's photo in the desktop's default viewer (the selected one by default; Enter, the context
        menu); says so in the window when the desktop has no application for it."""
        hit = hit if hit is not None else self.detail.hit
        path = path or (hit.path if hit is not None else None)
        if path is None:
            return False
        problem = open_externally(path)
        if problem is None:
            self.message(f"Opened {os.path.basename(path)} in the default viewer", 5000)
            return True
        QGuiApplication.clipboard().setText(path)
        # one line in the status bar, no dialog to dismiss (Space opens the photo large in the app)
        self.error(f"{problem}: its path is copied to the clipboard (Space shows it large here)", dialog=False)
        return False

    def _top_changed(self, value: int) -> None:
        self.top_k = value
        self._top_debounce.start()  # typing "120" searches once, not for 1, 12 and 120

    def _expand_toggled(self, on: bool) -> None:
        """Search again; said why the numbers change (found under Xvfb: 27 likely matches at 94-96 % became none
        at 8 % on unticking, with no word: each is a calibrated score, of different evidence)."""
        if self.query_kind == "sketch" and not self.canvas.is_empty():
            self.message("Similar photos included: the scores weigh the photos that look like the best hits too" if on
                         else "Similar photos not included: the scores come from the drawing alone, and a photo's "
                              "match is often lower than with them", 10000)
        self.search_now()

    def _cutoff_changed(self, value: float) -> None:
        shown = self.detail.hit
        self.model.set_min_score(value)
        self.count_label.setText(self.model.summary())
        # the result shown stays selected where the cut keeps it (found under Xvfb: the grid lost its selection
        # while the detail panel still showed the photo); where the cut drops it, the first result is shown
        rows = [i for i, h in enumerate(self.model.hits) if h is shown]
        if rows or self.model.rowCount():
            self.results.setCurrentIndex(self.model.index(rows[0] if rows else 0))
        else:
            self.detail.show_hit(None)

    def _update_status(self) -> None:
        if self.index is None:
            self.collection_label.setText(f"{collection_name(self.db)} (not indexed yet)" if self.db
                                          else "No collection")
        else:
            n_skip = self.index.n_skipped
            damaged = getattr(self.index, "image_damage", None) is not None  # until its folder is indexed again
            self.collection_label.setText(f"{collection_name(self.db)} · {len(self.index):,} photos"
                                          + (f" · {n_skip} skipped" if n_skip else "")
                                          + (" · searched by shape alone (image part damaged)" if damaged else ""))
        self.collection_label.setToolTip(str(self.db) if self.db else "")
        self.skipped_action.setEnabled(self.index is not None)
        self.add_action.setEnabled(self.db is not None and self._indexing is None)
        title = f"{collection_name(self.db)} — sketchsearch" if self.db else "sketchsearch"
        self.setWindowTitle(title)
        if self.pages.currentIndex() != VIEWER:
            self._update_pages()
        self._update_roots()

    def _update_roots(self) -> None:
        """The folder filter's choices: the open collection's indexed folders (read in the background)."""
        index = self.index
        if index is None or getattr(self, "_roots_of", None) is index:
            return
        self._roots_of = index
        if getattr(self, "_roots_db", None) != self.db:  # another collection: a folder of the last one means nothing
            self._roots_db = self.db
            if self.filter_bar.filter().under is not None:
                self.filter_bar.remove("under")

        def done(folders, _s) -> None:
            if self.index is index:
                self.filter_bar.set_roots(folders)

        self.runner.start(Task(index.folders), on_done=done, on_error=lambda _m: None)

    def message(self, text: str, timeout_ms: int = 10_000) -> None:
        """A message in the status bar (elided to its room; whole in the tooltip) for ``timeout_ms``."""
        self.message_label.setText(text)
        self._message_timer.start(timeout_ms)

    def error(self, message: str, *, dialog: bool = True) -> None:
        self.message(message, 15000)
        if dialog:  # window-modal and non-blocking: the app (and its background work) goes on
            box = QMessageBox(QMessageBox.Icon.Warning, "sketchsearch", message, QMessageBox.StandardButton.Ok,
                              self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.last_error_box = box
            box.open()

    def about(self) -> None:
        QMessageBox.about(self, "About sketchsearch", about_text(app_version()))

    def _restore_state(self) -> None:
        try:
            self.results.set_thumb_size(int(self.settings.value("results/thumb", self.results.thumb_size())))
        except (TypeError, ValueError):
            pass
        geo = self.settings.value("window/geometry")
        if isinstance(geo, QByteArray | bytes):
            self.restoreGeometry(geo)
        split = self.settings.value("window/splitter")
        if isinstance(split, QByteArray | bytes):
            self.splitter.restoreState(split)
        try:  # the pen as it was left
            self.width_slider.setValue(int(self.settings.value("canvas/pen_width", self.width_slider.value())))
        except (TypeError, ValueError):
            pass

    def closeEvent(self, event) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.setValue("canvas/pen_width", self.width_slider.value())
        self.cancel_indexing()
        self.runner.cancel_all()
        self.hide()  # gone at once: a task under way (a rotation curve, a decode) can take a second or two to end
        self.runner.wait(60_000)
        self.thumb_runner.wait(10_000)
        self._trim_timer.stop()
        super().closeEvent(event)


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ScoreCut(QDoubleSpinBox):
    """The cut on the results' score (0-1), read in the units the results show (``set_kind``): "match ≥ 50%"
    beside sketch hits that read "match 54%", "similarity ≥ 0.50" beside image hits (found under Xvfb: "score ≥
    0.50" beside "match 54%")."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=0.0)
        self._cuts: dict[str, float] = {}  # the cut of each scale, kept while another is shown
        self.set_kind("sketch")

    @staticmethod
    def _scale(kind: str) -> str:
        return kind if kind in ("image", "region") else "sketch"

    def set_kind(self, kind: str) -> None:
        """Show the cut of ``kind``'s scale: each scale keeps its own (found under Xvfb: "similarity ≥ 0.70" set
        for a photo became "match ≥ 70%" on the next sketch, above every likely match, and the list was empty)."""
        old = getattr(self, "kind", None)
        if old is not None and self._scale(old) != self._scale(kind):
            self._cuts[self._scale(old)] = self.value()
            self.kind = kind
            self.setValue(self._cuts.get(self._scale(kind), 0.0))
        self.kind = kind
        self.setPrefix({"image": "similarity ≥ ", "region": "fused ≥ "}.get(kind, "match ≥ "))
        self.setSuffix("" if kind in ("image", "region") else "%")
        self.lineEdit().setText(self.textFromValue(self.value()))
        self.updateGeometry()

    def _percent(self) -> bool:
        return getattr(self, "kind", "sketch") not in ("image", "region")  # (Qt asks during __init__)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt)
        return f"{round(100 * value):d}" if self._percent() else f"{value:.2f}"

    def _digits(self, text: str) -> str:
        return text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip().replace(",", ".")

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt)
        try:
            v = float(self._digits(text))
        except ValueError:
            return self.value()
        return v / 100 if self._percent() else v

    def validate(self, text: str, pos: int):
        from PySide6.QtGui import QValidator

        if self._digits(text) in ("", "."):
            return QValidator.State.Intermediate, text, pos
        try:
            float(self._digits(text))
        except ValueError:
            return QValidator.State.Invalid, text, pos
        v = self.valueFromText(text)
        return (QValidator.State.Acceptable if 0 <= v <= 1 else QValidator.State.Invalid), text, pos


class FittedImage(QWidget):
    """An image drawn whole, fitted to the widget (aspect kept, centred) at whatever size the widget has."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.setMinimumSize(200, 200)

    def set_image(self, img: QImage | None) -> None:
        self.image = img
        self.update()

    def paintEvent(self, event) -> None:
        from PySide6.QtCore import QRectF
        from PySide6.QtGui import QPainter

        if self.image is None or self.image.isNull():
            return
        s = min(self.width() / self.image.width(), self.height() / self.image.height())
        w, h = self.image.width() * s, self.image.height() * s
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h), self.image)
        p.end()


def _pixels(img: QImage) -> np.ndarray:
    """QImage -> (H, W, 3) float RGB in [0, 1]."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    a = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)[:, :3 * w].reshape(h, w, 3)
    return a.astype(np.float32) / 255.0


def warm(collection):
    """Load what searching ``collection`` needs (the networks, its arrays; torch where the network's weights
    are not cached for numpy yet) by a tiny search."""
    from .sketch import Stroke, render_strokes

    if len(collection):
        square = render_strokes([Stroke([[16, 16], [48, 16], [48, 48], [16, 48], [16, 16]], 2)], (64, 64))
        collection.search(square, top_k=1)
    return collection


def open_and_warm(db: str):
    """A collection opened, with its search models loaded (start-up, in a pool thread)."""
    from engine.shards import open_collection

    return warm(open_collection(db))


def _count(db: Path) -> int | None:
    """Photos in a collection, or None when there is none there (yet)."""
    if not is_collection(db):
        return None
    try:
        from engine.shards import open_collection

        return len(open_collection(db))
    except Exception:  # noqa: BLE001 - only a figure for a dialog
        return 0


def _html(text: str) -> str:
    import html

    return html.escape(text)
