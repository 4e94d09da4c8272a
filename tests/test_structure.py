"""The house's walls that import-linter cannot say (its contracts run in .ci/run: ``lint-imports``).

No module of the product, the evaluation wing or the scripts imports another module's private names (``_name``):
what one module needs of another is public, documented and tested as such.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_aliases(tree: ast.AST) -> set[str]:
    """Names under which a file imports modules of this project (``from . import fusion``, ``from engine import x``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in ("engine", "app")):
            for alias in node.names:
                target = ROOT.joinpath(*((node.module or "").split(".")), alias.name)
                if node.level or target.with_suffix(".py").is_file() or target.is_dir():
                    out.add(alias.asname or alias.name)
    return out


def private_imports(path: Path, name: str) -> list[str]:
    """``name:line: what`` of each private name a file imports from another module or reaches through one."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules = _module_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    source = "." * node.level + (node.module or "")
                    found.append(f"{name}:{node.lineno}: from {source} import {alias.name}")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and isinstance(node.value, ast.Name) and node.value.id in modules):
            found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


FILES = sorted([*ROOT.glob("engine/**/*.py"), *ROOT.glob("app/*.py"), *ROOT.glob("scripts/*.py")])


def test_no_module_imports_another_modules_private_names():
    found = [f for p in FILES for f in private_imports(p, str(p.relative_to(ROOT)))]
    assert not found, "imports of private names:\n" + "\n".join(found)


def test_the_check_sees_private_names_imported_or_reached(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from engine.indexer import _vanished, index_folders\nfrom . import fusion\nfrom .cnn import l2n\n"
                     "fusion._stats(None, 1, None)\nfusion.fuse\n", encoding="utf-8")
    assert private_imports(probe, "probe") == ["probe:1: from engine.indexer import _vanished",
                                               "probe:4: fusion._stats"]
