"""The reference sample: descriptors of a fixed set of photos shipped with the app, the background of the
fused sketch score's standardisation while a collection is too small to be its own (``engine.fusion``,
issue 17).

A small collection's own statistics are noisy and biased -- a collection of 36 photos, nine of them
houses, gives a house sketch a median that is already a house -- so the score of the same photo for the
same sketch moved from 0.11 to 0.55 as the collection grew.  Every standardisation of the fused score
therefore pools the collection's background with the reference photos' scores for the same query, with a
weight that fades out as the collection grows (``fusion.reference_weight``).

``engine/data/reference.npz`` holds, per reference photo, what an index stores for it with the default
settings: the 2-D sketch descriptor codes and norms (the alignment scores them for each query), the raw
GeM vector (embedded into each collection's image space: its whitening or plain L2) and the raw global
sketch descriptor (centred on each collection's mean).  ``scripts/build_reference.py`` makes it from
scenes rendered by ``scripts/make_demo.py`` and crops of freely licensed photos (none of the
evaluation data).  A collection indexed with other settings (another edge detector, descriptor preset or
backbone) does not match the shipped codes and is standardised on its own statistics, as before.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["REFERENCE_FILE", "Reference", "chunk_rows", "from_index", "load_reference"]

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "reference.npz"


@dataclass(frozen=True)
class Reference:
    """Descriptors of the reference photos.

    Attributes
    ----------
    codes : (R, D) int8 ndarray
        2-D sketch descriptors (storage order of ``settings``' layout).
    inv_norms : (R, K, 3) float32 ndarray
        Their inverse norms per query scale.
    gem : (R, G) float32 ndarray or None
        Raw GeM image descriptors (``image_settings``).
    sketch : (R, G) float32 ndarray or None
        Raw global sketch descriptors of the photos' edge maps drawn (``engine.fusion`` drawing settings).
    settings : str
        JSON of the SketchSettings the codes were computed with.
    image_settings : str
        JSON of the GemSettings of ``gem`` ("" when absent).
    drawing : str
        JSON of the fusion drawing settings (``side``, ``p``, ``thickness``) of ``sketch``.
    names : tuple of str
        Where each photo comes from.
    """

    codes: np.ndarray
    inv_norms: np.ndarray
    gem: np.ndarray | None
    sketch: np.ndarray | None
    settings: str
    image_settings: str
    drawing: str
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.codes)

    def fits(self, settings_json: str) -> bool:
        """Whether the codes were computed with these SketchSettings (JSON of an index's settings)."""
        return json.loads(settings_json) == json.loads(self.settings)

    def fits_images(self, image_settings_json: str | None) -> bool:
        """Whether ``gem`` and ``sketch`` match an index's image settings and this build's drawing of the
        global sketch descriptor."""
        from .fusion import load_params

        if not image_settings_json or self.gem is None or self.sketch is None or not self.image_settings:
            return False
        p = load_params()
        return (json.loads(image_settings_json) == json.loads(self.image_settings)
                and json.loads(self.drawing) == drawing_json(p.side, p.p, p.thickness))

    def save(self, path: str | Path) -> None:
        """Write the compact file: codes int8, norms and vectors float16."""
        arrays = {"codes": self.codes.astype(np.int8), "inv_norms": self.inv_norms.astype(np.float16),
                  "settings": np.array(self.settings), "image_settings": np.array(self.image_settings),
                  "drawing": np.array(self.drawing), "names": np.array(self.names)}
        if self.gem is not None:
            arrays["gem"] = self.gem.astype(np.float16)
        if self.sketch is not None:
            arrays["sketch"] = self.sketch.astype(np.float16)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)


def drawing_json(side: int, p: float, thickness: int) -> dict:
    return {"side": int(side), "p": float(p), "thickness": int(thickness)}


@functools.cache
def load_reference(path: str | None = None) -> Reference | None:
    """The shipped reference sample (None when the file is absent)."""
    p = Path(path) if path else REFERENCE_FILE
    if not p.is_file():
        return None
    z = np.load(p)
    return Reference(codes=np.ascontiguousarray(z["codes"], np.int8),
                     inv_norms=np.ascontiguousarray(z["inv_norms"], np.float32),
                     gem=np.asarray(z["gem"], np.float32) if "gem" in z else None,
                     sketch=np.asarray(z["sketch"], np.float32) if "sketch" in z else None,
                     settings=str(z["settings"]), image_settings=str(z["image_settings"]),
                     drawing=str(z["drawing"]), names=tuple(str(n) for n in z["names"]))


def chunk_rows(index, name: str) -> np.ndarray:
    """(N, d) float32 per-photo descriptors ``name`` of an index as it keeps them, decoded from its image index
    ("gem": L2-normalised GeM, "sketch": global sketch descriptors), in the index's row order."""
    if not len(index.ids):
        return np.zeros((0, 0), np.float32)
    images = index.images()
    if (images.row_to_vec < 0).any():
        raise ValueError(f"{index.path}: some photos are not in the image index yet")
    return images.decoded(name, np.arange(len(index.ids)))


def from_index(index, names=None) -> Reference:
    """The reference sample made of every photo of an index (``SketchIndex``)."""
    from .fusion import load_params

    p = load_params()
    images = bool(index.image_settings)
    return Reference(codes=np.asarray(index.codes, np.int8), inv_norms=np.asarray(index.inv_norms, np.float32),
                     gem=chunk_rows(index, "gem") if images else None,
                     sketch=chunk_rows(index, "sketch") if images else None,
                     settings=index.settings.to_json(), image_settings=index.image_settings or "",
                     drawing=json.dumps(drawing_json(p.side, p.p, p.thickness)),
                     names=tuple(names if names is not None else (Path(x).name for x in index.paths)))
