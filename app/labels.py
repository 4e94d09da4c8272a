"""A one-line label that elides its text to the room it has (the status bar's messages, the viewer's caption)."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy


class ElidedLabel(QLabel):
    """A one-line label that elides its text to the room it has (the whole text in its tooltip), so a long
    message never pushes the status bar's other fields or runs into them."""

    def __init__(self, text: str = "", parent=None, *, elide: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle) -> None:
        super().__init__(parent)
        self._full = ""
        self._mode = elide
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt)
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        return self._full

    def _line(self) -> str:
        """The text on one line (a message's line breaks become spaces)."""
        return " ".join(self._full.split())

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt): the whole text, where there is room for it
        return QSize(self.fontMetrics().horizontalAdvance(self._line()) + 8, super().sizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._line(), self._mode, max(self.width(), 40))
        super().setText(shown)
