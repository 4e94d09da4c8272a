"""How the benchmarks report: the machine they ran on, and Markdown tables of their rows."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine() -> dict:
    """A short description of the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__}


def table(title: str, rows: list[dict], columns: list[str] | None = None) -> str:
    """Format rows of dicts as a plain-text table."""
    if not rows:
        return f"{title}\n  (nothing measured)\n"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [title, "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines) + "\n"


def report(part: str, res: dict, results: dict, out: list[str]) -> None:
    """Keep a part's result, print its tables and the data sets it skipped (with why)."""
    results[part] = res
    for title, rows in res.get("tables", {}).items():
        out.append(table(title, rows))
        print(out[-1], flush=True)
    for note in res.get("skipped", []):
        print(f"{part}: skipped: {note}", flush=True)


