"""The engine is usable without Qt: every module imports with PySide6 blocked."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import importlib, pkgutil, sys
for name in ("PySide6", "PyQt5", "PyQt6", "qtpy"):
    sys.modules[name] = None  # any import of it fails
import engine
for m in pkgutil.iter_modules(engine.__path__):
    importlib.import_module(f"engine.{m.name}")
print(sorted(m for m in sys.modules if m.startswith("engine.")))
"""


def test_every_engine_module_imports_without_qt():
    out = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "engine.store" in out.stdout and "engine.cli" in out.stdout
