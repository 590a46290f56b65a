"""Trained JAX parameters -> ONNX graphs, written with onnx's helper API from standard operators.

The LSTM-Transformer becomes: ``Sub``/``Div`` (the stored feature scaling), ``Transpose`` + ONNX's own
``LSTM`` operator (gates reordered from JAX's i, f, g, o to ONNX's i, o, f, c), per block ``MatMul``
projections, ``Reshape``/``Transpose`` into heads, ``Softmax`` attention, ``LayerNormalization``
(opset 17) and ``Relu``; the head takes the last bar's state (``Gather``) and undoes the target scaling.
Every operator here is in onnxruntime's CPU provider; ``tests/prediction`` checks the graph against the
JAX forward pass to 1e-5 on the same inputs.

Why not a converter: torch.onnx needs torch (several GB with its CUDA wheels); jax2onnx pulls flax,
equinox, orbax, huggingface-hub and netron, and pins orbax so that jax stays behind.  The graphs here are
small, every node is named, and the parity test is what proves them.

Metadata (``metadata_props``) says what the model is: ``kubetrade.kind`` (predictor or policy),
``kubetrade.features`` (the feature set), ``kubetrade.window``, ``kubetrade.horizon`` and the training
window and seed, so the runner can refuse a model trained on other features than a Strategy asks for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
OUTPUT = "predicted_return"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        self._n += 1
        out = out or f"{kind.lower()}_{self._n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], name=f"{kind}_{self._n}", **attrs))
        return out

    def linear(self, x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        y = self.op("MatMul", [x, self.const(f"{name}.w", w)])
        return self.op("Add", [y, self.const(f"{name}.b", b)])

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], name: str,
              metadata: Mapping[str, str]) -> bytes:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kubetrade")
        m.ir_version = 8
        helper.set_model_props(m, dict(metadata))
        onnx.checker.check_model(m)
        return bytes(m.SerializeToString())


def _reorder_gates(w: np.ndarray, hidden: int) -> np.ndarray:
    """JAX's gate blocks i, f, g, o along the last axis -> ONNX's i, o, f, c."""
    i, f, g, o = (w[..., k * hidden:(k + 1) * hidden] for k in range(4))
    return np.concatenate([i, o, f, g], axis=-1)


def _layer_norm(g: _Graph, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float, name: str) -> str:
    return g.op("LayerNormalization", [x, g.const(f"{name}.g", gamma), g.const(f"{name}.b", beta)],
                axis=-1, epsilon=eps)


def predictor(params: Mapping[str, Any], x_mean: np.ndarray, x_std: np.ndarray, y_mean: float, y_std: float, *,
              window: int, heads: int, eps: float, input_name: str, metadata: Mapping[str, str]) -> bytes:
    """The LSTM-Transformer as ONNX: input ``input_name`` (batch, window, features), output (batch, 1)."""
    g = _Graph()
    lp = params["lstm"]
    n_feat = int(np.asarray(lp["wx"]).shape[0])
    hidden = int(np.asarray(lp["wh"]).shape[0])
    x = g.op("Div", [g.op("Sub", [input_name, g.const("scale.mean", x_mean)]), g.const("scale.std", x_std)])
    xt = g.op("Transpose", [x], perm=[1, 0, 2])  # (time, batch, features): ONNX LSTM's layout 0
    w = _reorder_gates(np.asarray(lp["wx"]), hidden).T[None]  # (1, 4h, features)
    r = _reorder_gates(np.asarray(lp["wh"]), hidden).T[None]  # (1, 4h, h)
    b = np.concatenate([_reorder_gates(np.asarray(lp["b"]), hidden), np.zeros(4 * hidden)])[None]
    y = g.op("LSTM", [xt, g.const("lstm.W", w), g.const("lstm.R", r), g.const("lstm.B", b)], hidden_size=hidden)
    hs = g.op("Transpose", [g.op("Squeeze", [y, g.const("axis1", [1], np.int64)])], perm=[1, 0, 2])
    dh = hidden // heads
    split_shape = g.const("heads.shape", [0, 0, heads, dh], np.int64)
    merge_shape = g.const("merge.shape", [0, 0, hidden], np.int64)
    for k, blk in enumerate(params["blocks"]):
        pre = f"block{k}"
        q, kk, v = (g.op("Transpose", [g.op("Reshape", [g.linear(hs, np.asarray(blk[f"w{n}"]),
                                                                  np.asarray(blk[f"b{n}"]), f"{pre}.{n}"),
                                                        split_shape])], perm=[0, 2, 1, 3])
                    for n in ("q", "k", "v"))
        scores = g.op("Div", [g.op("MatMul", [q, g.op("Transpose", [kk], perm=[0, 1, 3, 2])]),
                              g.const(f"{pre}.sqrt_dh", math.sqrt(dh))])
        mixed = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        mixed = g.op("Reshape", [g.op("Transpose", [mixed], perm=[0, 2, 1, 3]), merge_shape])
        mixed = g.linear(mixed, np.asarray(blk["wo"]), np.asarray(blk["bo"]), f"{pre}.o")
        hs = _layer_norm(g, g.op("Add", [hs, mixed]), np.asarray(blk["ln1_g"]), np.asarray(blk["ln1_b"]), eps,
                         f"{pre}.ln1")
        ff = g.op("Relu", [g.linear(hs, np.asarray(blk["w1"]), np.asarray(blk["b1"]), f"{pre}.ff1")])
        ff = g.linear(ff, np.asarray(blk["w2"]), np.asarray(blk["b2"]), f"{pre}.ff2")
        hs = _layer_norm(g, g.op("Add", [hs, ff]), np.asarray(blk["ln2_g"]), np.asarray(blk["ln2_b"]), eps,
                         f"{pre}.ln2")
    last = g.op("Gather", [hs, g.const("last", -1, np.int64)], axis=1)  # (batch, hidden)
    z = g.linear(last, np.asarray(params["head"]["w"]), np.asarray(params["head"]["b"]), "head")
    g.op("Add", [g.op("Mul", [z, g.const("target.std", [y_std])]), g.const("target.mean", [y_mean])], OUTPUT)
    return g.model(
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", window, n_feat])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 1])], "lstm_transformer", metadata)


def mlp_policy(layers: Sequence[tuple[np.ndarray, np.ndarray]], x_mean: np.ndarray, x_std: np.ndarray,
               actions: Sequence[float], *, input_name: str, n_inputs: int, output: str,
               metadata: Mapping[str, str]) -> bytes:
    """A tanh MLP's greedy action as ONNX: logits -> ArgMax -> the action's value (e.g. -1, 0, +1), (batch, 1)."""
    g = _Graph()
    h = g.op("Div", [g.op("Sub", [input_name, g.const("scale.mean", x_mean)]), g.const("scale.std", x_std)])
    for k, (w, b) in enumerate(layers):
        h = g.linear(h, np.asarray(w), np.asarray(b), f"layer{k}")
        if k < len(layers) - 1:
            h = g.op("Tanh", [h])
    best = g.op("ArgMax", [h], axis=1, keepdims=1)  # (batch, 1) int64; ties go to the first, as numpy's argmax
    g.op("Gather", [g.const("actions", list(actions)), best], output, axis=0)
    return g.model(
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", n_inputs])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 1])], "policy", metadata)
