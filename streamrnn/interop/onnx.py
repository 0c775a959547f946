"""ONNX interoperability: ``to_onnx`` and ``from_onnx``.

onnx is imported only when one of these functions is called (optional extra
``streamrnn[onnx]``, which also brings onnxruntime to run the exported models).

Layouts: ONNX's recurrent operators take ``W (num_directions, G*H, D)``,
``R (num_directions, G*H, H)`` and ``B (num_directions, 2*G*H)`` (input biases, then
recurrent biases) with gates in the orders LSTM ``i, o, f, c`` and GRU ``z, r, h``; PyTorch
(and streamrnn) use LSTM ``i, f, g, o`` and GRU ``r, z, n``. ``linear_before_reset=1`` is
PyTorch's GRU (``b_hn`` inside the reset product), ``linear_before_reset=0`` (ONNX's default)
``GRU(reset_after=False)`` (the reset gate multiplies h before ``R_h``); peepholes ``P``
(``p_i, p_o, p_f``) are ``LSTM(peepholes=True)``'s ``weight_peephole`` (``p_i, p_f, p_o``).
A bidirectional layer is one operator with
``direction="bidirectional"`` (``num_directions = 2``: index 0 forward, 1 backward, PyTorch's
``_reverse`` parameters); its ``Y`` ``(T, 2, 1, H)`` is transposed to ``(T, 1, 2, H)`` and
reshaped to ``(T, 1, 2H)`` = ``[h_forward | h_backward]`` before the next layer or the head.
"""
from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ._common import (GATES, as_numpy, build_network, check_dtype_arg, direction_suffixes,
                      param_arrays, permute_gates, require)

if TYPE_CHECKING:  # pragma: no cover
    import onnx as _onnx

    from ..network import GRU, LSTM, RNN

__all__ = ["to_onnx", "from_onnx"]

# block i of the ONNX layout is block ORDER[i] of PyTorch's, and back
_TO_ONNX = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,),
            "gru_reset_before": (1, 0, 2), "lstm_peephole": (0, 3, 1, 2)}
_FROM_ONNX = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,),
              "gru_reset_before": (1, 0, 2), "lstm_peephole": (0, 2, 3, 1)}
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN",
       "gru_reset_before": "GRU", "lstm_peephole": "LSTM"}
# LSTM peepholes: ONNX's P (num_directions, 3H) holds p_i, p_o, p_f; streamrnn's
# weight_peephole (3H,) p_i, p_f, p_o (block i of one is block order[i] of the other)
_PEEP_ORDER = (0, 2, 1)
# GRU's linear_before_reset: 1 PyTorch's GRU (streamrnn "gru"), 0 (ONNX's default) the reset
# gate before the recurrent product ("gru_reset_before")
_GRU_LBR = {"gru": 1, "gru_reset_before": 0}
_MIN_OPSET = 14


def to_onnx(net: Union["LSTM", "GRU", "RNN"], path: Union[str, "os.PathLike[str]", None] = None,
            opset: int = 17, *, initial_state: bool = False) -> "_onnx.ModelProto":
    """An ONNX model computing ``net.run`` on a whole sequence, with standard operators.

    One ``LSTM``/``GRU``/``RNN`` operator per layer (default activations; ``RNN`` with
    ``Tanh`` or ``Relu``; ``GRU`` with ``linear_before_reset=1``, or ``0`` for
    ``GRU(reset_after=False)``; ``LSTM(peepholes=True)`` with its peepholes as input
    ``P``), a ``Squeeze`` after each and, with a head, ``MatMul`` + ``Add``. A
    bidirectional network has operators with ``direction="bidirectional"`` whose ``Y``
    ``(T, 2, 1, H)`` goes through ``Transpose`` (perm ``[0, 2, 1, 3]``) and ``Reshape`` to
    ``(T, 1, 2H)`` instead of the ``Squeeze``.

    Graph inputs: ``X`` of shape ``(T, 1, D)`` (T free), and with ``initial_state=True``
    also ``h0`` (and ``c0`` for an LSTM) of shape ``(num_layers * num_directions, 1, H)``
    (PyTorch's layout: layer k's backward direction at ``2k + 1``), whose default values
    (initializers of the same names) are the network's initial state when it has one;
    otherwise the network's initial state (:meth:`~streamrnn.LSTM.set_initial_state`) is
    written as constant ``initial_h``/``initial_c`` initializers ``h0_l{k}``/``c0_l{k}``
    ``(1, 1, H)``, or zeros. Graph outputs: ``Y`` ``(T, 1, O or num_directions * H)``, ``h_n`` and,
    for an LSTM, ``c_n`` ``(num_layers * num_directions, 1, H)``: the final state (to
    continue a stream; of a bidirectional network, the backward directions' state after
    reading the window back to its first sample, like PyTorch's ``h_n``).

    Parameters
    ----------
    net : LSTM, GRU or RNN
        The network to export (any cell, layers, head, bidirectional or not; float32 or
        float64).
    path : str or path-like, optional
        Where to save the model too (written atomically).
    opset : int >= 14
        ONNX opset of the default domain.
    initial_state : bool
        Add the ``h0``/``c0`` inputs.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker.check_model(full_check=True)``; tensor type
        ``float`` or ``double`` as ``net.dtype``. onnxruntime has float32 kernels for these
        operators but no float64 ones (``onnx.reference.ReferenceEvaluator`` runs both).

    Raises
    ------
    ImportError
        onnx is not installed.
    TypeError, ValueError
        ``net`` is not a streamrnn network, or ``opset`` is not an integer the installed
        onnx supports (>= 14).

    See Also
    --------
    from_onnx : The other direction.

    Examples
    --------
    >>> import streamrnn as sr
    >>> net = sr.GRU(3, 8, num_layers=2, output_size=1, seed=0)
    >>> model = sr.to_onnx(net)                                        # doctest: +SKIP
    >>> [n.op_type for n in model.graph.node]                          # doctest: +SKIP
    ['GRU', 'Squeeze', 'GRU', 'Squeeze', 'MatMul', 'Add', 'Concat']
    >>> bi = sr.LSTM(3, 8, bidirectional=True, seed=0)
    >>> [n.op_type for n in sr.to_onnx(bi).graph.node]                 # doctest: +SKIP
    ['LSTM', 'Transpose', 'Reshape', 'Concat', 'Concat']
    """
    from ..network import GRU, LSTM, RNN
    from .._checks import check_int
    if not isinstance(net, (LSTM, GRU, RNN)):
        raise TypeError(f"net must be a streamrnn LSTM, GRU or RNN, got {type(net).__name__}")
    onnx = require("onnx", "onnx")
    helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    opset = check_int(opset, "opset", _MIN_OPSET, onnx.defs.onnx_opset_version())
    cell, L, D, H, O = net.cell, net.num_layers, net.input_size, net.hidden_size, net.output_size
    bi = bool(net.bidirectional)
    nd = 2 if bi else 1
    sfxs = direction_suffixes(bi)
    elem = TP.FLOAT if net.dtype == np.float32 else TP.DOUBLE
    sd = param_arrays(net)
    order = _TO_ONNX[cell]
    nodes: List[Any] = []
    inits: List[Any] = []
    if not bi:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes_1"))
    inputs = [helper.make_tensor_value_info("X", elem, ["T", 1, D])]
    is_lstm = cell in ("lstm", "lstm_peephole")
    initial = net.initial_state   # the network's own initial state, or None (zeros)
    if initial_state:
        inputs.append(helper.make_tensor_value_info("h0", elem, [L * nd, 1, H]))
        if is_lstm:
            inputs.append(helper.make_tensor_value_info("c0", elem, [L * nd, 1, H]))
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes_0"))
        if initial is not None:   # the inputs' default values (initializers of their names)
            for name, arr in zip(("h0", "c0"), initial):
                if arr is not None:
                    inits.append(numpy_helper.from_array(
                        np.ascontiguousarray(arr.reshape(L, 1, H)), name))
    x = "X"
    hs, cs = [], []
    for k in range(L):
        W = np.stack([permute_gates(sd[f"weight_ih_l{k}{d}"], order) for d in sfxs])
        R = np.stack([permute_gates(sd[f"weight_hh_l{k}{d}"], order) for d in sfxs])
        B = np.stack([np.concatenate([permute_gates(sd[f"bias_ih_l{k}{d}"], order),
                                      permute_gates(sd[f"bias_hh_l{k}{d}"], order)])
                      for d in sfxs])
        names = [f"W_l{k}", f"R_l{k}", f"B_l{k}"]
        for name, arr in zip(names, (W, R, B)):
            inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        ins = [x] + names
        if cell == "lstm_peephole":     # P, input 7 (after sequence_lens, initial_h/c)
            P = np.stack([permute_gates(sd[f"weight_peephole_l{k}{d}"], _PEEP_ORDER)
                          for d in sfxs])
            inits.append(numpy_helper.from_array(np.ascontiguousarray(P), f"P_l{k}"))
        if initial_state:
            inits.append(numpy_helper.from_array(np.array([k * nd], np.int64), f"start_l{k}"))
            inits.append(numpy_helper.from_array(np.array([(k + 1) * nd], np.int64),
                                                 f"end_l{k}"))
            states = ["h0"] + (["c0"] if is_lstm else [])
            for s in states:
                nodes.append(helper.make_node("Slice", [s, f"start_l{k}", f"end_l{k}", "axes_0"],
                                              [f"{s}_l{k}"], name=f"slice_{s}_l{k}"))
            ins += ["", f"h0_l{k}"] + ([f"c0_l{k}"] if is_lstm else [])
        elif initial is not None:  # constant initial states (num_directions 1, batch 1, H)
            for name, arr in zip(("h0", "c0"), initial):
                if arr is not None:
                    inits.append(numpy_helper.from_array(
                        np.ascontiguousarray(arr[k].reshape(1, 1, H)), f"{name}_l{k}"))
            ins += ["", f"h0_l{k}"] + ([f"c0_l{k}"] if is_lstm else [])
        if cell == "lstm_peephole":
            ins += [""] * (7 - len(ins)) + [f"P_l{k}"]
        attrs: Dict[str, Any] = {"hidden_size": H}
        if bi:
            attrs["direction"] = "bidirectional"
        if cell in _GRU_LBR:
            attrs["linear_before_reset"] = _GRU_LBR[cell]
        elif not is_lstm:
            attrs["activations"] = ["Tanh" if cell == "rnn_tanh" else "Relu"] * nd
        outs = [f"Y4_l{k}", f"h_l{k}"] + ([f"c_l{k}"] if is_lstm else [])
        nodes.append(helper.make_node(_OP[cell], ins, outs, name=f"{_OP[cell].lower()}_l{k}",
                                      **attrs))
        hs.append(outs[1])
        if is_lstm:
            cs.append(outs[2])
        last = k == L - 1
        x = "Y" if last and O is None else f"Y_l{k}"
        if bi:  # (T, 2, 1, H) -> (T, 1, 2, H) -> (T, 1, 2H) = [h_forward | h_backward]
            if k == 0:
                inits.append(numpy_helper.from_array(np.array([0, 0, 2 * H], np.int64),
                                                     "merged_shape"))
            nodes.append(helper.make_node("Transpose", [f"Y4_l{k}"], [f"Y4t_l{k}"],
                                          name=f"transpose_l{k}", perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"Y4t_l{k}", "merged_shape"], [x],
                                          name=f"reshape_l{k}"))
        else:
            nodes.append(helper.make_node("Squeeze", [f"Y4_l{k}", "axes_1"], [x],
                                          name=f"squeeze_l{k}"))
    if O is not None:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(sd["head.weight"].T),
                                             "head_weight_T"))
        inits.append(numpy_helper.from_array(sd["head.bias"], "head_bias"))
        nodes.append(helper.make_node("MatMul", [x, "head_weight_T"], ["head_matmul"],
                                      name="head_matmul"))
        nodes.append(helper.make_node("Add", ["head_matmul", "head_bias"], ["Y"],
                                      name="head_add"))
    outputs = [helper.make_tensor_value_info("Y", elem, ["T", 1, O or nd * H]),
               helper.make_tensor_value_info("h_n", elem, [L * nd, 1, H])]
    if is_lstm:
        outputs.append(helper.make_tensor_value_info("c_n", elem, [L * nd, 1, H]))
    for src, dst in ((hs, "h_n"), (cs, "c_n")):
        if src:
            nodes.append(helper.make_node("Concat", src, [dst], name=f"concat_{dst}", axis=0))
    graph = helper.make_graph(nodes, f"streamrnn_{cell}", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="streamrnn",
                              ir_version=helper.find_min_ir_version_for(opsets),
                              doc_string=f"streamrnn {net!r}")
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        from ..io import _write_atomic
        _write_atomic(path, model.SerializeToString(), [])
    return model


# Operators allowed around the recurrent ones: shape plumbing (torch.onnx.export adds
# Shape/Gather/Unsqueeze/Concat/Expand to build zero initial states) and the head.
_PLUMBING = {"Squeeze", "Unsqueeze", "Reshape", "Identity", "Transpose", "Constant", "Shape",
             "Gather", "Concat", "Expand", "Slice", "ConstantOfShape", "Cast"}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_ALLOWED_ATTRS = {"LSTM": {"hidden_size", "direction", "activations", "layout", "clip",
                           "activation_alpha", "activation_beta", "input_forget"},
                  "GRU": {"hidden_size", "direction", "activations", "layout", "clip",
                          "activation_alpha", "activation_beta", "linear_before_reset"},
                  "RNN": {"hidden_size", "direction", "activations", "layout", "clip",
                          "activation_alpha", "activation_beta"}}


def _external_names(onnx: Any, model: Any) -> List[str]:
    """The files named by the model's tensors stored as external data (initializers and
    Constant nodes' tensors)."""
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
            tensors.extend(a.tensors)
    names = []
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in t.external_data}.get("location", "?")
            names.append(f"{t.name or '(unnamed)'} in {loc!r}")
    return names


def _load_model(onnx: Any, model_or_path: Any, external_data_dir: Any) -> Any:
    """The ModelProto, its external data read from ``external_data_dir`` only (for a path:
    by default its directory, as ``onnx.load`` does). A model given as bytes or as a
    ModelProto never makes us touch the file system unless ``external_data_dir`` is given;
    the caller's ModelProto is never modified."""
    # (protobuf ships no type stubs: looked up, not imported by name)
    DecodeError = importlib.import_module("google.protobuf.message").DecodeError
    if external_data_dir is not None and not isinstance(external_data_dir,
                                                        (str, os.PathLike)):
        raise TypeError(f"external_data_dir must be a path or None, got "
                        f"{type(external_data_dir).__name__}")
    try:
        if isinstance(model_or_path, onnx.ModelProto):
            model = model_or_path
        elif isinstance(model_or_path, (bytes, bytearray, memoryview)):
            model = onnx.load_from_string(bytes(model_or_path))
        elif isinstance(model_or_path, (str, os.PathLike)):
            path = os.fspath(model_or_path)
            if external_data_dir is None:
                external_data_dir = os.path.dirname(os.path.abspath(path))
            model = onnx.load(path, load_external_data=False)
        else:
            raise TypeError(f"model_or_path must be an onnx.ModelProto, bytes or a path, got "
                            f"{type(model_or_path).__name__}")
    except (DecodeError, RuntimeError) as e:
        raise ValueError(f"from_onnx: not a readable ONNX model: {e}") from None
    external = _external_names(onnx, model)
    if external:
        if external_data_dir is None:
            raise ValueError(f"from_onnx: the model keeps tensors in external files "
                             f"({', '.join(external[:3])}{', ...' if len(external) > 3 else ''}"
                             f"); a model given as bytes or a ModelProto reads no file unless "
                             f"you pass external_data_dir=")
        from onnx.external_data_helper import load_external_data_for_model
        if model is model_or_path:
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            model = copy
        try:
            load_external_data_for_model(model, os.fspath(external_data_dir))
        except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as e:
            raise ValueError(f"from_onnx: cannot read the external data from "
                             f"{os.fspath(external_data_dir)}: {e}") from None
    return model


def _check(onnx: Any, model: Any) -> None:
    """onnx's checker, after streamrnn's own (more specific) checks; its errors as
    ValueError."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as e:
        raise ValueError(f"from_onnx: the model fails onnx's checker: {e}") from None


def _check_dag(graph: Any) -> None:
    """Every name is produced once, and read only after it is produced (the order ONNX
    requires): so every walk back through producers ends, whatever the model. A cycle (an
    ``Identity`` reading its own output) or a name produced twice is refused."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for k, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in known:
                raise ValueError(f"from_onnx: node {node.name or k!r} ({node.op_type}) reads "
                                 f"{name!r} before any node produces it (a cycle, or nodes "
                                 f"not in topological order)")
        for name in node.output:
            if name in known:
                raise ValueError(f"from_onnx: {name!r} is produced twice (by node "
                                 f"{node.name or k!r} and before it)")
            if name:
                known.add(name)


# ---------------------------------------------------------------------------- data flow
# What the importer accepts between layers, described positively: every tensor on the data
# path carries, per axis, the tuple of "factors" it holds in memory order: T (time), B
# (batch), D (the model's input features), N (directions) and H (hidden units); a size-1
# axis holds no factor (N when there is one direction; B when the graph's batch is 1).
# A recurrent operator's Y is (T, N, B, H) (layout=1: (B, T, N, H)); the next operator's X
# must be exactly (T, B, F) (layout=1: (B, T, F)) with F = (N, H), i.e. per time step and
# batch element the directions' h concatenated [forward | backward]; the first operator's X
# must be such a (T, B, D) view of a graph input; the head's MatMul/Gemm must read a tensor
# whose last axis is exactly F and whose other axes hold no feature factor. Only
# Identity, Transpose, Squeeze, Unsqueeze and Reshape may sit on the path; each is followed
# factor by factor (a Reshape may only merge or split adjacent factors of known sizes, or
# copy an axis with 0, or gather the rest with -1), so a graph that swaps or mixes time and
# batch, or interleaves directions and units, is refused instead of imported wrongly.
_PASS_THROUGH = {"Squeeze", "Unsqueeze", "Reshape", "Identity", "Transpose"}
_Axes = List[Tuple[str, ...]]


class _FlowError(ValueError):
    pass


class _Flow:
    """Follows the factors of each axis (see above) through the pass-through operators."""

    def __init__(self, sizes: Dict[str, Optional[int]], consts: Dict[str, np.ndarray],
                 onnx: Any) -> None:
        self.sizes = sizes          # known factor sizes; None: unknown (T, B)
        self.consts = consts
        self.onnx = onnx

    def _ints(self, node: Any, attr: str, index: int) -> Optional[List[int]]:
        for a in node.attribute:
            if a.name == attr:
                return [int(v) for v in a.ints]
        if len(node.input) > index and node.input[index]:
            v = self.consts.get(node.input[index])
            if v is None:
                raise _FlowError(f"{node.op_type} {node.name!r}: its {attr} input is not a "
                                 f"constant")
            return [int(x) for x in np.asarray(v).ravel()]
        return None

    def apply(self, node: Any, axes: _Axes) -> _Axes:
        op, name = node.op_type, f"{node.op_type} {node.name!r}"
        n = len(axes)
        if op == "Identity":
            return list(axes)
        if op == "Transpose":
            perm = self._ints(node, "perm", 99)
            perm = list(range(n))[::-1] if perm is None else perm
            if sorted(perm) != list(range(n)):
                raise _FlowError(f"{name}: perm {perm} for a rank-{n} tensor")
            return [axes[p] for p in perm]
        if op == "Squeeze":
            ax = self._ints(node, "axes", 1)
            if ax is None:
                if any(self._unknown(a) for a in axes):
                    raise _FlowError(f"{name} without axes may remove time or batch axes of "
                                     f"size 1")
                return [a for a in axes if a]
            ax = sorted({a % n for a in ax}) if n else []
            for a in ax:
                if any(self.sizes.get(f) not in (None, 1) for f in axes[a]):
                    raise _FlowError(f"{name} removes axis {a}, which holds {axes[a]}")
            return [a for i, a in enumerate(axes) if i not in ax]
        if op == "Unsqueeze":
            ax = self._ints(node, "axes", 1) or []
            out: List[Optional[Tuple[str, ...]]] = [None] * (n + len(ax))
            for a in ax:
                out[a % len(out)] = ()
            it = iter(axes)
            return [next(it) if o is None else o for o in out]
        if op == "Reshape":
            return self._reshape(node, axes)
        raise _FlowError(f"{name} is not on the data path streamrnn computes")

    def _unknown(self, axis: Tuple[str, ...]) -> bool:
        return any(self.sizes.get(f) is None for f in axis)

    def _reshape(self, node: Any, axes: _Axes) -> _Axes:
        name = f"Reshape {node.name!r}"
        shape = self._ints(node, "", 1)
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        if shape is None:
            raise _FlowError(f"{name} has no shape")
        if allowzero and 0 in shape:
            raise _FlowError(f"{name}: allowzero=1 with a 0 in its shape")
        if shape.count(-1) > 1:
            raise _FlowError(f"{name}: shape {shape} has more than one -1")
        stream = [f for a in axes for f in a]
        out: List[Optional[Tuple[str, ...]]] = [None] * len(shape)

        def take(entry: int, j: int, front: bool) -> Tuple[str, ...]:
            if entry == 1:
                return ()
            if entry == 0:
                if j >= len(axes):
                    raise _FlowError(f"{name}: shape {shape} copies axis {j} of a rank-"
                                     f"{len(axes)} tensor")
                want = axes[j]
                got = stream[:len(want)] if front else stream[len(stream) - len(want):]
                if tuple(got) != want:
                    raise _FlowError(f"{name}: shape {shape} copies axis {j} ({want}) "
                                     f"where the data holds {tuple(got)}")
            else:
                prod, k = 1, 0
                while prod < entry:
                    if k >= len(stream):
                        raise _FlowError(f"{name}: shape {shape} does not fit the data "
                                         f"{axes}")
                    f = stream[k] if front else stream[len(stream) - 1 - k]
                    size = self.sizes.get(f)
                    if size is None:
                        raise _FlowError(f"{name}: shape entry {entry} would merge the "
                                         f"{f} axis, whose length is not fixed")
                    prod *= size
                    k += 1
                if prod != entry:
                    raise _FlowError(f"{name}: shape entry {entry} splits the data's axes "
                                     f"{axes}")
                got = stream[:k] if front else stream[len(stream) - k:]
                want = tuple(got) if front else tuple(got)
            if front:
                del stream[:len(want)]
            else:
                del stream[len(stream) - len(want):]
            return want

        stop = shape.index(-1) if -1 in shape else len(shape)
        for j in range(stop):
            out[j] = take(shape[j], j, True)
        for j in range(len(shape) - 1, stop, -1):
            out[j] = take(shape[j], j, False)
        if stop < len(shape):
            out[stop] = tuple(stream)
            stream = []
        if stream:
            raise _FlowError(f"{name}: shape {shape} does not hold all of the data {axes}")
        return [o if o is not None else () for o in out]


def _path(producer: Dict[str, Any], name: str) -> Tuple[str, List[Any]]:
    """Walk back from ``name`` through pass-through operators: (the tensor reached, the
    operators from it to ``name`` in data-flow order)."""
    path = []
    while name in producer and producer[name].op_type in _PASS_THROUGH:
        node = producer[name]
        path.append(node)
        name = node.input[0]
    return name, path[::-1]


def _np_dtype(onnx: Any, elem: int) -> Optional[np.dtype]:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except Exception:
        return None


def _static_shape(value_info: Any) -> Optional[List[Optional[int]]]:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


_UNROLLED = {"Tanh", "Relu", "Sigmoid"}


def from_onnx(model_or_path: Union["_onnx.ModelProto", str, "os.PathLike[str]", bytes],
              dtype: Any = None, *,
              net: Optional[Union["LSTM", "GRU", "RNN"]] = None,
              external_data_dir: Union[str, "os.PathLike[str]", None] = None,
              inputs: Optional[Mapping[str, Any]] = None,
              time_reversed: bool = False) -> Union["LSTM", "GRU", "RNN"]:
    """A streamrnn network from an ONNX model made of stacked ``LSTM``/``GRU``/``RNN`` ops.

    Reads models written by :func:`to_onnx`, by ``torch.onnx.export`` of
    ``torch.nn.LSTM/GRU/RNN`` (bidirectional or not; optionally followed by
    ``torch.nn.Linear``; both exporters, TorchScript ``dynamo=False`` and dynamo, with or
    without a learned initial state) and single-operator models such as the ONNX backend
    test cases (weights given with ``inputs=``). The accepted graphs, described positively:

    - a chain of recurrent operators of one kind, hidden size and direction, the first
      reading a graph input, each next one reading the previous one's ``Y``, optionally a
      head ``MatMul`` (+ ``Add``) or ``Gemm`` with constant weights on the top ``Y``;
    - between them only ``Identity``, ``Transpose``, ``Squeeze``, ``Unsqueeze`` and
      ``Reshape``, followed axis by axis: each operator's ``X`` must be the previous ``Y``
      as ``(T, batch, [h_forward | h_backward])`` (``layout=1``: batch first), the first
      one's ``X`` such a view of a rank-3 graph input (time, batch and features in any
      order) or of a rank-2 one (time, features: PyTorch's unbatched call), and the head
      must read the features on the last axis. A graph that swaps or merges time and
      batch, or interleaves the directions' units, is refused (ValueError naming the
      operator);
    - ``W``, ``R``, ``B`` constants (initializers, ``Constant`` nodes, or graph inputs whose
      values are given in ``inputs``);
    - ``initial_h``/``initial_c`` absent, graph inputs (runtime values: pass them as the
      State, ``s.h[k] = initial_h[0, 0]``), or constants, also computed from constants and
      the input's shape (PyTorch's learned ``h0`` expanded to the batch): a constant one is
      imported as the network's initial state (:meth:`~streamrnn.LSTM.set_initial_state`;
      one per layer, the same for every batch element);
    - ``sequence_lens`` absent or, as a constant, every length equal to the model's fixed
      window length;
    - ``direction="reverse"`` in every layer only with ``time_reversed=True``.

    A ``GRU`` with ``linear_before_reset=0`` (ONNX's default) becomes
    ``GRU(reset_after=False)``, an ``LSTM`` with peepholes ``P`` ``LSTM(peepholes=True)``.

    Parameters
    ----------
    model_or_path : onnx.ModelProto, bytes, str or path-like
        The model, its serialized bytes, or the path of a ``.onnx`` file.
    dtype : 'float32', 'float64' or None
        None follows the model's weights (float or double).
    net : LSTM, GRU or RNN, optional
        Load into this existing network of the same architecture instead of creating one
        (its initial state becomes the model's); nothing in it changes when anything raises.
    external_data_dir : str, path-like or None
        Where the model's external data files are (tensors stored outside the model). A
        model given as bytes or a ModelProto reads no file unless this is given (its
        external tensors raise ValueError); a path reads them from its own directory by
        default.
    inputs : mapping of str to array, optional
        Values of graph inputs that are not the data: ``W``, ``R``, ``B``, ``P``,
        ``initial_h``, ``initial_c``, ``sequence_lens`` (by the graph input's name), checked
        against the input's declared type and static shape, then used as constants.
    time_reversed : bool
        A model whose every recurrent operator has ``direction="reverse"`` reads its window
        backwards; streamrnn steps forwards, so it raises unless this is True, when the
        returned (forward) network computes the model on the time-reversed window:
        ``Y == net.run(X[::-1])[::-1]`` and ``Y_h`` is the state after ``net.run(X[::-1])``.

    Returns
    -------
    LSTM, GRU or RNN
        A new network (or ``net``) whose ``run`` equals the model's output ``Y[:, b]`` for
        each sequence ``b`` of ``X`` (its time axis first; ``layout=1``: ``Y[b]``), from
        its initial state (or a State holding the model's runtime initial state);
        bidirectional: ``run(X)``, zero initial states.

    Raises
    ------
    ImportError
        onnx is not installed.
    TypeError
        ``model_or_path`` or an ``inputs`` value of an unknown type or dtype; weights that
        are not float/double (without ``dtype``).
    ValueError
        Bytes that are not an ONNX model, a model that fails onnx's checker, external data
        without ``external_data_dir`` (bytes, ModelProto), a cycle or a name produced twice.
        Anything streamrnn cannot compute exactly, named: ``direction="reverse"`` without
        ``time_reversed`` (or mixed with forward layers), forward and bidirectional layers
        mixed, non-default ``activations`` (RNN: ``Tanh`` or ``Relu``; bidirectional: the
        same for both directions), ``activation_alpha/beta``, ``clip``, ``input_forget=1``,
        ``sequence_lens`` with unequal
        lengths or not fixed, a nonzero constant initial state of a bidirectional operator
        or one that differs between batch elements or depends on the input's values,
        operators other than the chain above (PyTorch's dynamo export of ``nn.RNN``, which
        unrolls the cell into ``MatMul``/``Tanh`` nodes, is named as such), a data path
        other than the one described above, weights that are graph inputs without a value
        in ``inputs``, ``inputs`` that are not graph inputs or not read, unused
        floating-point initializers, mismatched shapes.

    See Also
    --------
    to_onnx : The other direction.

    Examples
    --------
    >>> import streamrnn as sr
    >>> net = sr.LSTM(2, 4, num_layers=2, seed=0)
    >>> back = sr.from_onnx(sr.to_onnx(net))                           # doctest: +SKIP
    >>> bool((back.parameters() == net.parameters()).all())            # doctest: +SKIP
    True
    """
    onnx = require("onnx", "onnx")
    from onnx import numpy_helper
    if not isinstance(time_reversed, (bool, np.bool_)):
        raise TypeError(f"time_reversed must be True or False, got "
                        f"{type(time_reversed).__name__}")
    model = _load_model(onnx, model_or_path, external_data_dir)
    graph = model.graph
    _check_dag(graph)
    consts: Dict[str, np.ndarray] = {}
    for t in graph.initializer:
        consts[t.name] = numpy_helper.to_array(t)
    floats = {n for n, a in consts.items() if a.dtype.kind == "f"}
    declared = {i.name: i for i in graph.input}
    runtime = [n for n in declared if n not in consts]   # graph inputs without a value
    given: Dict[str, np.ndarray] = {}
    if inputs is not None:
        if not isinstance(inputs, Mapping):
            raise TypeError(f"inputs must be a mapping of graph input names to arrays, got "
                            f"{type(inputs).__name__}")
        for name, value in inputs.items():
            if name not in declared:
                raise ValueError(f"from_onnx: inputs[{name!r}]: the graph has no input of "
                                 f"that name (its inputs: {list(declared)})")
            try:
                arr = np.array(as_numpy(value))
            except Exception:
                raise TypeError(f"from_onnx: inputs[{name!r}] must be an array, got "
                                f"{type(value).__name__}") from None
            vi = declared[name]
            want = _np_dtype(onnx, vi.type.tensor_type.elem_type)
            if want is not None and arr.dtype != want:
                raise TypeError(f"from_onnx: inputs[{name!r}] must have dtype {want} (the "
                                f"graph input's type), got {arr.dtype}")
            shape = _static_shape(vi)
            if shape is not None and (len(shape) != arr.ndim or any(
                    d is not None and d != s for d, s in zip(shape, arr.shape))):
                shown = ["?" if d is None else d for d in shape]
                raise ValueError(f"from_onnx: inputs[{name!r}] must have shape {shown} (the "
                                 f"graph input's), got {arr.shape}")
            given[name] = arr
            consts[name] = arr
            if arr.dtype.kind == "f":
                floats.add(name)
    runtime = [n for n in runtime if n not in given]
    producer: Dict[str, Any] = {}
    rec: List[Any] = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"from_onnx: operator {node.domain}.{node.op_type} is not "
                             f"supported")
        for o in node.output:
            producer[o] = node
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name in ("value", "value_float", "value_floats", "value_int",
                              "value_ints"):
                    v = onnx.helper.get_attribute_value(a)
                    arr = numpy_helper.to_array(v) if a.name == "value" else np.array(
                        v, np.float32 if "float" in a.name else np.int64)
                    consts[node.output[0]] = arr
                    if arr.dtype.kind == "f":
                        floats.add(node.output[0])
        if node.op_type in ("LSTM", "GRU", "RNN"):
            rec.append(node)
    if not rec:
        ops = {n.op_type for n in graph.node}
        if ops & _UNROLLED and ops & {"MatMul", "Gemm"}:
            raise ValueError(f"from_onnx: the model has no LSTM, GRU or RNN operator but "
                             f"{sorted(ops & _UNROLLED)} and MatMul nodes: a recurrent cell "
                             f"unrolled over a fixed number of steps (PyTorch's default "
                             f"dynamo export of nn.RNN writes this), which streamrnn cannot "
                             f"read back as a cell; export with torch.onnx.export(..., "
                             f"dynamo=False), or import the PyTorch module itself with "
                             f"sr.from_torch(module)")
        raise ValueError("from_onnx: the model has no LSTM, GRU or RNN operator")
    kinds = {n.op_type for n in rec}
    if len(kinds) > 1:
        raise ValueError(f"from_onnx: mixed recurrent operators {sorted(kinds)}; streamrnn "
                         f"stacks layers of one kind")
    op = rec[0].op_type
    used: set = set()

    def ancestors(name: str) -> set:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n and n not in seen:
                seen.add(n)
                if n in producer:
                    todo.extend(producer[n].input)
        return seen

    # tensors whose values are computed (folded) rather than followed: their producers may
    # be any standard operator (evaluated below with onnx's reference evaluator)
    folded: set = set()
    for node in rec:
        for name in list(node.input)[4:8]:
            folded |= ancestors(name)
    for node in graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN") or any(o in folded for o in node.output):
            continue
        if node.op_type not in _PLUMBING | {"MatMul", "Add", "Gemm"}:
            raise ValueError(f"from_onnx: operator {node.op_type} ({node.name!r}) is not "
                             f"supported; expected stacked LSTM/GRU/RNN operators and an "
                             f"optional linear head")

    def const(name: str, what: str) -> np.ndarray:
        what = what[len("from_onnx: "):] if what.startswith("from_onnx: ") else what
        while name not in consts and name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        if name not in consts:
            if name in runtime:
                raise ValueError(f"from_onnx: {what} ({name!r}) is a graph input, not a "
                                 f"constant: pass its value with inputs={{{name!r}: array}}")
            raise ValueError(f"from_onnx: {what} ({name!r}) must be a constant (an "
                             f"initializer or a Constant node)")
        used.add(name)
        return consts[name]

    # -- the data path, axis by axis (see _Flow)
    H0 = None
    for node in rec:
        ins = list(node.input) + [""] * (3 - len(node.input))
        R0 = consts.get(ins[2])
        if R0 is not None and R0.ndim == 3:
            H0 = R0.shape[2]
            break
    sizes: Dict[str, Optional[int]] = {"T": None, "B": None, "D": None, "H": H0}
    flow = _Flow(sizes, consts, onnx)

    def follow(src_axes: _Axes, path: List[Any], where: str) -> _Axes:
        axes = drop(src_axes)
        for node in path:
            try:
                axes = drop(flow.apply(node, axes))
            except _FlowError as e:
                raise ValueError(f"{where}: {e}: the data between the layers must stay "
                                 f"(time, batch, features) per step, as streamrnn computes "
                                 f"it") from None
        return axes

    def drop(axes: "List[Tuple[str, ...]]") -> _Axes:
        """Remove factors of size 1 (N with one direction, B with batch 1)."""
        return [tuple(f for f in a if sizes.get(f) != 1) for a in axes]

    params: Dict[str, np.ndarray] = {}
    cell = ""
    D = H = 0
    prev_y: Optional[str] = None
    prev_axes: _Axes = []
    wdtypes = set()
    bidirectional = False
    directions = set()
    init_h: List[Optional[np.ndarray]] = []
    init_c: List[Optional[np.ndarray]] = []
    store: List[Optional[np.ndarray]]
    init_runtime = False
    data_input = ""
    t_static: Optional[int] = None
    for k, node in enumerate(rec):
        where = f"from_onnx: {op} {node.name or k!r}"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        unknown = set(attrs) - _ALLOWED_ATTRS[op]
        if unknown:
            raise ValueError(f"{where}: unsupported attributes {sorted(unknown)}")
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction not in ("forward", "bidirectional", "reverse"):
            raise ValueError(f"{where}: direction={direction!r} is not supported (forward, "
                             f"reverse or bidirectional)")
        directions.add(direction)
        if len(directions) > 1:
            raise ValueError(f"{where}: direction={direction!r} differs from layer 0's "
                             f"({rec[0].name!r}); a streamrnn network reads every layer in "
                             f"one direction (or both, bidirectional)")
        if direction == "reverse" and not time_reversed:
            raise ValueError(f"{where}: direction='reverse' reads the window backwards, and "
                             f"streamrnn steps forwards; pass time_reversed=True to import "
                             f"it as the forward network that computes it on the reversed "
                             f"window: Y == net.run(X[::-1])[::-1]")
        bidirectional = direction == "bidirectional"
        nd = 2 if bidirectional else 1
        sizes["N"] = nd
        acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
        if acts and nd == 2:  # one list per direction, forward first
            half = len(acts) // 2
            if len(acts) % 2 or acts[:half] != acts[half:]:
                raise ValueError(f"{where}: activations={acts} differ between the directions "
                                 f"(streamrnn's directions share the cell's activations)")
            acts = acts[:half]
        if op == "RNN":
            acts = acts or ["Tanh"]
            if acts not in (["Tanh"], ["Relu"]):
                raise ValueError(f"{where}: activations={acts} are not supported (Tanh or "
                                 f"Relu)")
            this_cell = "rnn_" + acts[0].lower()
        else:
            if acts and acts != _DEFAULT_ACTS[op]:
                raise ValueError(f"{where}: activations={acts} are not supported (only the "
                                 f"default {_DEFAULT_ACTS[op]})")
            this_cell = op.lower()
            if op == "GRU":
                lbr = attrs.get("linear_before_reset", 0)
                if lbr not in (0, 1):
                    raise ValueError(f"{where}: linear_before_reset={lbr!r} (0 or 1)")
                this_cell = "gru" if lbr == 1 else "gru_reset_before"
            if op == "LSTM" and len(node.input) > 7 and node.input[7]:
                this_cell = "lstm_peephole"    # peepholes P
        for a in ("activation_alpha", "activation_beta", "clip"):
            if a in attrs:
                raise ValueError(f"{where}: attribute {a} is not supported")
        if attrs.get("input_forget", 0):
            raise ValueError(f"{where}: input_forget=1 (coupled input and forget gates) is "
                             f"not supported")
        if cell and this_cell != cell:
            raise ValueError(f"{where}: layers of different kinds ({cell}, {this_cell})")
        cell = this_cell
        layout = int(attrs.get("layout", 0))
        if layout not in (0, 1):
            raise ValueError(f"{where}: layout={layout} is not 0 or 1")
        ins = list(node.input) + [""] * (8 - len(node.input))
        W = const(ins[1], f"{where} W")
        R = const(ins[2], f"{where} R")
        G = GATES[cell]
        if W.ndim != 3 or R.ndim != 3 or W.shape[0] != nd or R.shape[0] != nd:
            raise ValueError(f"{where}: W and R must have shape ({nd}, G*H, D) and "
                             f"({nd}, G*H, H) (direction={direction!r}), got {W.shape} and "
                             f"{R.shape}")
        h = R.shape[2]
        if "hidden_size" in attrs and attrs["hidden_size"] != h:
            raise ValueError(f"{where}: hidden_size={attrs['hidden_size']} but R has shape "
                             f"{R.shape}")
        if R.shape[1] != G * h or W.shape[1] != G * h:
            raise ValueError(f"{where}: W {W.shape} and R {R.shape} do not hold {G} gates of "
                             f"hidden size {h}")
        want_x = (lambda f: [("B",), ("T",), f]) if layout else (lambda f: [("T",), ("B",), f])
        if k == 0:
            D, H = W.shape[2], h
            sizes["D"], sizes["H"] = D, H
            src, path = _path(producer, ins[0])
            if src not in runtime:
                raise ValueError(f"{where}: input X must come from a graph input")
            data_input = src
            shape = _static_shape(declared[src])
            if shape is None or len(shape) not in (2, 3):
                raise ValueError(f"{where}: the graph input {src!r} must be a rank-3 tensor "
                                 f"(time, batch, features in some order) or rank 2 (time, "
                                 f"features: one sequence), got shape {shape}")
            found = None
            errors = []
            import itertools
            names = ("T", "B", "D") if len(shape) == 3 else ("T", "D")
            for perm in itertools.permutations(names):
                t_size = shape[perm.index("T")]
                b_size = shape[perm.index("B")] if "B" in perm else 1
                d_size = shape[perm.index("D")]
                if d_size is not None and d_size != D:
                    continue
                sizes["B"], sizes["T"] = b_size, t_size   # static sizes, or None
                try:
                    got = drop(follow([(f,) for f in perm], path, where))
                except ValueError as e:
                    errors.append(str(e))
                    continue
                if got == drop(want_x(("D",))):
                    found = (perm, t_size, b_size)
                    break
            if found is None:
                raise ValueError(errors[0] if errors else
                                 f"{where}: its input X is not a (time, batch, {D}) view of "
                                 f"the graph input {src!r} (shape {shape}, layout={layout})")
            perm, t_static, b_size = found
            sizes["B"], sizes["T"] = b_size, t_static
        else:
            if h != H:
                raise ValueError(f"{where}: hidden size {h} differs from layer 0's {H}")
            if W.shape[2] != nd * H:
                raise ValueError(f"{where}: W {W.shape} must read the previous layer's h "
                                 f"(input size {nd * H})")
            src, path = _path(producer, ins[0])
            if src != prev_y:
                raise ValueError(f"{where}: input X is not the previous layer's output Y")
            got = drop(follow(prev_axes, path, where))
            if got != drop(want_x(("N", "H"))):
                raise ValueError(f"{where}: its input X holds the previous layer's Y as axes "
                                 f"{got}, not (time, batch, [h_forward | h_backward]) as "
                                 f"{'(B, T, F)' if layout else '(T, B, F)'} (layout={layout})")
        if ins[3]:
            B = const(ins[3], f"{where} B")
            if B.shape != (nd, 2 * G * H):
                raise ValueError(f"{where}: B must have shape ({nd}, {2 * G * H}), got "
                                 f"{B.shape}")
        else:
            B = np.zeros((nd, 2 * G * H), W.dtype)
        order = _FROM_ONNX[cell]
        for r, d in enumerate(direction_suffixes(bidirectional)):
            params[f"weight_ih_l{k}{d}"] = permute_gates(W[r], order)
            params[f"weight_hh_l{k}{d}"] = permute_gates(R[r], order)
            params[f"bias_ih_l{k}{d}"] = permute_gates(B[r, :G * H], order)
            params[f"bias_hh_l{k}{d}"] = permute_gates(B[r, G * H:], order)
        if cell == "lstm_peephole":
            P = const(ins[7], f"{where} P")
            if P.shape != (nd, 3 * H):
                raise ValueError(f"{where}: P must have shape ({nd}, {3 * H}), got {P.shape}")
            for r, d in enumerate(direction_suffixes(bidirectional)):
                params[f"weight_peephole_l{k}{d}"] = permute_gates(P[r], _PEEP_ORDER)
            wdtypes |= {P.dtype}
        wdtypes |= {W.dtype, R.dtype, B.dtype}
        # sequence_lens: only as a constant of equal lengths, the window's fixed length
        if ins[4]:
            lens_values = _value(onnx, model, producer, consts, runtime, data_input, ins[4],
                                 f"{where} sequence_lens")
            if lens_values is None:
                raise ValueError(f"{where}: sequence_lens is a graph input (runtime lengths): "
                                 f"streamrnn runs each sequence for its own length; give "
                                 f"its value with inputs={{{ins[4]!r}: lengths}} or run "
                                 f"net.run(X[:length_b, b]) per sequence")
            lens = np.concatenate([np.asarray(v).ravel() for v in lens_values])
            if lens.size and (lens != lens[0]).any():
                raise ValueError(f"{where}: sequence_lens {lens.tolist()} are unequal: one "
                                 f"network computes each sequence b exactly as "
                                 f"net.run(X[:sequence_lens[b], b]) (the model pads the rest "
                                 f"of Y with zeros); run the sequences one by one")
            if lens.size and (t_static is None or int(lens[0]) != t_static):
                fixed = t_static if t_static else "not fixed"
                raise ValueError(f"{where}: sequence_lens {lens.tolist()} must equal the "
                                 f"window length T of the input ({fixed}): on longer windows "
                                 f"the model pads Y with zeros, which a stream does not")
            used.add(ins[4])
        # initial states: constants become the network's initial state
        for idx, store, what in ((5, init_h, "initial_h"), (6, init_c, "initial_c")):
            if not ins[idx]:
                store.append(None)
                continue
            vals = _value(onnx, model, producer, consts, runtime, data_input, ins[idx],
                          f"{where} {what}")
            if vals is None:
                init_runtime = True
                store.append(None)
                continue
            rows = []
            for v in vals:
                v = np.asarray(v)
                if v.dtype.kind != "f" or v.ndim != 3:
                    raise ValueError(f"{where}: {what} must be a float tensor "
                                     f"(num_directions, batch, {H}), got {v.dtype} {v.shape}")
                if layout:
                    v = v.transpose(1, 0, 2)
                if v.shape[0] != nd or v.shape[2] != H or v.shape[1] < 1:
                    raise ValueError(f"{where}: {what} must have shape ({nd}, batch, {H}) "
                                     f"(layout={layout}: batch first), got {v.shape}")
                if not np.all(np.isfinite(v)):
                    raise ValueError(f"{where}: {what} holds NaN or inf")
                if (v != v[:, :1]).any():
                    raise ValueError(f"{where}: {what} differs between the batch elements; "
                                     f"a streamrnn network has one initial state (set each "
                                     f"stream's own with state.h[...] = ...)")
                rows.append(v[:, 0])
            if any(not np.array_equal(r, rows[0]) for r in rows):
                raise ValueError(f"{where}: {what} changes with the input's length or batch "
                                 f"size; streamrnn's initial state is a constant")
            if nd == 2 and rows[0].any():
                raise ValueError(f"{where}: a nonzero constant {what} of a bidirectional "
                                 f"operator: a bidirectional streamrnn network runs each "
                                 f"window from zero states")
            store.append(rows[0][0])
        if not node.output or not node.output[0]:
            if k < len(rec) - 1:
                raise ValueError(f"{where}: output Y is not produced")
            prev_y = None
        else:
            prev_y = node.output[0]
        prev_axes = [("B",), ("T",), ("N",), ("H",)] if layout else \
            [("T",), ("N",), ("B",), ("H",)]
    consts_init = [a for a in init_h + init_c if a is not None]
    if init_runtime and any(a.any() for a in consts_init):
        raise ValueError("from_onnx: some initial states are graph inputs and others nonzero "
                         "constants; give the inputs' values with inputs= or make them all "
                         "graph inputs")
    # the head: MatMul (+ Add) or Gemm reading the top layer's Y
    heads = [n for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    adds = [n for n in graph.node if n.op_type == "Add"]
    O = None
    top = prev_y
    if len(heads) > 1:
        raise ValueError(f"from_onnx: {len(heads)} MatMul/Gemm operators; at most one head")
    if heads:
        hn = heads[0]
        src, path = _path(producer, hn.input[0])
        if prev_y is None or src != prev_y:
            raise ValueError(f"from_onnx: {hn.op_type} {hn.name!r} does not read the top "
                             f"recurrent layer's output Y")
        got = drop(follow(prev_axes, path, f"from_onnx: the head {hn.op_type} {hn.name!r}"))
        feat = drop([("N", "H")])[0]
        if not got or got[-1] != feat or any(f in ("N", "H") for a in got[:-1] for f in a):
            raise ValueError(f"from_onnx: the head {hn.op_type} {hn.name!r} reads the top Y "
                             f"as axes {got}: its last axis must hold the features "
                             f"[h_forward | h_backward] of one step")
        Wt = const(hn.input[1], "head weight")
        bias: Optional[np.ndarray] = None
        top = hn.output[0]
        if hn.op_type == "Gemm":
            ga = {a.name: onnx.helper.get_attribute_value(a) for a in hn.attribute}
            if ga.get("alpha", 1.0) != 1.0 or ga.get("beta", 1.0) != 1.0 or ga.get("transA", 0):
                raise ValueError(f"from_onnx: Gemm {hn.name!r} with alpha/beta != 1 or "
                                 f"transA is not supported")
            if ga.get("transB", 0):
                Wt = Wt.T
            if len(hn.input) > 2 and hn.input[2]:
                bias = const(hn.input[2], "head bias")
            if adds:
                raise ValueError("from_onnx: an Add besides the Gemm head is not supported")
        else:
            if len(adds) > 1:
                raise ValueError(f"from_onnx: {len(adds)} Add operators; at most one (the "
                                 f"head's bias)")
            if adds:
                a = adds[0]
                if hn.output[0] not in a.input:
                    raise ValueError(f"from_onnx: Add {a.name!r} does not add to the head's "
                                     f"MatMul")
                other = [i for i in a.input if i != hn.output[0]]
                if len(other) != 1:
                    raise ValueError(f"from_onnx: Add {a.name!r} must add a bias vector")
                bias = const(other[0], "head bias")
                top = a.output[0]
        width = (2 if bidirectional else 1) * H
        if Wt.ndim != 2 or Wt.shape[0] != width:
            raise ValueError(f"from_onnx: head weight must have shape ({width}, O), got "
                             f"{Wt.shape}")
        O = Wt.shape[1]
        if bias is None:
            bias = np.zeros(O, Wt.dtype)
        if bias.size != O or any(d != 1 for d in bias.shape[:-1]):
            raise ValueError(f"from_onnx: head bias must have shape ({O},), got {bias.shape}")
        params["head.weight"] = np.ascontiguousarray(Wt.T)
        params["head.bias"] = bias.reshape(O)
        wdtypes |= {Wt.dtype, bias.dtype}
    elif adds:
        raise ValueError("from_onnx: an Add without a head MatMul is not supported")
    # what the graph returns first must be the head's (or the top layer's) output
    if top is not None and graph.output:
        out_src, out_path = _path(producer, graph.output[0].name)
        if out_src != top and out_src not in {o for n in rec for o in list(n.output)[1:]}:
            raise ValueError(f"from_onnx: the graph's first output "
                             f"{graph.output[0].name!r} is not the "
                             f"{'head' if heads else 'top layer'}'s output")
    for node in rec:  # W, R, B, P and the folded inputs are read
        for name in list(node.input)[4:8]:
            used.update(ancestors(name))
    unused = sorted(floats - used)
    if unused:
        raise ValueError(f"from_onnx: unused floating-point initializers {unused}")
    unread = sorted(set(given) - used)
    if unread:
        raise ValueError(f"from_onnx: inputs {unread} are not read by the recurrent "
                         f"operators or the head")
    if len(wdtypes) > 1 and dtype is None and net is None:
        raise TypeError(f"from_onnx: weights of mixed dtypes {sorted(map(str, wdtypes))}; pass "
                        f"dtype='float32' or 'float64'")
    _check(onnx, model)
    initial = None
    if any(a is not None and a.any() for a in consts_init):
        L = len(rec)
        hs = np.stack([np.zeros(H) if a is None else a for a in init_h])
        cs = np.stack([np.zeros(H) if a is None else a for a in init_c]) \
            if cell.startswith("lstm") else None
        initial = (hs, cs)
        assert hs.shape == (L, H)
    if initial is not None:
        # checked as set_initial_state checks it (finite, fits the dtype) before any weight is
        # loaded into net: nothing changes when it raises
        from .. import network as _network
        target = check_dtype_arg(dtype) or (net.dtype if net is not None else
                                            np.dtype(next(iter(wdtypes))))
        probe = (_network.LSTM if cell.startswith("lstm") else _network.GRU
                 if cell.startswith("gru") else _network.RNN)(
            1, H, len(rec), dtype=target.name if target.name in ("float32", "float64")
            else "float64")
        try:
            probe.set_initial_state(*initial)
        except (TypeError, ValueError) as e:
            raise ValueError(f"from_onnx: the model's constant initial state: {e}") from None
    out = build_network(cell, D, H, len(rec), O, dtype, next(iter(wdtypes)), params,
                        net=net, source="from_onnx", bidirectional=bidirectional)
    if initial is None:
        out.set_initial_state(None, None)
    else:
        out.set_initial_state(*initial)
    return out


# Operators a computed initial state (or sequence_lens) may be made of: what the PyTorch
# exporters write to expand a learned h0 to the batch (shape arithmetic, broadcasting), and
# the recurrent operators whose outputs' shapes it may read. No loops, no random numbers;
# the two operators that make tensors of a computed size are bounded (_MAX_FOLD elements),
# so a hostile model cannot make the import allocate without limit.
_FOLDABLE = {"Identity", "Constant", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze",
             "Concat", "Reshape", "Flatten", "ConstantOfShape", "Expand", "Slice", "Cast",
             "CastLike", "Mul", "Add", "Sub", "Neg", "Equal", "Where", "Transpose", "LSTM",
             "GRU", "RNN"}
_MAX_FOLD = 1 << 22


def _bounded_ops() -> List[Any]:
    """onnx's reference ConstantOfShape and Expand, refusing results beyond _MAX_FOLD."""
    from onnx.reference.ops.op_constant_of_shape import ConstantOfShape
    from onnx.reference.ops.op_expand import Expand

    def check(shape: Any, what: str) -> None:
        dims = [int(d) for d in np.asarray(shape).ravel()]
        n = 1
        for d in dims:
            n *= max(d, 0)
        if n > _MAX_FOLD:
            raise ValueError(f"{what} of shape {dims} ({n} elements) is beyond what an "
                             f"initial state needs")

    class BoundedConstantOfShape(ConstantOfShape):
        op_domain = ""

        def _run(self, data: Any, value: Any = None) -> Any:
            check(data, "ConstantOfShape")
            return super()._run(data, value)

    class BoundedExpand(Expand):
        op_domain = ""

        def _run(self, data: Any, shape: Any) -> Any:
            out = np.broadcast_shapes(np.shape(data), tuple(int(d) for d in
                                                             np.asarray(shape).ravel()))
            check(out, "Expand")
            return super()._run(data, shape)

    BoundedConstantOfShape.__name__ = "ConstantOfShape"
    BoundedExpand.__name__ = "Expand"
    return [BoundedConstantOfShape, BoundedExpand]


def _value(onnx: Any, model: Any, producer: Dict[str, Any], consts: Dict[str, np.ndarray],
           runtime: List[str], data_input: str, name: str,
           what: str) -> Optional[List[np.ndarray]]:
    """The constant values of tensor ``name`` (an initializer, a Constant, a given input, or
    computed from those and the data input's *shape*), or None when it depends on another
    graph input (a runtime value). Computed with onnx's reference evaluator for two probe
    inputs of different sizes and values: a result that depends on the data's values
    raises ValueError; its values for the two sizes are returned (one value for a
    constant)."""
    what = what[len("from_onnx: "):] if what.startswith("from_onnx: ") else what
    seen: set = set()
    todo = [name]
    nodes_needed: set = set()
    while todo:
        n = todo.pop()
        if not n or n in seen:
            continue
        seen.add(n)
        if n in consts:
            continue
        if n in producer:
            nodes_needed.update(o for o in producer[n].output if o)
            todo.extend(producer[n].input)
    if name in consts:
        return [consts[name]]
    graph = model.graph
    if any(n in runtime and n != data_input for n in seen):
        return None
    if name not in producer:
        return None
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    nodes = []
    for n in graph.node:
        if any(o in nodes_needed for o in n.output):
            if n.op_type in ("LSTM", "GRU", "RNN"):
                # only its output's shape can matter here (a dependence on the data's values
                # is caught by the probes below): default activations, which the reference
                # evaluator implements for every operator
                c = helper.make_node(n.op_type, list(n.input), list(n.output), name=n.name)
                c.attribute.extend(a for a in n.attribute if a.name in (
                    "hidden_size", "direction", "layout", "linear_before_reset"))
                n = c
            nodes.append(n)
    inits = [numpy_helper.from_array(np.asarray(consts[n]), n) for n in seen
             if n in consts and n not in {o for nd in nodes for o in nd.output}]
    ins = [i for i in graph.input if i.name == data_input and data_input in seen]
    sub = helper.make_graph(nodes, "fold", ins, [helper.make_empty_tensor_value_info(name)],
                            initializer=inits)
    sub_model = helper.make_model(sub, opset_imports=list(model.opset_import),
                                  ir_version=model.ir_version)
    other = sorted({n.op_type for n in nodes} - _FOLDABLE)
    if other:
        raise ValueError(f"from_onnx: {what} ({name!r}) is computed with {other}; streamrnn "
                         f"reads constant initial states made of constants, shape arithmetic "
                         f"and broadcasting ({', '.join(sorted(_FOLDABLE))})")
    results: List[np.ndarray] = []
    try:
        ev: Any = ReferenceEvaluator(sub_model, new_ops=_bounded_ops())
        probes: List[Optional[np.ndarray]] = [None]
        if ins:
            shape = _static_shape(ins[0]) or []
            elem = _np_dtype(onnx, ins[0].type.tensor_type.elem_type) or np.float32
            rng = np.random.default_rng(0)
            probes = []
            for fill in (2, 3):
                shp = [d if d is not None else fill for d in shape]
                if int(np.prod(shp)) > _MAX_FOLD:
                    raise ValueError(f"the input {data_input!r} has a fixed shape {shp} "
                                     f"beyond what the check can evaluate")
                probes.append(rng.standard_normal(shp).astype(elem))
                probes.append(rng.standard_normal(shp).astype(elem))
        for p in probes:
            feeds: Dict[str, np.ndarray] = {} if p is None else {data_input: p}
            results.append(np.asarray(ev.run(None, feeds)[0]))
    except Exception as e:
        raise ValueError(f"from_onnx: {what} ({name!r}) cannot be computed from the model's "
                         f"constants: {type(e).__name__}: {e}") from None
    if len(results) > 1:
        for a, b in ((results[0], results[1]), (results[2], results[3])):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ValueError(f"from_onnx: {what} ({name!r}) depends on the values of the "
                                 f"input {data_input!r}; streamrnn's initial state is a "
                                 f"constant")
        return [results[0], results[2]]
    return results
