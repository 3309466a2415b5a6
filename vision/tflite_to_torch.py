"""Run a TensorFlow Lite model as a torch module, converted at load time (no TensorFlow needed).

`read_tflite` parses the .tflite flatbuffer with a small reader written against the TFLite schema
(schema.fbs field ids; no `flatbuffers`/`tflite` package needed); `TFLiteModule` turns the graph
into a torch module: constants become buffers (int8/uint8 weights are dequantized to float32 with
their per-tensor or per-channel scale and zero point), and the operators run in order with torch
functions.

Layout: activations of rank 4 are kept in torch's NCHW layout inside the module, so a model whose
TFLite input is NHWC takes an NCHW tensor here, and any batch size works (TFLite fixes batch 1).

Only the operators listed in `SUPPORTED_OPS` are converted; anything else raises
`UnsupportedTFLiteOp` when the model loads, never silently at run time. Custom ops, control flow,
integer-only (fully quantized) activations and sparse tensors are not supported.

Hybrid (dynamic-range) models, whose weights are int8 and activations float: the TFLite runtime
quantizes each hybrid op's input to int8 on the fly (per sample). By default (`hybrid_activations=
"int8"`) the module rounds those inputs to the same int8 grid, so it reproduces the runtime up to float
rounding; `"float"` skips that rounding (closer to the float model the weights were quantized from).
The check against the TFLite runtime is in docs/models/face-expression.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- flatbuffer reader


class TFLiteFormatError(ValueError):
    """The file is not a TFLite flatbuffer this reader understands."""


class UnsupportedTFLiteOp(NotImplementedError):
    """The model uses an operator (or option) that this converter does not implement."""


class _Table:
    """One flatbuffer table: fields looked up through its vtable by their byte offset (4, 6, 8, ...)."""

    __slots__ = ("buf", "pos", "vtable", "vtable_size")

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, slot: int) -> int | None:
        if slot >= self.vtable_size:
            return None
        off = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        return self.pos + off if off else None

    def scalar(self, slot: int, fmt: str, default=0):
        at = self._field(slot)
        return default if at is None else struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _target(self, slot: int) -> int | None:
        at = self._field(slot)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot: int) -> "_Table | None":
        at = self._target(slot)
        return None if at is None else _Table(self.buf, at)

    def string(self, slot: int) -> str:
        at = self._target(slot)
        if at is None:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + n].decode("utf-8", "replace")

    def vector(self, slot: int, fmt: str) -> np.ndarray:
        at = self._target(slot)
        if at is None:
            return np.zeros(0, dtype=np.dtype("<" + fmt))
        n = struct.unpack_from("<I", self.buf, at)[0]
        return np.frombuffer(self.buf, dtype=np.dtype("<" + fmt), count=n, offset=at + 4).copy()

    def raw_bytes(self, slot: int) -> bytes:
        at = self._target(slot)
        if at is None:
            return b""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + n]

    def tables(self, slot: int) -> list["_Table"]:
        at = self._target(slot)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for i in range(n):
            elem = at + 4 + 4 * i
            out.append(_Table(self.buf, elem + struct.unpack_from("<I", self.buf, elem)[0]))
        return out


# TensorType enum -> numpy dtype (schema.fbs)
_TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
                 9: np.int8, 10: np.float64}

# BuiltinOperator enum values this converter implements
OP_ADD, OP_AVERAGE_POOL_2D, OP_CONCATENATION, OP_CONV_2D, OP_DEPTHWISE_CONV_2D = 0, 1, 2, 3, 4
OP_DEQUANTIZE, OP_FULLY_CONNECTED, OP_LOGISTIC, OP_MAX_POOL_2D, OP_MUL = 6, 9, 14, 17, 18
OP_RELU, OP_RELU6, OP_RESHAPE, OP_SOFTMAX, OP_TANH, OP_PAD, OP_MEAN = 19, 21, 22, 25, 28, 34, 40
OP_RESIZE_BILINEAR = 23

SUPPORTED_OPS = {
    OP_ADD: "ADD", OP_AVERAGE_POOL_2D: "AVERAGE_POOL_2D", OP_CONCATENATION: "CONCATENATION",
    OP_CONV_2D: "CONV_2D", OP_DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D", OP_DEQUANTIZE: "DEQUANTIZE",
    OP_FULLY_CONNECTED: "FULLY_CONNECTED", OP_LOGISTIC: "LOGISTIC", OP_MAX_POOL_2D: "MAX_POOL_2D",
    OP_MUL: "MUL", OP_RELU: "RELU", OP_RELU6: "RELU6", OP_RESHAPE: "RESHAPE", OP_SOFTMAX: "SOFTMAX",
    OP_TANH: "TANH", OP_PAD: "PAD", OP_MEAN: "MEAN", OP_RESIZE_BILINEAR: "RESIZE_BILINEAR",
}


@dataclass
class TFLiteTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None  # constant value (already dequantized for quantized weights), None for activations
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_point: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quantized_dimension: int = 0


@dataclass
class TFLiteOp:
    code: int
    inputs: list[int]
    outputs: list[int]
    options: dict


@dataclass
class TFLiteGraph:
    tensors: list[TFLiteTensor]
    ops: list[TFLiteOp]
    inputs: list[int]
    outputs: list[int]
    description: str = ""


def _options(code: int, opts: _Table | None) -> dict:
    """Decode the builtin options table of the operators we support (field offsets from schema.fbs)."""
    if opts is None:
        opts_get = lambda slot, fmt, default: default  # noqa: E731
    else:
        opts_get = opts.scalar
    if code == OP_CONV_2D:
        return {"padding": opts_get(4, "b", 0), "stride_w": opts_get(6, "i", 1), "stride_h": opts_get(8, "i", 1),
                "activation": opts_get(10, "b", 0), "dilation_w": opts_get(12, "i", 1),
                "dilation_h": opts_get(14, "i", 1)}
    if code == OP_DEPTHWISE_CONV_2D:
        return {"padding": opts_get(4, "b", 0), "stride_w": opts_get(6, "i", 1), "stride_h": opts_get(8, "i", 1),
                "depth_multiplier": opts_get(10, "i", 0), "activation": opts_get(12, "b", 0),
                "dilation_w": opts_get(14, "i", 1), "dilation_h": opts_get(16, "i", 1)}
    if code in (OP_MAX_POOL_2D, OP_AVERAGE_POOL_2D):
        return {"padding": opts_get(4, "b", 0), "stride_w": opts_get(6, "i", 1), "stride_h": opts_get(8, "i", 1),
                "filter_w": opts_get(10, "i", 1), "filter_h": opts_get(12, "i", 1),
                "activation": opts_get(14, "b", 0)}
    if code in (OP_ADD, OP_MUL):
        return {"activation": opts_get(4, "b", 0)}
    if code == OP_FULLY_CONNECTED:
        return {"activation": opts_get(4, "b", 0), "weights_format": opts_get(6, "b", 0),
                "keep_num_dims": bool(opts_get(8, "B", 0)),
                "asymmetric_quantize_inputs": bool(opts_get(10, "B", 0))}
    if code == OP_SOFTMAX:
        return {"beta": opts_get(4, "f", 0.0)}
    if code == OP_CONCATENATION:
        return {"axis": opts_get(4, "i", 0), "activation": opts_get(6, "b", 0)}
    if code == OP_MEAN:
        return {"keep_dims": bool(opts_get(4, "B", 0))}
    if code == OP_RESIZE_BILINEAR:
        return {"align_corners": bool(opts_get(8, "B", 0)), "half_pixel_centers": bool(opts_get(10, "B", 0))}
    return {}


def read_tflite(source: str | Path | bytes) -> TFLiteGraph:
    """Parse the first subgraph of a .tflite file into tensors (with constant data) and operators."""
    buf = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TFLiteFormatError("not a TFLite flatbuffer (file identifier TFL3 missing)")
    model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    version = model.scalar(4, "I", 0)
    if version != 3:
        raise TFLiteFormatError(f"TFLite schema version {version}, expected 3")
    opcodes = []
    for oc in model.tables(6):
        deprecated = oc.scalar(4, "b", 0)
        builtin = oc.scalar(10, "i", 0)
        opcodes.append((max(deprecated, builtin), oc.string(6)))
    buffers = []
    for b in model.tables(12):
        data = b.raw_bytes(4)
        if not data:
            offset, size = b.scalar(6, "Q", 0), b.scalar(8, "Q", 0)
            if offset > 1 and size:
                data = buf[offset : offset + size]
        buffers.append(data)
    subgraphs = model.tables(8)
    if not subgraphs:
        raise TFLiteFormatError("model has no subgraph")
    if len(subgraphs) > 1:
        raise UnsupportedTFLiteOp("models with more than one subgraph (control flow) are not supported")
    graph = subgraphs[0]

    tensors = []
    for i, t in enumerate(graph.tables(4)):
        type_id = t.scalar(6, "b", 0)
        if type_id not in _TENSOR_TYPES:
            raise UnsupportedTFLiteOp(f"tensor {i} has unsupported TensorType {type_id}")
        if t.table(16) is not None:
            raise UnsupportedTFLiteOp(f"tensor {i} is sparse; sparse tensors are not supported")
        dtype = _TENSOR_TYPES[type_id]
        shape = tuple(int(s) for s in t.vector(4, "i"))
        q = t.table(12)
        scale = q.vector(8, "f") if q is not None else np.zeros(0, np.float32)
        zero_point = q.vector(10, "q") if q is not None else np.zeros(0, np.int64)
        qdim = q.scalar(16, "i", 0) if q is not None else 0
        raw = buffers[t.scalar(8, "I", 0)] if t.scalar(8, "I", 0) < len(buffers) else b""
        constant: np.ndarray | None = None
        if raw:
            constant = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
            if len(scale) and constant.dtype in (np.int8, np.uint8, np.int16):
                constant = _dequantize(constant, scale, zero_point, qdim)
        tensors.append(TFLiteTensor(i, t.string(10), shape, dtype, constant, scale, zero_point, qdim))

    ops = []
    for k, op in enumerate(graph.tables(10)):
        code, custom = opcodes[op.scalar(4, "I", 0)]
        if code not in SUPPORTED_OPS:
            what = f"custom op {custom!r}" if custom else f"builtin operator {code}"
            raise UnsupportedTFLiteOp(f"operator {k}: {what} is not supported (supported: "
                                      f"{', '.join(sorted(SUPPORTED_OPS.values()))})")
        ops.append(TFLiteOp(code, [int(x) for x in op.vector(6, "i")], [int(x) for x in op.vector(8, "i")],
                            _options(code, op.table(12))))
    return TFLiteGraph(tensors, ops, [int(x) for x in graph.vector(6, "i")],
                       [int(x) for x in graph.vector(8, "i")], model.string(10))


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    values = q.astype(np.float32)
    if len(zero_point) == 0:
        zero_point = np.zeros_like(scale, dtype=np.int64)
    if len(scale) == 1:
        return ((values - float(zero_point[0])) * float(scale[0])).astype(np.float32)
    bshape = [1] * q.ndim
    bshape[axis] = len(scale)
    return ((values - zero_point.reshape(bshape).astype(np.float32)) * scale.reshape(bshape)).astype(np.float32)


# ---------------------------------------------------------------- torch module

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _activation(x: torch.Tensor, kind: int) -> torch.Tensor:
    if kind == 0:
        return x
    if kind == 1:
        return F.relu(x)
    if kind == 2:
        return x.clamp(-1.0, 1.0)
    if kind == 3:
        return x.clamp(0.0, 6.0)
    if kind == 4:
        return torch.tanh(x)
    raise UnsupportedTFLiteOp(f"fused activation {kind} is not supported")


def _resize_bilinear(x: torch.Tensor, size: list[int], align_corners: bool, half_pixel: bool) -> torch.Tensor:
    """TFLite RESIZE_BILINEAR (size is [height, width]) on an NCHW tensor."""
    if align_corners:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    if half_pixel:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    # Legacy TF sampling: source = destination * in/out, no half-pixel shift, clamped at the edge.
    n, c, h, w = x.shape
    ys = (torch.arange(size[0], dtype=x.dtype, device=x.device) * (h / size[0])).clamp(max=h - 1)
    xs = (torch.arange(size[1], dtype=x.dtype, device=x.device) * (w / size[1])).clamp(max=w - 1)
    y0, x0 = ys.floor().long(), xs.floor().long()
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    wy, wx = (ys - y0).view(1, 1, -1, 1), (xs - x0).view(1, 1, 1, -1)
    top = x[:, :, y0][:, :, :, x0] * (1 - wx) + x[:, :, y0][:, :, :, x1] * wx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - wx) + x[:, :, y1][:, :, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow SAME padding for one spatial axis: (before, after); the extra pixel goes after."""
    out = -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1,
              value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_pads(x.shape[2], kh, sh, dh)
    left, right = _same_pads(x.shape[3], kw, sw, dw)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def _hybrid_mode(op: TFLiteOp, graph: TFLiteGraph) -> str | None:
    """For a float op with int8 weights (dynamic-range quantization), how TFLite quantizes its input.

    Per-channel CONV_2D / DEPTHWISE_CONV_2D: asymmetric per sample; per-tensor ones: symmetric;
    FULLY_CONNECTED: asymmetric only when its asymmetric_quantize_inputs option is set.
    """
    if op.code not in (OP_CONV_2D, OP_DEPTHWISE_CONV_2D, OP_FULLY_CONNECTED) or len(op.inputs) < 2:
        return None
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if x.dtype != np.float32 or w.data is None or w.dtype not in (np.int8, np.uint8) or not len(w.scale):
        return None
    if op.code == OP_FULLY_CONNECTED:
        return "asymmetric" if op.options.get("asymmetric_quantize_inputs") else "symmetric"
    return "asymmetric" if len(w.scale) > 1 else "symmetric"


def _round_away(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _fake_quantize_per_sample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Round each sample to the int8 grid TFLite's hybrid kernels use (BatchQuantizeFloats), in float."""
    flat = x.reshape(x.shape[0], -1)
    shape = (-1,) + (1,) * (x.dim() - 1)
    if mode == "asymmetric":  # tensor_utils::AsymmetricQuantizeFloats
        lo = flat.min(1).values.clamp(max=0).double().view(shape)
        hi = flat.max(1).values.clamp(min=0).double().view(shape)
        scale = ((hi - lo) / 255.0).clamp(min=1e-30)
        zp_min, zp_max = -128 - lo / scale, 127 - hi / scale
        use_min = (128 + (lo / scale).abs()) < (127 + (hi / scale).abs())
        zero = _round_away(torch.where(use_min, zp_min, zp_max)).clamp(-128, 127)
        inv = (1.0 / scale).float()
        q = (_round_away(inv * x) + zero.float()).clamp(-128, 127)
        return ((q - zero.float()) * scale.float())
    scale = (flat.abs().max(1).values / 127.0).clamp(min=1e-12).view(shape)
    return torch.round(x / scale).clamp(-127, 127) * scale


class TFLiteModule(nn.Module):
    """A TFLite graph run with torch ops. `forward(*inputs)` takes NCHW for rank-4 inputs."""

    def __init__(self, graph: TFLiteGraph, hybrid_activations: str = "int8"):
        super().__init__()
        if hybrid_activations not in ("int8", "float"):
            raise ValueError(f"hybrid_activations must be 'int8' or 'float', not {hybrid_activations!r}")
        self.graph_inputs = list(graph.inputs)
        self.graph_outputs = list(graph.outputs)
        self.ranks = {t.index: len(t.shape) for t in graph.tensors}
        self.shapes = {t.index: t.shape for t in graph.tensors}
        self.names = [t.name for t in graph.tensors]
        self.ops: list[tuple[int, list[int], list[int], dict]] = []
        # op position -> "asymmetric" | "symmetric": how TFLite's hybrid kernel quantizes that op's input
        self.hybrid_ops: dict[int, str] = {}
        self._const: set[int] = set()
        consts = {t.index: t for t in graph.tensors if t.data is not None}
        for op in graph.ops:
            if op.code == OP_DEQUANTIZE and op.inputs[0] in consts:
                # dequantize a constant once, at load time (float16 or int8 weights)
                src = consts[op.inputs[0]]
                assert src.data is not None  # constants only
                out = graph.tensors[op.outputs[0]]
                consts[out.index] = TFLiteTensor(out.index, out.name, out.shape, np.float32,
                                                 src.data.astype(np.float32))
                continue
            if op.options.get("activation", 0) not in (0, 1, 2, 3, 4):
                raise UnsupportedTFLiteOp(f"{SUPPORTED_OPS[op.code]}: fused activation {op.options['activation']}")
            mode = _hybrid_mode(op, graph) if hybrid_activations == "int8" else None
            if mode:
                self.hybrid_ops[len(self.ops)] = mode
            self.ops.append((op.code, op.inputs, op.outputs, op.options))
        used = {i for _, ins, _, _ in self.ops for i in ins if i >= 0}
        for index in sorted(used - set(consts)):
            if graph.tensors[index].dtype != np.float32:
                raise UnsupportedTFLiteOp(
                    f"tensor {index} ({graph.tensors[index].name}) is a {np.dtype(graph.tensors[index].dtype).name} "
                    "activation; only float activations are supported (no integer-only models)")
        for index, tensor in consts.items():
            if index in used and tensor.data is not None:  # every constant has data
                self._register_const(index, tensor.data, self._const_role(index))

    @classmethod
    def from_files(cls, files: dict[str, Path], hybrid_activations: str = "int8") -> "TFLiteModule":
        """Build from a manifest record's files: the one `.tflite` file among them."""
        tflite = [path for name, path in files.items() if name.endswith(".tflite")]
        if len(tflite) != 1:
            raise ValueError(f"expected exactly one .tflite file, got {sorted(files)}")
        return cls(read_tflite(tflite[0]), hybrid_activations).eval()

    def _const_role(self, index: int) -> tuple[int, int]:
        for code, ins, _, _ in self.ops:
            if index in ins:
                return code, ins.index(index)
        return -1, -1

    def _register_const(self, index: int, data: np.ndarray, role: tuple[int, int]) -> None:
        code, position = role
        value = torch.from_numpy(np.ascontiguousarray(data))
        if value.dtype == torch.float64 or value.dtype == torch.float16:
            value = value.float()
        if code == OP_CONV_2D and position == 1:
            value = value.permute(0, 3, 1, 2)  # OHWI -> OIHW
        elif code == OP_DEPTHWISE_CONV_2D and position == 1:
            value = value.permute(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW
        elif value.dim() == 4:
            value = value.permute(0, 3, 1, 2)  # constant activations are NHWC -> NCHW
        self.register_buffer(f"t{index}", value.contiguous(), persistent=False)
        self._const.add(index)

    def _value(self, index: int, values: dict[int, torch.Tensor]) -> torch.Tensor:
        if index in self._const:
            return getattr(self, f"t{index}")
        return values[index]

    @staticmethod
    def _broadcast_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Make an NHWC-style trailing-axis operand broadcast against an NCHW rank-4 tensor."""
        if a.dim() == 4 and 0 < b.dim() < 4:
            b = b.reshape(*([1] * (4 - b.dim())), *b.shape).permute(0, 3, 1, 2)
        elif b.dim() == 4 and 0 < a.dim() < 4:
            a = a.reshape(*([1] * (4 - a.dim())), *a.shape).permute(0, 3, 1, 2)
        return a, b

    def tensor_index(self, name: str) -> int:
        """Index of the graph tensor called `name` (for `forward(..., taps=...)`)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"the graph has no tensor named {name!r}") from None

    def forward(self, *inputs: torch.Tensor, taps: list[int] | None = None):
        """Run the graph. `taps`: indices of inner tensors to return too (a feature pyramid for a new
        head): then the result is (outputs, [tapped tensors in NCHW])."""
        values: dict[int, torch.Tensor] = dict(zip(self.graph_inputs, inputs))
        for k, (code, ins, outs, opt) in enumerate(self.ops):
            x = self._value(ins[0], values)
            if k in self.hybrid_ops:
                x = _fake_quantize_per_sample(x, self.hybrid_ops[k])
            if code == OP_CONV_2D or code == OP_DEPTHWISE_CONV_2D:
                w = self._value(ins[1], values)
                bias = self._value(ins[2], values) if len(ins) > 2 and ins[2] >= 0 else None
                dh, dw = opt["dilation_h"], opt["dilation_w"]
                sh, sw = opt["stride_h"], opt["stride_w"]
                padding = (0, 0)
                if opt["padding"] == 0:
                    top, bottom = _same_pads(x.shape[2], w.shape[2], sh, dh)
                    left, right = _same_pads(x.shape[3], w.shape[3], sw, dw)
                    if top == bottom and left == right:
                        padding = (top, left)  # inside the convolution: no padded copy of x (F.pad was ~10% of a pose pass)
                    else:
                        x = F.pad(x, (left, right, top, bottom))
                groups = x.shape[1] if code == OP_DEPTHWISE_CONV_2D else 1
                y = F.conv2d(x, w, bias, stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups)
                y = _activation(y, opt["activation"])
            elif code == OP_MAX_POOL_2D or code == OP_AVERAGE_POOL_2D:
                kh, kw, sh, sw = opt["filter_h"], opt["filter_w"], opt["stride_h"], opt["stride_w"]
                if code == OP_MAX_POOL_2D:
                    if opt["padding"] == 0:
                        x = _pad_same(x, kh, kw, sh, sw, value=float("-inf"))
                    y = F.max_pool2d(x, (kh, kw), (sh, sw))
                else:
                    if opt["padding"] == 0:
                        # TFLite averages over the valid pixels only
                        ones = _pad_same(torch.ones_like(x[:, :1]), kh, kw, sh, sw)
                        x = _pad_same(x, kh, kw, sh, sw)
                        y = F.avg_pool2d(x, (kh, kw), (sh, sw)) / F.avg_pool2d(ones, (kh, kw), (sh, sw))
                    else:
                        y = F.avg_pool2d(x, (kh, kw), (sh, sw))
                y = _activation(y, opt["activation"])
            elif code == OP_ADD or code == OP_MUL:
                a, b = self._broadcast_pair(x, self._value(ins[1], values))
                y = _activation(a + b if code == OP_ADD else a * b, opt["activation"])
            elif code == OP_MEAN:
                axes = [int(a) for a in self._value(ins[1], values).flatten().tolist()]
                rank = self.ranks[ins[0]]
                axes = [a % rank for a in axes]
                if x.dim() == 4:
                    axes = [_NHWC_TO_NCHW_AXIS[a] for a in axes]
                y = x.mean(dim=axes, keepdim=opt["keep_dims"])
                if y.dim() == 3 and x.dim() == 4 and 1 not in axes:
                    y = y.permute(0, 2, 1)  # [N, C, S] -> the NHWC-ordered [N, S, C]
            elif code == OP_SOFTMAX:
                dim = 1 if x.dim() == 4 else -1
                y = torch.softmax(x * opt["beta"], dim=dim)
            elif code == OP_RESHAPE:
                shape = list(self.shapes[outs[0]])
                if x.dim() == 4:
                    x = x.permute(0, 2, 3, 1)
                y = x.reshape(x.shape[0], *shape[1:]) if shape else x.reshape(())
                if y.dim() == 4:
                    y = y.permute(0, 3, 1, 2)
            elif code == OP_FULLY_CONNECTED:
                if opt["weights_format"] != 0:
                    raise UnsupportedTFLiteOp("FULLY_CONNECTED with shuffled weights is not supported")
                w = self._value(ins[1], values)
                bias = self._value(ins[2], values) if len(ins) > 2 and ins[2] >= 0 else None
                if x.dim() == 4:
                    x = x.permute(0, 2, 3, 1)
                lead = x.shape[:-1]
                y = F.linear(x.reshape(-1, w.shape[1]), w, bias)
                if opt["keep_num_dims"]:
                    y = y.reshape(*lead, w.shape[0])
                y = _activation(y, opt["activation"])
            elif code == OP_CONCATENATION:
                parts = [self._value(i, values) for i in ins]
                axis = opt["axis"] % self.ranks[ins[0]]
                if parts[0].dim() == 4:
                    axis = _NHWC_TO_NCHW_AXIS[axis]
                y = _activation(torch.cat(parts, dim=axis), opt["activation"])
            elif code == OP_PAD:
                pads = self._value(ins[1], values).reshape(-1, 2).tolist()
                if x.dim() == 4:
                    pads = [pads[0], pads[3], pads[1], pads[2]]  # NHWC rows -> NCHW order
                flat = [int(v) for pair in reversed(pads) for v in pair]
                y = F.pad(x, flat)
            elif code == OP_RESIZE_BILINEAR:
                size = [int(v) for v in self._value(ins[1], values).flatten().tolist()]
                y = _resize_bilinear(x, size, opt["align_corners"], opt["half_pixel_centers"])
            elif code == OP_DEQUANTIZE:
                y = x.float()
            elif code == OP_RELU:
                y = F.relu(x)
            elif code == OP_RELU6:
                y = x.clamp(0.0, 6.0)
            elif code == OP_LOGISTIC:
                y = torch.sigmoid(x)
            elif code == OP_TANH:
                y = torch.tanh(x)
            else:  # read_tflite already refused anything else
                raise UnsupportedTFLiteOp(f"operator {code}")
            values[outs[0]] = y
        outputs = [self._value(i, values) for i in self.graph_outputs]
        result = outputs[0] if len(outputs) == 1 else tuple(outputs)
        if taps is not None:
            return result, [values[i] for i in taps]
        return result


def load_tflite(path: str | Path, hybrid_activations: str = "int8") -> TFLiteModule:
    """Read a .tflite file and return the equivalent torch module (eval mode, float32, on CPU).

    hybrid_activations: for dynamic-range models (int8 weights, float activations), "int8" rounds each
    hybrid op's input to the int8 grid as the TFLite runtime does (matches it to float rounding);
    "float" runs those ops in float with the dequantized weights.
    """
    return TFLiteModule(read_tflite(path), hybrid_activations).eval()
