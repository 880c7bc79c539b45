"""Reading a frozen TensorFlow ``GraphDef`` without TensorFlow: its nodes, its constants, and the values of
nodes that depend on constants only.

The protocol buffers come from ``tensorboard``'s copy of TensorFlow's (``tensorboard.compat.proto``), so an
install step can take weights and facts (anchors, thresholds, scales) out of a frozen graph while the
package never depends on TensorFlow. :mod:`eval.install.ssdlite` checks and converts the SSDLite person
detector's graph with these.
"""
from __future__ import annotations

from eval.install import InstallError

__all__ = ["parse_graph", "const_value", "ConstEvaluator", "scalar_const", "through_identity"]


# TensorFlow DataType enum values (tensorflow/core/framework/types.proto) of the constants read here
_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 9: "int64", 10: "bool"}


def parse_graph(data: bytes):
    """``{node name: NodeDef}`` of a serialized ``GraphDef`` (needs the ``tensorboard`` package)."""
    try:
        from tensorboard.compat.proto import graph_pb2
    except ImportError as exc:
        raise InstallError(f"reading a TensorFlow graph needs tensorboard ({exc}); "
                           "pip install tensorboard (a dependency of this package), then rerun") from None
    g = graph_pb2.GraphDef()
    try:
        g.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise InstallError(f"the file is not a TensorFlow GraphDef ({exc})") from None
    return {n.name: n for n in g.node}


def const_value(node):
    """A ``Const`` node's value as a numpy array."""
    import numpy as np

    t = node.attr["value"].tensor
    dtype = _DTYPES.get(t.dtype)
    if dtype is None:
        raise InstallError(f"graph constant {node.name} has TensorFlow dtype {t.dtype}, which the installer does not read")
    shape = [d.size for d in t.tensor_shape.dim]
    if t.tensor_content:
        return np.frombuffer(t.tensor_content, dtype=dtype).reshape(shape).copy()
    for field in ("float_val", "double_val", "int_val", "int64_val", "bool_val"):
        values = list(getattr(t, field))
        if values:
            a = np.array(values, dtype=dtype)
            return np.broadcast_to(a, shape).copy() if shape else a.reshape(())
    return np.zeros(shape, dtype=dtype)


class ConstEvaluator:
    """Evaluates graph nodes that depend on constants only, with numpy, op by op in the graph's dtypes.

    Enough ops for the anchor generator and the postprocessor's constants; an op outside
    :attr:`OPS` raises :class:`InstallError` naming it (a graph the installer does not know).
    float32 ``+ - * /`` and ``sqrt`` are correctly rounded in numpy as in TensorFlow's CPU kernels,
    so the values are TensorFlow's own.
    """

    OPS = ("Const", "Identity", "Cast", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Sqrt", "Minimum", "Maximum",
           "Range", "Reshape", "ConcatV2", "Pack", "Unpack", "ExpandDims", "Tile", "Shape", "Slice", "StridedSlice",
           "Fill", "Size", "Rank", "Transpose", "Squeeze", "Equal", "All", "Assert")

    def __init__(self, nodes):
        self.nodes = nodes
        self.values: dict[str, list] = {}

    def __call__(self, ref: str):
        name, _, index = ref.partition(":")
        if name not in self.values:
            self.values[name] = self._run(name)
        return self.values[name][int(index or 0)]

    def _run(self, name: str) -> list:
        import numpy as np

        node = self.nodes.get(name)
        if node is None:
            raise InstallError(f"the graph has no node {name!r}; it is not the expected graph")
        op = node.op
        if op not in self.OPS:
            raise InstallError(f"node {name} ({op}) does not depend on constants only or is an op the installer "
                               "does not evaluate; the graph is not the expected SSDLite graph")
        if op == "Const":
            return [const_value(node)]
        x = [self(i) for i in node.input if not i.startswith("^")]
        attr = node.attr
        if op in ("Identity",):
            return [x[0]]
        if op == "Cast":
            return [np.asarray(x[0]).astype(_DTYPES[attr["DstT"].type])]
        if op in ("Add", "AddV2", "Sub", "Mul", "RealDiv", "Minimum", "Maximum", "Equal"):
            fn = {"Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.divide,
                  "Minimum": np.minimum, "Maximum": np.maximum, "Equal": np.equal}[op]
            a, b = np.asarray(x[0]), np.asarray(x[1])
            if a.dtype != b.dtype:
                raise InstallError(f"node {name} ({op}) mixes {a.dtype} and {b.dtype}")
            out = fn(a, b)
            return [out if op == "Equal" else out.astype(a.dtype, copy=False)]
        if op == "Sqrt":
            return [np.sqrt(x[0])]
        if op == "Range":
            return [np.arange(x[0], x[1], x[2], dtype=np.asarray(x[0]).dtype)]
        if op == "Reshape":
            return [np.reshape(x[0], [int(v) for v in np.asarray(x[1]).reshape(-1)])]
        if op == "ConcatV2":
            return [np.concatenate(x[:-1], axis=int(x[-1]))]
        if op == "Pack":
            return [np.stack(x, axis=attr["axis"].i)]
        if op == "Unpack":
            a = np.asarray(x[0])
            return [np.take(a, k, axis=attr["axis"].i) for k in range(a.shape[attr["axis"].i])]
        if op == "ExpandDims":
            return [np.expand_dims(x[0], int(x[1]))]
        if op == "Tile":
            return [np.tile(x[0], [int(v) for v in x[1]])]
        if op == "Shape":
            return [np.array(np.shape(x[0]), dtype=_DTYPES[attr["out_type"].type])]
        if op == "Size":
            return [np.array(np.size(x[0]), dtype=_DTYPES[attr["out_type"].type])]
        if op == "Rank":
            return [np.array(np.ndim(x[0]), dtype=np.int32)]
        if op == "Fill":
            return [np.full([int(v) for v in np.asarray(x[0]).reshape(-1)], x[1])]
        if op == "Slice":
            begin, size = [int(v) for v in x[1]], [int(v) for v in x[2]]
            a = np.asarray(x[0])
            return [a[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]]
        if op == "StridedSlice":
            return [self._strided_slice(node, *x)]
        if op == "Transpose":
            return [np.transpose(x[0], [int(v) for v in x[1]])]
        if op == "Squeeze":
            dims = tuple(attr["squeeze_dims"].list.i) or None
            return [np.squeeze(x[0], axis=dims)]
        if op == "All":
            return [np.all(x[0], axis=tuple(int(v) for v in np.asarray(x[1]).reshape(-1)))]
        if op == "Assert":
            if not bool(x[0]):
                raise InstallError(f"the graph's own check {name} fails on its constants; it is not the expected graph")
            return [None]
        raise AssertionError(op)  # pragma: no cover - OPS and the branches above list the same ops

    @staticmethod
    def _strided_slice(node, a, begin, end, strides):
        import numpy as np

        attr = node.attr
        if attr["ellipsis_mask"].i or attr["new_axis_mask"].i:
            raise InstallError(f"node {node.name}: StridedSlice with ellipsis/new axis masks is not evaluated here")
        a = np.asarray(a)
        index = []
        for k, (b, e, s) in enumerate(zip(begin, end, strides)):
            if attr["shrink_axis_mask"].i >> k & 1:
                index.append(int(b))
                continue
            index.append(slice(None if attr["begin_mask"].i >> k & 1 else int(b),
                               None if attr["end_mask"].i >> k & 1 else int(e), int(s)))
        return a[tuple(index)]


def scalar_const(nodes, name: str) -> float:
    """The value of the one-value constant ``name``."""
    node = nodes.get(name)
    if node is None or node.op != "Const":
        raise InstallError(f"the graph has no constant {name!r}; it is not the expected graph")
    v = const_value(node)
    if v.size != 1:
        raise InstallError(f"graph constant {name} has {v.size} values where one is expected")
    return float(v.reshape(()))


def through_identity(nodes, name: str) -> str:
    """The node ``name`` resolves to through Identity nodes (what really feeds an input)."""
    node = nodes[name]
    while node.op == "Identity":
        node = nodes[node.input[0]]
    return node.name
