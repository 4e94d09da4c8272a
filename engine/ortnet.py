"""EfficientNet-Lite feature maps in ONNX Runtime: the indexer's CPU network (METHOD.md section 7).

Indexing runs the backbone on every photo: three scales of its 384 px input and the 224 px drawing of its
edges.  On one CPU thread ONNX Runtime computes them 2.7 times faster than torch (53 ms instead of 142 ms
per photo on a Zen 4 core; batches of several images are no faster), with the same feature maps within
float rounding (2e-5 of activations up to 6).  Static int8 quantisation (ONNX Runtime, QDQ, per-channel
weights, calibrated on generated images) halves that again but moves the descriptors too far from the float
ones the queries are described with (cosine 0.992 on average and down to 0.95 for photos, 0.98 and 0.96 for
the drawings of their edges), so the graph stays in float32.  torch's own int8 (FX graph mode) was no faster
than its float32.

The graph is :class:`engine.npnet.EfficientNetLite`'s, written with ``onnx`` from the same folded weights
(nothing is downloaded): convolutions padded as TensorFlow's ``"SAME"`` (``auto_pad="SAME_UPPER"``: the
smaller half first), ReLU6 as ``Clip(0, 6)``, identity skips as ``Add``.  ``engine.cnn`` caches it beside
the numpy weights (:func:`cached_model_path`) and opens one session per process and thread count.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .atomic import atomic_write
from .npnet import EfficientNetLite

__all__ = ["FORMAT", "OPSET", "OrtNet", "cached_model_path", "model_bytes", "save"]

#: version of the graph's layout (part of the cached file's name: a new layout never reads an old file)
FORMAT = 1
#: ONNX operator set of the graph (with IR version 8: ONNX Runtime 1.13 and later read it)
OPSET = 17
_IR_VERSION = 8


def cached_model_path(weights: Path, variant: str | None = None) -> Path:
    """The cache file of the ONNX graph built from the numpy weights cached at ``weights``
    (``engine.npnet.cached_weights_path``): the same name, suffixed with this module's format and the
    variant's name (the int8 graph's: ``int8-<digest of its ranges>``)."""
    return weights.with_name(f"{weights.stem}-ort{FORMAT}{'-' + variant if variant else ''}.onnx")


def model_bytes(net: EfficientNetLite, ranges: Mapping[str, Sequence[float]] | None = None, *,
                probe: bool = False) -> bytes:
    """The serialised ONNX model of a numpy network: input ``image`` (N, 3, H, W) float32 RGB in [0, 1],
    output ``features`` (N, K, ceil(H / 32), ceil(W / 32)), any N, H, W.

    Parameters
    ----------
    net : engine.npnet.EfficientNetLite
        The float network.
    ranges : mapping of str to (low, high), optional
        The int8 graph (``engine.cnn.int8_ranges``): every activation (each convolution's output and each
        residual sum; the ones :func:`activation_ranges` measures) is quantised to uint8 over
        its calibrated range (:func:`activation_ranges`), every convolution's weights to int8 with one
        symmetric scale per output channel, its bias to int32 (the input's scale times the weights'), as
        ONNX Runtime's own static quantiser writes it (QDQ), so that it runs integer convolutions.  ReLU6
        is the quantisation's clamp (the range of a ReLU6 output lies in [0, 6]).  The network's input
        range is exact, not calibrated.
    probe : bool
        Float graph whose every activation that the int8 graph quantises is an output too (the calibration).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, probes = [], [], []
    quantised = ranges is not None
    scales: dict[str, float] = {}  # the uint8 scale of each quantised activation

    def constant(name: str, value, dtype=np.float32) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype), name))
        return name

    def activation(x: str, low: float, high: float) -> str:
        """``x`` as the next layers read it: itself, or quantised to uint8 over [low, high] and back."""
        if probe:
            probes.append(x)
        if not quantised:
            return x
        low, high = min(float(low), 0.0), max(float(high), 0.0)
        scale = max(high - low, 1e-8) / 255.0
        zero = int(np.clip(round(-low / scale), 0, 255))
        scales[x] = scale
        args = [constant(f"{x}.q.scale", np.float32(scale)), constant(f"{x}.q.zero", np.uint8(zero), np.uint8)]
        nodes.append(helper.make_node("QuantizeLinear", [x, *args], [f"{x}.q"], name=f"{x}.q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{x}.q", *args], [f"{x}.dq"], name=f"{x}.dq"))
        return f"{x}.dq"

    def calibrated(x: str) -> tuple[float, float]:
        if not quantised:
            return 0.0, 0.0
        try:
            low, high = ranges[x]
        except KeyError:
            raise ValueError(f"no calibrated range for the activation {x!r}") from None
        return float(low), float(high)

    def conv(x: str, w: np.ndarray, b: np.ndarray, stride: int, relu6: bool, groups: int = 1) -> str:
        """(C_out, C_in / groups, k, k) convolution of ``x`` (as the next layers read it) plus bias, then
        ReLU6; the name of its output as the next layers read it."""
        y = f"layer{sum(n.op_type == 'Conv' for n in nodes)}"
        w = np.asarray(w, np.float32)
        b = np.asarray(b, np.float32)
        if quantised:
            x_scale = scales[x.removesuffix(".dq")]
            # one scale per output channel; at least one that keeps the int32 bias in range (a channel of
            # almost nothing: weights of 1e-11 become 0)
            w_scale = np.maximum(np.abs(w).reshape(len(w), -1).max(axis=1) / 127.0,
                                 np.abs(b) / (x_scale * 2.0 ** 30))
            w_scale = np.where(w_scale > 0, w_scale, 1.0).astype(np.float32)
            codes = np.clip(np.rint(w / w_scale[:, None, None, None]), -127, 127)
            b_scale = (x_scale * w_scale).astype(np.float32)
            w_in = f"{y}.w.dq"
            nodes.append(helper.make_node(
                "DequantizeLinear", [constant(f"{y}.w", codes, np.int8), constant(f"{y}.w.scale", w_scale),
                                     constant(f"{y}.w.zero", np.zeros(len(w), np.int8), np.int8)], [w_in], axis=0))
            b_in = f"{y}.b.dq"
            nodes.append(helper.make_node(
                "DequantizeLinear", [constant(f"{y}.b", np.rint(b / b_scale), np.int32),
                                     constant(f"{y}.b.scale", b_scale),
                                     constant(f"{y}.b.zero", np.zeros(len(b), np.int32), np.int32)], [b_in], axis=0))
        else:
            w_in, b_in = constant(f"{y}.w", w), constant(f"{y}.b", b)
        out = y if quantised or not relu6 else f"{y}.linear"
        nodes.append(helper.make_node("Conv", [x, w_in, b_in], [out], name=out, auto_pad="SAME_UPPER",
                                      strides=[stride, stride], group=groups, kernel_shape=list(w.shape[2:])))
        if relu6 and not quantised:
            nodes.append(helper.make_node("Clip", [out, "zero", "six"], [y], name=y))
        low, high = calibrated(y)
        return activation(y, 0.0 if relu6 else low, min(high, 6.0) if relu6 else high)

    def pointwise(w: np.ndarray) -> np.ndarray:  # (C_in, C_out) -> (C_out, C_in, 1, 1)
        return w.T[:, :, None, None]

    if not quantised:
        constant("zero", np.float32(0.0))
        constant("six", np.float32(6.0))
    nodes.append(helper.make_node("Sub", ["image", constant("input.mean", np.float32(net.mean))], ["centred"]))
    nodes.append(helper.make_node("Mul", ["centred", constant("input.scale", np.float32(net.scale))], ["input"]))
    ends = sorted(float((v - np.float32(net.mean)) * np.float32(net.scale)) for v in (0.0, 1.0))
    x = activation("input", *ends) if quantised else "input"  # exact: images lie in [0, 1]
    k = net.stem_k
    x = conv(x, net.stem_w.reshape(k, k, 3, -1).transpose(3, 2, 0, 1), net.stem_b, net.stem_stride, True)
    for expand, dw_w, dw_b, stride, proj_w, proj_b, skip in net.blocks:
        inputs = x
        if expand is not None:
            x = conv(x, pointwise(expand[0]), expand[1], 1, True)
        x = conv(x, dw_w.transpose(2, 0, 1)[:, None], dw_b, stride, True, groups=dw_w.shape[2])
        x = conv(x, pointwise(proj_w), proj_b, 1, False)
        if skip:
            name = f"{x.removesuffix('.dq')}.skip"
            nodes.append(helper.make_node("Add", [x, inputs], [name], name=name))
            x = activation(name, *calibrated(name))
    x = conv(x, pointwise(net.head_w), net.head_b, 1, True)
    nodes.append(helper.make_node("Identity", [x], ["features"]))
    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                             ["batch", net.channels, "rows", "columns"])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in probes]
    graph = helper.make_graph(
        nodes, "efficientnet-lite",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sketchsearch")
    model.ir_version = _IR_VERSION
    return model.SerializeToString()


def activation_ranges(net: EfficientNetLite, images: Iterable[np.ndarray]) -> dict[str, list[float]]:
    """The range (least, greatest value) of every activation that the int8 graph quantises, over the images
    (each a (H, W, 3) float32 RGB array in [0, 1], any size): the calibration of :func:`model_bytes`."""
    session = OrtNet(model_bytes(net, probe=True), num_threads=None).session
    names = [o.name for o in session.get_outputs()][1:]
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    for image in images:
        x = np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1)[None])
        for name, value in zip(names, session.run(names, {"image": x}), strict=True):
            low[name] = min(low[name], float(value.min()))
            high[name] = max(high[name], float(value.max()))
    return {name: [low[name], high[name]] for name in names}


def save(path: Path, model: bytes) -> None:
    """Write a serialised model to ``path`` atomically (``engine.atomic``), creating its folder."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(model)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


class OrtNet:
    """An ONNX Runtime session of a model of :func:`model_bytes` on the CPU.

    Parameters
    ----------
    model : bytes
        The serialised model.
    num_threads : int, optional
        Threads of one forward pass; None: ONNX Runtime's default (the physical cores).  Idle threads
        sleep rather than spin: spinning threads take the cores from the other processes and threads.

    Raises
    ------
    Exception
        ONNX Runtime's own (``InvalidProtobuf``, ``Fail``...) for a model it cannot load.
    """

    def __init__(self, model: bytes, num_threads: int | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or 0)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Feature maps of images of one shape.

        Parameters
        ----------
        batch : (B, H, W, 3) float32 ndarray
            RGB in [0, 1].

        Returns
        -------
        (B, h, w, K) float32 ndarray
            The last activations, channels last as :meth:`engine.npnet.EfficientNetLite.features`.
        """
        x = np.asarray(batch, np.float32)
        if x.ndim != 4 or x.shape[3] != 3:
            raise ValueError(f"expected a (B, H, W, 3) batch, got shape {x.shape}")
        maps = self.session.run(["features"], {"image": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        return maps.transpose(0, 2, 3, 1)
