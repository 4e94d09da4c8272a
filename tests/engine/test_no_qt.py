"""The engine is usable without Qt: every module (the benchmark wing too) imports with PySide6 blocked, and so
does the command line (Qt is imported only for ``sketchsearch gui``)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import importlib, pkgutil, sys
for name in ("PySide6", "PyQt5", "PyQt6", "qtpy"):
    sys.modules[name] = None  # any import of it fails
import engine
for m in pkgutil.walk_packages(engine.__path__, "engine."):
    importlib.import_module(m.name)
import app.cli
app.cli.build_parser()
print(sorted(m for m in sys.modules if m.startswith(("engine.", "app."))))
"""


def test_every_engine_module_and_the_cli_import_without_qt():
    out = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "engine.collection" in out.stdout and "engine.bench.fusion" in out.stdout and "app.cli" in out.stdout
    assert "app.mainwindow" not in out.stdout
