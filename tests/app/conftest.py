"""App tests run Qt headless unless told otherwise (set before PySide6 creates the application)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
NOT_GUI = ("test_cli.py", "test_cli_errors.py", "test_cli_output.py", "test_messages.py")  # no Qt


def pytest_collection_modifyitems(config, items):
    """Every test of the desktop app (not of its command line) is marked ``gui`` (``-m "not gui"`` leaves them
    out where no Qt platform is available)."""
    for item in items:
        if item.path.parent == Path(__file__).parent and item.path.name not in NOT_GUI:
            item.add_marker(pytest.mark.gui)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory):
    """An index of the demo collection (built once per test session)."""
    from engine.indexer import index_folders

    db = tmp_path_factory.mktemp("demo") / "index"
    index_folders([DEMO / "photos"], db, workers=1)
    return db
