"""Files the app ships: icons and the demo collection (``resources/demo``)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEMO = ROOT / "demo"  # the demo collection: photos/, sketches/, expected.json
ICONS = ROOT / "icons"
