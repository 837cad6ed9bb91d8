"""The near-duplicate search's first pass: int8 products with a proven error bound.

Unit rows are quantised with one global scale ``s`` (the largest component maps to 127);
``x . y`` differs from ``qx . qy / s**2`` by at most ``2E + E**2``, ``E`` the largest
quantisation error norm of any row (measured, not assumed). A column tile whose largest
int8 product with a row is below ``(threshold - bound) * s**2`` holds no column with
cosine >= threshold for that row, so only the other (row, tile) pairs are rescored in
float32: no true near-duplicate is lost.

The products run in ONNX Runtime (installed with fastembed): ``MatMulInteger`` on uint8 x
int8 (the row side shifted by a zero point of 128) uses the CPU's VNNI/AMX int8 kernels,
about 2.5x numpy's float32 matmul per core, and ``ReduceMax`` keeps one int per row and
tile, so the int32 tile never reaches Python. The graph is written here in protobuf wire
format (a dozen fields of onnx.proto), as the ``onnx`` package is not a dependency.
"""

from __future__ import annotations

import math

import numpy as np

# onnx.proto enums: TensorProto.DataType and AttributeProto.AttributeType
UINT8, INT8, INT32 = 2, 3, 6
ATTR_INT, ATTR_INTS = 2, 7


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _f(field: int, value: int | str | bytes) -> bytes:
    """One protobuf field: an int as a varint, a str/bytes as length-delimited."""
    if isinstance(value, int):
        return _varint(field << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _value_info(name: str, elem: int, dims: list[int | str] | None) -> bytes:
    shape = b"" if dims is None else _f(2, b"".join(_f(1, _dim(d)) for d in dims))
    return _f(1, name) + _f(2, _f(1, _f(1, elem) + shape))  # name, TypeProto.tensor_type


def _dim(d: int | str) -> bytes:
    return _f(1, d) if isinstance(d, int) else _f(2, d)


def _node(op: str, inputs: list[str], outputs: list[str], attrs: bytes = b"") -> bytes:
    return (
        b"".join(_f(1, i) for i in inputs)
        + b"".join(_f(2, o) for o in outputs)
        + (_f(4, op) + attrs)
    )


def max_product_model(dim: int) -> bytes:
    """ONNX model: uint8 A (m x dim, zero point Z) times int8 B (dim x n), max per row."""
    reduce_attrs = _f(5, _f(1, "axes") + _f(8, 1) + _f(20, ATTR_INTS)) + _f(
        5, _f(1, "keepdims") + _f(3, 0) + _f(20, ATTR_INT)
    )
    graph = b"".join(
        [
            _f(1, _node("MatMulInteger", ["A", "B", "Z"], ["C"])),
            _f(1, _node("ReduceMax", ["C"], ["R"], reduce_attrs)),
            _f(2, "int8_max_product"),
            _f(11, _value_info("A", UINT8, ["m", dim])),
            _f(11, _value_info("B", INT8, [dim, "n"])),
            _f(11, _value_info("Z", UINT8, [])),
            _f(12, _value_info("R", INT32, ["m"])),
        ]
    )
    return _f(1, 8) + _f(7, graph) + _f(8, _f(1, "") + _f(2, 17))  # ir 8, opset 17


class Int8Screen:
    """Which rows of a block may have a cosine >= ``threshold`` with a column tile."""

    def __init__(self, m: np.ndarray, threshold: float, threads: int | None = None) -> None:
        import onnxruntime as ort

        top = float(np.abs(m).max()) if m.size else 1.0
        self.scale = 127.0 / max(top, 1e-12)
        q = np.clip(np.rint(m * self.scale), -127, 127).astype(np.int8)
        err = m.astype(np.float64) - q.astype(np.float64) / self.scale
        e = float(np.sqrt((err**2).sum(axis=1)).max()) if m.size else 0.0
        self.bound = 2 * e + e * e
        slack = 1e-4  # float32 rounding of the exact cosines the rescoring compares
        self.cut = math.floor((threshold - self.bound - slack) * self.scale**2)
        self.rows_u8 = (q.astype(np.int16) + 128).astype(np.uint8)
        self.cols_t = np.ascontiguousarray(q.T)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (all cores)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            max_product_model(m.shape[1]), opts, providers=["CPUExecutionProvider"]
        )
        self.zero = np.array(128, dtype=np.uint8)
        self.pairs = self.kept = 0

    def candidates(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Offsets (from ``r0``) of rows whose best int8 product with columns c0:c1 reaches
        the cut: the only rows of this tile that can hold a near-duplicate."""
        feeds = {
            "A": self.rows_u8[r0:r1],
            "B": np.ascontiguousarray(self.cols_t[:, c0:c1]),
            "Z": self.zero,
        }
        best = self.session.run(None, feeds)[0]
        keep = np.nonzero(best >= self.cut)[0]
        self.pairs += r1 - r0
        self.kept += len(keep)
        return keep
