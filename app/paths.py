"""Where the app keeps what it makes: its data folder (collections, the search history), never among the photos."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QStandardPaths


def data_folder() -> Path:
    """The app's data folder (``~/.local/share/sketchsearch/sketchsearch`` on Linux; ``XDG_DATA_HOME`` moves it)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation) \
        or str(Path.home() / ".local" / "share" / "sketchsearch")
    return Path(base)


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file as the app compares them (absolute, case-folded where the file system
    ignores case): the query photo among the results, in the grid, the viewer and the detail panel alike."""
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))
