"""The main window: canvas (or image query) | results grid | detail panel, menus, indexing, status."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, QSize, QStandardPaths, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QImage, QKeySequence
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

from .canvas import SketchCanvas
from .detail import DetailPanel
from .results import HitRole, ResultDelegate, ResultsModel, ResultsView, ThumbnailCache, qimage_from_pixels
from .workers import Runner, Task

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.bmp *.tif *.tiff *.gif)"
DEBOUNCE_MS = 300
EXPAND = None  # sketch-to-image expansion when "Include similar photos" is on (None: the fitted default)
REFRESH_S = 3.0  # while indexing, re-open the index this often so new photos become searchable


def icon(name: str) -> QIcon:
    return QIcon(str(ICONS / f"{name}.svg"))


def default_db_for(folder: str | os.PathLike) -> Path:
    """Where the index of a photo folder lives (the app's data folder, never inside the photos)."""
    folder = Path(folder).resolve()
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) \
        or str(Path.home() / ".local" / "share" / "sketchsearch")
    tag = hashlib.blake2b(str(folder).encode(), digest_size=6).hexdigest()
    return Path(base) / "collections" / f"{folder.name or 'root'}-{tag}"


class MainWindow(QMainWindow):
    """sketchsearch's window.  ``searchFinished(n)`` is emitted when results are shown (tests, bench)."""

    searchFinished = Signal(int)
    indexingFinished = Signal(str)  # "done" | "cancelled" | "failed"

    def __init__(self, *, db: str | os.PathLike | None = None, settings: QSettings | None = None,
                 restore: bool = True) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.runner = Runner(parent=self)
        self.index = None  # engine.store.SketchIndex
        self.db: Path | None = None
        self.index_workers: int | None = None  # None: all cores
        self.top_k = 60
        self.query_kind = "sketch"
        self.query_image: np.ndarray | str | None = None
        self._generation = 0
        self._search_started = 0.0
        self._indexing: Task | None = None
        self._last_refresh = 0.0
        self._shown_sketch: np.ndarray | None = None
        self.setWindowTitle("sketchsearch")
        self.setWindowIcon(icon("sketchsearch"))
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_actions()
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS, timeout=self.search_now)
        self.canvas.sketchChanged.connect(self._sketch_changed)
        self.resize(1360, 820)
        if restore:
            self._restore_state()
        if db is not None:
            self.open_index(db)
        elif restore and self.settings.value("collection/db"):
            last = Path(str(self.settings.value("collection/db")))
            if (last / "catalog.sqlite3").exists():
                self.open_index(last)
        self._update_status()

    # -- layout -----------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.canvas = SketchCanvas()
        self.query_view = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.query_view.setMinimumSize(200, 200)
        back = QPushButton(icon("sketch"), "Back to the sketch")
        back.clicked.connect(self.back_to_sketch)
        image_page = QWidget()
        lay = QVBoxLayout(image_page)
        lay.addWidget(QLabel("Searching by this image:"))
        lay.addWidget(self.query_view, 1)
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
        self.count_label = QLabel("No results")
        # its text changes with every search: it must not move the splitter's panes
        self.count_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.count_label.setMinimumWidth(80)
        self.top_spin = QSpinBox(minimum=1, maximum=1000, value=self.top_k, suffix=" results")
        self.top_spin.setToolTip("How many results to show")
        self.top_spin.valueChanged.connect(self._top_changed)
        self.cutoff = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=0.0)
        self.cutoff.setPrefix("score ≥ ")
        self.cutoff.setToolTip("Hide results below this score")
        self.cutoff.valueChanged.connect(self._cutoff_changed)
        self.expand_box = QCheckBox("Include similar photos")
        self.expand_box.setToolTip("Also find photos that look like the best sketch hits (image descriptors)")
        self.expand_box.setChecked(True)  # on by default: it helps most sketches (README, sketch search quality)
        self.expand_box.toggled.connect(lambda _on: self.search_now())
        head = QHBoxLayout()
        head.addWidget(self.count_label, 1)
        head.addWidget(self.expand_box)
        head.addWidget(self.top_spin)
        head.addWidget(self.cutoff)
        middle = QWidget()
        ml = QVBoxLayout(middle)
        ml.addLayout(head)
        ml.addWidget(self.results, 1)

        self.detail = DetailPanel(self.runner)
        self.detail.searchWithImage.connect(self.search_image_file)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, middle, self.detail):
            self.splitter.addWidget(w)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 3)
        self.splitter.setSizes([420, 560, 380])
        self.setCentralWidget(self.splitter)

        sb = self.statusBar()
        self.collection_label = QLabel()
        self.time_label = QLabel()
        self.progress = QProgressBar(maximumWidth=220, textVisible=True)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_indexing)
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.setVisible(False)
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
        f.addAction(self.index_action)
        f.addAction(self._action("Open an &Existing Index…", self.choose_index, "Ctrl+Shift+O"))
        f.addAction(self._action("Open a S&harded Collection…", self.choose_manifest))
        f.addSeparator()
        f.addAction(self._action("Open a &Sketch…", self.choose_sketch, None, "sketch"))
        f.addAction(self._action("Search by &Image…", self.choose_image, "Ctrl+I", "image"))
        f.addAction(self._action("Save the Sketch &As…", self.save_sketch, "Ctrl+S", "save"))
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
        s = m.addMenu("&Search")
        s.addAction(self._action("Search &Now", self.search_now, ["Return", "Enter"], "search"))
        s.addAction(self._action("&Back to the Sketch", self.back_to_sketch, "Escape"))
        h = m.addMenu("&Help")
        h.addAction(self._action("&About sketchsearch", self.about))

    # -- collection -------------------------------------------------------------------------------
    def open_index(self, db: str | os.PathLike, *, quiet: bool = False) -> bool:
        from engine.errors import SketchSearchError
        from engine.shards import open_collection

        try:
            index = open_collection(db)  # an index folder, or a sharded collection's manifest
        except (SketchSearchError, OSError) as e:
            if not quiet:
                self.error(str(e))
            return False
        self.index, self.db = index, Path(db)
        self.settings.setValue("collection/db", str(self.db))
        self._update_status()
        return True

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Index a photo folder",
                                                  str(self.settings.value("collection/folder", str(Path.home()))))
        if folder:
            self.index_folder(folder)

    def choose_index(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an index folder (made by sketchsearch index)")
        if folder and self.open_index(folder):
            self.search_now()

    def choose_manifest(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a sharded collection (its manifest, made by sketchsearch "
                                                    "index --shards N)", "", "Manifests (*.json)")
        if path and self.open_index(path):
            self.search_now()

    def index_folder(self, folder: str | os.PathLike, db: str | os.PathLike | None = None) -> None:
        """Index (or update the index of) a folder in the background; searches see photos as they come."""
        from engine.indexer import index_folders
        from engine.shards import index_sharded, is_manifest

        if self._indexing is not None:
            self.error("An indexing run is already going; cancel it first")
            return
        folder = Path(folder)
        db = Path(db) if db else (self.db if self.db and self.settings.value("collection/folder") == str(folder)
                                  else default_db_for(folder))
        self.settings.setValue("collection/folder", str(folder))
        self.db = db
        self.settings.setValue("collection/db", str(db))
        # a sharded collection is indexed shard after shard here, its progress summed over the shards
        task = Task(index_sharded if is_manifest(db) else index_folders, [str(folder)], str(db),
                    workers=self.index_workers).with_control()
        self._indexing = task
        self._index_started = time.monotonic()
        self._last_refresh = time.monotonic()
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.setVisible(True)
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.index_action.setEnabled(False)
        self.progress_label.setText(f"Indexing {folder.name}…")
        self.runner.start(task, on_done=self._indexing_done, on_error=self._indexing_failed,
                          on_progress=self._indexing_progress, on_cancelled=self._indexing_cancelled)

    def cancel_indexing(self) -> None:
        if self._indexing is not None:
            self._indexing.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling…")

    def _indexing_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        elapsed = time.monotonic() - self._index_started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        self.progress.setFormat(f"{done:,} / {total:,}")
        self.progress_label.setText(f"{rate:.1f} photos/s · {_duration(eta)} left" if rate > 0 else "Starting…")
        if time.monotonic() - self._last_refresh > REFRESH_S and self.db is not None:
            self._last_refresh = time.monotonic()
            if self.open_index(self.db, quiet=True):  # what is committed so far becomes searchable
                self._update_status()

    def _indexing_finished(self, state: str, message: str) -> None:
        self._indexing = None
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.setVisible(False)
        self.index_action.setEnabled(True)
        if self.db is not None and ((self.db / "catalog.sqlite3").exists() or self.db.is_file()):
            self.open_index(self.db, quiet=state == "failed")
        self.statusBar().showMessage(message, 15000)
        self._update_status()
        self.search_now()
        self.indexingFinished.emit(state)

    def _indexing_done(self, summary, seconds: float) -> None:
        skipped = f", {len(summary.skipped)} skipped (File → Show Skipped Files)" if summary.skipped else ""
        self._indexing_finished("done", f"Indexed {summary.indexed:,} photos ({summary.described:,} new) in "
                                        f"{_duration(seconds)}{skipped}")

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
        self._generation += 1
        gen = self._generation
        if self.index is None:
            self.statusBar().showMessage("Open a collection first: File → Index a Photo Folder", 8000)
            return
        if self.query_kind == "image" and self.query_image is not None:
            task = Task(self.index.search_image, self.query_image, top_k=self.top_k)
            kind = "image"
            self._shown_sketch = None
        else:
            if self.canvas.is_empty():
                self.model.set_hits([])
                self.detail.show_hit(None)
                self.count_label.setText("Draw a shape to search")
                self.searchFinished.emit(0)
                return
            sketch = self.canvas.to_image()
            self._shown_sketch = sketch
            task = Task(self.index.search, sketch, top_k=self.top_k,
                        expand=EXPAND if self.expand_box.isChecked() else 0)
            kind = "sketch"
        self._search_started = time.perf_counter()
        self.count_label.setText("Searching…")
        self.runner.start(task, on_done=lambda hits, s: self._search_done(gen, kind, hits, s),
                          on_error=lambda msg: self._search_failed(gen, msg))

    def _search_done(self, gen: int, kind: str, hits, seconds: float) -> None:
        if gen != self._generation:
            return  # a newer search started meanwhile
        self.model.set_hits(hits, kind)
        n = self.model.rowCount()
        what = "similar photos" if kind == "image" else "photos with the shape"
        self.count_label.setText(f"{n} {what}" + (f" (of {len(hits)})" if n != len(hits) else ""))
        self.time_label.setText(f"search {1000 * seconds:.0f} ms")
        self.detail.show_hit(None)
        if n:
            self.results.setCurrentIndex(self.model.index(0))
        self.searchFinished.emit(n)

    def _search_failed(self, gen: int, message: str) -> None:
        if gen == self._generation:
            self.count_label.setText("No results")
            self.error(message, dialog=False)
            self.searchFinished.emit(0)

    def search_image_file(self, path: str) -> None:
        """Search by an image file (drop, File menu, "Search with this photo")."""
        from engine.imageio import ImageError, load_image

        try:
            pixels = load_image(path, max_side=1024).pixels
        except ImageError as e:
            self.error(str(e), dialog=False)
            return
        self._set_image_query(pixels, os.path.basename(path))

    def _set_image_query(self, pixels: np.ndarray, name: str) -> None:
        self.query_kind, self.query_image = "image", pixels
        img = qimage_from_pixels(pixels)
        self.query_view.setPixmap(_fit(img, self.query_view.size()))
        self.query_view.setToolTip(name)
        self.query_stack.setCurrentIndex(1)
        self.tools.setEnabled(False)
        self.search_now()

    def back_to_sketch(self) -> None:
        if self.query_kind != "sketch":
            self.query_kind, self.query_image = "sketch", None
            self.query_stack.setCurrentIndex(0)
            self.tools.setEnabled(True)
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

    def save_sketch(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the sketch", "sketch.png", "PNG (*.png)")
        if path:
            try:
                self.canvas.save_png(path)
            except OSError as e:
                self.error(str(e))

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
            self.statusBar().showMessage("The clipboard holds no image", 5000)
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

    # -- selection, status, settings --------------------------------------------------------------
    def _current_changed(self, current, _previous) -> None:
        hit = current.data(HitRole) if current is not None and current.isValid() else None
        kind = self.model.kind
        self.detail.show_hit(hit, kind=kind, sketch=self._shown_sketch)
        query = self._shown_sketch if kind == "sketch" else self.query_image
        if hit is None or query is None or self.index is None:
            return
        from engine.rotsearch import curve_for_hit

        def show(curve, _s, hit=hit) -> None:
            if self.detail.hit is hit:  # still the selected result
                self.detail.rotation.set_curve(curve)

        self.runner.start(Task(curve_for_hit, self.index, query, hit, kind=kind), on_done=show,
                          on_error=lambda msg: self.statusBar().showMessage(f"rotation curve: {msg}", 5000))

    def _top_changed(self, value: int) -> None:
        self.top_k = value
        self.search_now()

    def _cutoff_changed(self, value: float) -> None:
        self.model.set_min_score(value)
        self.count_label.setText(f"{self.model.rowCount()} results")

    def _update_status(self) -> None:
        if self.index is None:
            self.collection_label.setText("No collection")
        else:
            n_skip = self.index.n_skipped
            self.collection_label.setText(f"{len(self.index):,} photos" + (f" · {n_skip} skipped" if n_skip else "")
                                          + f" · {self.db}")
        self.skipped_action.setEnabled(self.index is not None)

    def error(self, message: str, *, dialog: bool = True) -> None:
        self.statusBar().showMessage(message, 15000)
        if dialog:  # window-modal and non-blocking: the app (and its background work) goes on
            box = QMessageBox(QMessageBox.Icon.Warning, "sketchsearch", message, QMessageBox.StandardButton.Ok,
                              self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.last_error_box = box
            box.open()

    def about(self) -> None:
        QMessageBox.about(self, "About sketchsearch",
                          "<b>sketchsearch</b><br>Draw a shape and find the photos that contain it, with a box "
                          "where it matched; or drop a photo to find similar ones.<br><br>Runs offline on your "
                          "own folders.")

    def _restore_state(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, QByteArray | bytes):
            self.restoreGeometry(geo)
        split = self.settings.value("window/splitter")
        if isinstance(split, QByteArray | bytes):
            self.splitter.restoreState(split)

    def closeEvent(self, event) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.cancel_indexing()
        self.runner.cancel_all()
        self.runner.wait(60_000)
        self.thumb_runner.wait(10_000)
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


def _fit(img: QImage, size: QSize):
    from PySide6.QtGui import QPixmap

    target = QSize(max(size.width(), 200), max(size.height(), 200))
    return QPixmap.fromImage(img).scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)


def _pixels(img: QImage) -> np.ndarray:
    """QImage -> (H, W, 3) float RGB in [0, 1]."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    a = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)[:, :3 * w].reshape(h, w, 3)
    return a.astype(np.float32) / 255.0
