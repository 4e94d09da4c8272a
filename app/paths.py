"""Where the app keeps what it makes: its data folder (collections, the search history), never among the photos."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths


def data_folder() -> Path:
    """The app's data folder (``~/.local/share/sketchsearch/sketchsearch`` on Linux; ``XDG_DATA_HOME`` moves it)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) \
        or str(Path.home() / ".local" / "share" / "sketchsearch")
    return Path(base)
