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


def cached_model_path(weights: Path) -> Path:
    """The cache file of the ONNX graph built from the numpy weights cached at ``weights``
    (``engine.npnet.cached_weights_path``): the same name, suffixed with this module's format."""
    return weights.with_name(f"{weights.stem}-ort{FORMAT}.onnx")


def model_bytes(net: EfficientNetLite) -> bytes:
    """The serialised ONNX model of a numpy network: input ``image`` (N, 3, H, W) float32 RGB in [0, 1],
    output ``features`` (N, K, ceil(H / 32), ceil(W / 32)), any N, H, W."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []

    def constant(name: str, value) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def conv(x: str, w: np.ndarray, b: np.ndarray, stride: int, relu6: bool, groups: int = 1) -> str:
        """(C_out, C_in / groups, k, k) convolution of ``x`` plus bias, then ReLU6; the output's name."""
        y = f"conv{len(nodes)}"
        nodes.append(helper.make_node("Conv", [x, constant(f"{y}.w", w), constant(f"{y}.b", b)], [y], name=y,
                                      auto_pad="SAME_UPPER", strides=[stride, stride], group=groups,
                                      kernel_shape=list(w.shape[2:])))
        if not relu6:
            return y
        nodes.append(helper.make_node("Clip", [y, "zero", "six"], [f"{y}.relu6"], name=f"{y}.relu6"))
        return f"{y}.relu6"

    def pointwise(w: np.ndarray) -> np.ndarray:  # (C_in, C_out) -> (C_out, C_in, 1, 1)
        return w.T[:, :, None, None]

    constant("zero", np.float32(0.0))
    constant("six", np.float32(6.0))
    nodes.append(helper.make_node("Sub", ["image", constant("input.mean", np.float32(net.mean))], ["centred"]))
    nodes.append(helper.make_node("Mul", ["centred", constant("input.scale", np.float32(net.scale))], ["input"]))
    k = net.stem_k
    x = conv("input", net.stem_w.reshape(k, k, 3, -1).transpose(3, 2, 0, 1), net.stem_b, net.stem_stride, True)
    for expand, dw_w, dw_b, stride, proj_w, proj_b, skip in net.blocks:
        inputs = x
        if expand is not None:
            x = conv(x, pointwise(expand[0]), expand[1], 1, True)
        x = conv(x, dw_w.transpose(2, 0, 1)[:, None], dw_b, stride, True, groups=dw_w.shape[2])
        x = conv(x, pointwise(proj_w), proj_b, 1, False)
        if skip:
            nodes.append(helper.make_node("Add", [x, inputs], [f"{x}.skip"], name=f"{x}.skip"))
            x = f"{x}.skip"
    x = conv(x, pointwise(net.head_w), net.head_b, 1, True)
    nodes.append(helper.make_node("Identity", [x], ["features"]))
    graph = helper.make_graph(
        nodes, "efficientnet-lite",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", net.channels, "rows", "columns"])],
        weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sketchsearch")
    model.ir_version = _IR_VERSION
    return model.SerializeToString()


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
