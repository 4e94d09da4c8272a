"""A search result (``Hit``) and the box geometry that places a match in a photo's original pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``box`` is ``[x0, y0, x1, y1]`` in the photo's original pixels (after EXIF orientation).
    """

    rank: int
    path: str
    score: float
    box: tuple[float, float, float, float]
    scale: float
    mirrored: bool
    row: int
    raw_score: float | None = None  # sketch queries: the alignment's cosine (``score`` is calibrated)
    taken: float | None = None  # browsing: the photo's date (EXIF DateTimeOriginal, else the file's time)
    box_sure: bool | None = None  # sketch queries: the shape stands out there (alignment z >= sure_z)
    likely: bool | None = None  # sketch queries: a likely match (engine.fusion: the cut and the stand-out test)
    # sketch queries: where the sketch was placed, [x0, y0, x1, y1] in original pixels, not clipped to the photo
    # (the sketch's own frame at ``scale``; ``box`` follows the photo's edges along it, engine.boxes): where the
    # app draws the sketch
    frame: tuple[float, float, float, float] | None = None

    def to_json(self) -> dict:
        out = {"rank": self.rank, "path": self.path, "score": round(self.score, 6),
               "box": [round(v, 1) for v in self.box], "scale": round(self.scale, 4), "mirrored": self.mirrored}
        if self.raw_score is not None:
            out["raw_score"] = round(self.raw_score, 6)
        if self.taken is not None:
            out["taken"] = round(self.taken, 3)
        if self.box_sure is not None:
            out["box_sure"] = self.box_sure
        if self.likely is not None:
            out["likely"] = self.likely
        return out


def photo_box(geometry, width: float, height: float, dx: float, dy: float, *,
              clip: bool = True) -> tuple[float, float, float, float]:
    """Box ``[x0, y0, x1, y1]`` in a photo's original pixels of a ``width x height`` (working pixels) frame
    centred ``(dx, dy)`` from the working frame's centre, clipped to the photo (``clip``; unclipped: where the
    placed sketch lies, which may reach past the photo's edge).

    ``geometry`` is the photo's (width, height, work_width, work_height, work_scale).
    """
    full_w, full_h, ww, wh, ws = geometry
    cx, cy = ww / 2 + dx, wh / 2 + dy
    x0, x1 = (cx - width / 2) / ws, (cx + width / 2) / ws
    y0, y1 = (cy - height / 2) / ws, (cy + height / 2) / ws
    if clip:
        x0, x1 = np.clip([x0, x1], 0, full_w)
        y0, y1 = np.clip([y0, y1], 0, full_h)
    return float(x0), float(y0), float(x1), float(y1)


