"""The first-run welcome (shown in place of the empty results grid while no collection is open) and the
Help → About text."""
from __future__ import annotations

import html
import platform

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPalette
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from resources import ICONS

__all__ = ["WelcomePanel", "about_text", "app_version", "DISTRIBUTION", "LICENCE"]

DISTRIBUTION = "sketchsearch"  # pyproject.toml [project] name
LICENCE = "MIT"  # pyproject.toml [project] license
TITLE = "Find photos by drawing them"
TEXT = ("Sketch a shape and sketchsearch finds the photos that contain it, with a box where it matched; "
        "or search with a photo to find ones that look like it.")
NEXT = "Start with a folder of your photos (they stay where they are), or try the demo collection."
BUTTON_HEIGHT = 44
MIN_SIZE = QSize(160, 120)  # smaller than its content: it scrolls
MARGIN = 16
COLUMN = 600  # the widest the text gets (lines of a readable length)


class WelcomePanel(QWidget):
    """A title, two lines of text and two big buttons: "Add a photo folder…" (emits ``addFolder``) and
    "Try the demo collection" (emits ``tryDemo``).  Mnemonics Alt+A and Alt+T; Tab moves between the buttons
    and Enter or Space presses one.  Colours come from the palette (light and dark schemes alike); the text
    wraps and the buttons stack when the panel is narrow (nothing is cut off at 400×300); a panel smaller than
    its content scrolls."""

    addFolder = Signal()
    tryDemo = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePanel")
        # it stands in for the results grid: the same background (an item view's Base) and text roles
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self.setForegroundRole(QPalette.ColorRole.Text)
        self.setAutoFillBackground(True)

        self.title = QLabel(TITLE)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5 if font.pointSizeF() > 0 else 15)
        font.setBold(True)
        self.title.setFont(font)
        self.text = QLabel(TEXT)
        self.next = QLabel(NEXT)
        for label in (self.title, self.text, self.next):
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            label.setForegroundRole(QPalette.ColorRole.Text)
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setAccessibleName(TITLE)

        self.add_button = QPushButton(QIcon(str(ICONS / "folder.svg")), "&Add a photo folder…")
        self.add_button.setToolTip("Index a folder of your photos into a collection of its own, then search it")
        self.add_button.clicked.connect(self.addFolder)
        self.demo_button = QPushButton(QIcon(str(ICONS / "sketchsearch.svg")), "&Try the demo collection")
        self.demo_button.setToolTip("Open a small collection of sample photos to try sketching")
        self.demo_button.clicked.connect(self.tryDemo)
        for b in (self.add_button, self.demo_button):
            b.setAutoDefault(True)  # Enter presses the focused button (Space always does)
            b.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            b.setMinimumHeight(BUTTON_HEIGHT)
            b.setIconSize(QSize(22, 22))
            b.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
        self.add_button.setDefault(True)
        self.setFocusProxy(self.add_button)

        self.buttons = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.buttons.setSpacing(12)
        self.buttons.addStretch(1)
        self.buttons.addWidget(self.add_button)
        self.buttons.addWidget(self.demo_button)
        self.buttons.addStretch(1)

        # title, text and buttons in a column of a readable width (at most COLUMN px), centred; in a scroll
        # area, so that a panel too small for them scrolls rather than squeezes them into each other
        self.content = QWidget()
        self.content.setBackgroundRole(QPalette.ColorRole.Base)
        self.content.setForegroundRole(QPalette.ColorRole.Text)
        self.page = QVBoxLayout(self.content)
        self.page.setContentsMargins(MARGIN, MARGIN, MARGIN, MARGIN)
        self.page.setSpacing(10)
        self.page.addStretch(1)
        self.page.addWidget(self.title)
        self.page.addSpacing(4)
        self.page.addWidget(self.text)
        self.page.addWidget(self.next)
        self.page.addSpacing(8)
        self.page.addLayout(self.buttons)
        self.page.addStretch(2)
        self.scroll = QScrollArea()
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidgetResizable(True)
        self.scroll.setBackgroundRole(QPalette.ColorRole.Base)
        self.scroll.viewport().setBackgroundRole(QPalette.ColorRole.Base)
        self.scroll.setWidget(self.content)
        self.scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.scroll)
        QWidget.setTabOrder(self.add_button, self.demo_button)

    def resizeEvent(self, event) -> None:
        self._arrange(event.size().width())
        super().resizeEvent(event)

    def _arrange(self, width: int) -> None:
        """Centre a column of at most COLUMN px, and put the buttons side by side where they fit in it, one
        above the other where they do not."""
        side = max(MARGIN, (width - COLUMN) // 2)
        self.page.setContentsMargins(side, MARGIN, side, MARGIN)
        need = self.add_button.sizeHint().width() + self.demo_button.sizeHint().width() + self.buttons.spacing()
        wide = width - 2 * side >= need
        want = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self.buttons.direction() != want:
            self.buttons.setDirection(want)
            for b in (self.add_button, self.demo_button):
                b.setSizePolicy(QSizePolicy.Policy.Minimum if wide else QSizePolicy.Policy.Expanding,
                                QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return self.content.sizeHint()

    def minimumSizeHint(self) -> QSize:
        return MIN_SIZE


def app_version() -> str:
    """The installed version of sketchsearch ("unknown" when it is not installed, e.g. run from a checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except (PackageNotFoundError, ValueError):
        return "unknown"


def about_text(version: str | None = None) -> str:
    """The Help → About text (HTML): the name, ``version`` (default :func:`app_version`), what it does, the
    licence and the Python and Qt versions it runs on."""
    import PySide6
    from PySide6.QtCore import qVersion

    v = html.escape(version if version is not None else app_version())
    return (f"<h3>sketchsearch {v}</h3>"
            f"<p>{html.escape(TITLE)}: draw a shape and find the photos that contain it, with a box where it "
            "matched, or find photos similar to an image.</p>"
            f"<p>Released under the {LICENCE} licence.</p>"
            f"<p><small>Python {html.escape(platform.python_version())} · Qt {html.escape(qVersion())} · "
            f"PySide6 {html.escape(PySide6.__version__)}</small></p>")
