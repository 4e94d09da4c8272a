"""App tests run Qt headless unless told otherwise (set before PySide6 creates the application)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
