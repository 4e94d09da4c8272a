"""From a photo to all its descriptors, and the settings an index run describes photos with.

One public place for both, used by the indexer's workers and writer and by the benchmarks:

* :func:`resolve_settings`: the sketch settings and image settings of a run -- as asked, else the index's,
  else the defaults (the command line, a sharded collection's manifest and the indexer all ask here).
* :func:`describe_file`: one photo file -> its record (alignment codes, rotation descriptor, geometry) and, where
  the index has image descriptors, its network inputs (the photo, its edge map drawn) for the CNN, which runs
  batched elsewhere (:class:`engine.imageindex.Extractor`, or a worker's own ``GemDescriber``).
* :func:`finish_deferred`: records of photos whose edges a learned detector computes batched on a GPU.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .afm import FeatureLayout, database_descriptor
from .boxes import edge_cells
from .catalog import read_meta
from .cnn import GemSettings
from .edges import edges_from_maps, get_detector, working_image
from .errors import IndexFormatError, IndexNotFound, SketchSearchError
from .fusion import drawing_input, load_params
from .imageio import load_image, network_input
from .rotation import photo_polar_descriptor
from .settings import SketchSettings


@dataclass(frozen=True)
class PhotoRecord:
    """One described photo: its file identity, geometry and descriptors."""

    path: str
    size: int
    mtime: float
    hash: str
    width: int
    height: int
    work_width: int
    work_height: int
    work_scale: float
    n_points: int
    codes: np.ndarray  # (D,) int8, storage order
    inv_norms: np.ndarray  # (K, 3) float32
    gem: np.ndarray | None = None  # (G,) image descriptor, when the index has them
    sketch: np.ndarray | None = None  # (G,) global sketch descriptor of the edge map drawn (engine.fusion), idem
    polar: np.ndarray | None = None  # (P,) rotation descriptor about the photo's centre (engine.rotation)
    taken: float | None = None  # EXIF DateTimeOriginal (seconds since the epoch), None where the file has none
    cells: bytes | None = None  # the working frame's edge cells, packed (engine.boxes: a sketch hit's box is fitted)


def content_hash(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """BLAKE2b (128-bit) of a file's bytes: the identity of a photo across renames and moves.

    Only a regular file is read (a FIFO or a device would never end): anything else raises OSError."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        while data := f.read(block):
            h.update(data)
    return h.hexdigest()


#: the image-descriptor backbone of a new index (``--backbone auto``)
DEFAULT_BACKBONE = "efficientnet-lite0"


def gem_settings(backbone: str | None) -> GemSettings | None:
    """GeM settings of a backbone name; None or "none": no image descriptors."""
    if backbone in (None, "", "none"):
        return None
    try:
        return GemSettings(backbone=backbone)
    except ValueError as e:
        raise SketchSearchError(str(e)) from None


def drawing_settings(backbone: str, params=None) -> GemSettings:
    """GemSettings of the global sketch descriptor (one scale at ``params.side`` px, GeM ``params.p``;
    ``params``: ``engine.fusion.FusionParams``, default the fitted ones)."""
    params = params or load_params()
    return GemSettings(backbone=backbone, p=params.p, scales=(1.0,), max_side=params.side)


def resolve_settings(db: Path, settings: SketchSettings | None, backbone: str | None, edges: str | None = None):
    """Sketch settings and image settings (JSON or None) of a run on the index ``db``: as asked, else the
    index's, else the defaults; ``edges`` sets the edge detector of those settings; ``backbone`` "auto": the
    index's image settings, or the default backbone's for a new index."""
    meta = None
    try:
        meta = read_meta(db)
    except (IndexNotFound, IndexFormatError):  # none yet, or one that must be rebuilt
        pass
    if settings is None:
        settings = SketchSettings.from_json(meta["settings"]) if meta else SketchSettings()
    if edges is not None:
        get_detector(edges)  # an unknown name or a missing extra fails here, before anything is written
        settings = dataclasses.replace(settings, detector=edges)
    if backbone == "auto":
        image = (meta.get("image_settings") or None) if meta else gem_settings(DEFAULT_BACKBONE).to_json()
    else:
        g = gem_settings(backbone)
        image = g.to_json() if g else None
    return settings, image


def describe_photo(path: Path, layout: FeatureLayout, *, hash: str | None = None) -> PhotoRecord:
    """Load one photo, detect its edges and encode it (raises ImageError)."""
    return describe_file(path, layout, hash, None)[0]


def drawn(edges) -> np.ndarray:
    """The global sketch descriptor's CNN input of a photo's edges (its edge map drawn)."""
    return drawing_input(edges, query=False)


def describe_file(path: Path, layout: FeatureLayout, hash: str | None, net_side: int | None,
              defer_edges: bool = False) -> tuple[PhotoRecord | Deferred, tuple | None]:
    """The photo's record and, with ``net_side``, its CNN inputs (photo, edge map drawn; the CNN runs
    batched in the writer).  With ``defer_edges`` the record is left for the writer to finish
    (:class:`Deferred`), which runs the edge detector batched on its GPU (and draws the edges)."""
    st = path.stat()
    settings = layout.settings
    image = load_image(path, max_side=max(settings.max_side, net_side or 0))
    net = network_input(image.pixels, net_side) if net_side else None
    # given the LoadedImage, edges.scale is working pixels per *original* pixel (reduced decoding included)
    work, scale = working_image(image, settings.max_side)
    base = dict(path=str(path), size=st.st_size, mtime=st.st_mtime, hash=hash or content_hash(path),
                width=image.original_size[0], height=image.original_size[1], taken=image.taken)
    if defer_edges:
        return Deferred(work=work, scale=scale, **base), (net, None) if net_side else None
    strength, theta = get_detector(settings.detector)(work)
    edges = edges_from_maps(strength, theta, scale=scale, min_strength=settings.min_strength)
    return _record(base, edges, layout, work), (net, drawn(edges)) if net_side else None


@dataclass(frozen=True)
class Deferred:
    """A photo loaded and resized by a worker, whose edges the writer computes (batched on a GPU)."""

    path: str
    size: int
    mtime: float
    hash: str
    width: int
    height: int
    work: np.ndarray
    scale: float
    taken: float | None = None


def _record(base: dict, edges, layout: FeatureLayout, work: np.ndarray) -> PhotoRecord:
    desc = database_descriptor(edges, layout)
    return PhotoRecord(base["path"], base["size"], base["mtime"], base["hash"], base["width"], base["height"],
                       edges.width, edges.height, edges.scale, len(edges), desc.codes, desc.inv_norms,
                       polar=photo_polar_descriptor(edges, work).astype(np.float16), taken=base.get("taken"),
                       cells=edge_cells(edges))


def finish_deferred(items: list[Deferred], layout: FeatureLayout, detector,
                     drawings: bool = False) -> list[tuple[PhotoRecord, np.ndarray | None]]:
    """Records (and with ``drawings`` the edge maps drawn as CNN inputs) of deferred photos: the
    detector's network in batches (``detector.probabilities``), then thinning, filtering and the
    descriptors in a thread pool (OpenCV and numpy release the GIL)."""
    probs = detector.probabilities([d.work for d in items])
    min_strength = layout.settings.min_strength

    def finish(i: int) -> tuple[PhotoRecord, np.ndarray | None]:
        strength, theta = detector.from_probability(probs[i])
        d = items[i]
        edges = edges_from_maps(strength, theta, scale=d.scale, min_strength=min_strength)
        return _record(dataclasses.asdict(d), edges, layout, d.work), (drawn(edges) if drawings else None)

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(finish, range(len(items))))


def defer_edges(detector_name: str, device: str | None) -> bool:
    """Whether the writer runs the edge detector batched on a GPU (a learned detector on CUDA) rather than
    every worker running it on the CPU."""
    if not hasattr(get_detector(detector_name), "probabilities"):
        return False
    import torch

    return torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))


