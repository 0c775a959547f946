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
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import numpy as np

from ._common import (GATES, build_network, direction_suffixes, param_arrays, permute_gates,
                      require)

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
    (PyTorch's layout: layer k's backward direction at ``2k + 1``; otherwise the initial
    state is zero). Graph outputs: ``Y`` ``(T, 1, O or num_directions * H)``, ``h_n`` and,
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
    if initial_state:
        inputs.append(helper.make_tensor_value_info("h0", elem, [L * nd, 1, H]))
        if is_lstm:
            inputs.append(helper.make_tensor_value_info("c0", elem, [L * nd, 1, H]))
        inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes_0"))
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
_PASS_THROUGH = {"Squeeze", "Unsqueeze", "Reshape", "Identity", "Transpose"}
_PLUMBING = _PASS_THROUGH | {"Constant", "Shape", "Gather", "Concat", "Expand", "Slice",
                            "ConstantOfShape", "Cast"}
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


def from_onnx(model_or_path: Union["_onnx.ModelProto", str, "os.PathLike[str]", bytes],
              dtype: Any = None, *,
              net: Optional[Union["LSTM", "GRU", "RNN"]] = None,
              external_data_dir: Union[str, "os.PathLike[str]", None] = None
              ) -> Union["LSTM", "GRU", "RNN"]:
    """A streamrnn network from an ONNX model made of stacked ``LSTM``/``GRU``/``RNN`` ops.

    Reads models written by :func:`to_onnx` and by ``torch.onnx.export`` of
    ``torch.nn.LSTM/GRU/RNN`` (bidirectional or not; optionally followed by
    ``torch.nn.Linear``; the TorchScript exporter, ``dynamo=False``). The model must be a
    chain: the first recurrent operator reads a graph input, each next one reads the previous
    one's ``Y`` (through ``Squeeze``/``Reshape``/``Transpose``/``Identity`` only), all of the
    same kind, hidden size and direction; optionally a head ``MatMul`` (+ ``Add``) or
    ``Gemm`` with constant weights on the top layer's output. Operators with
    ``direction="bidirectional"`` give a bidirectional network; their ``Y``
    ``(T, 2, batch, H)`` must reach the next layer or the head through ``Transpose``
    operators that keep the time, direction and hidden axes in order, then a ``Reshape``
    with a constant shape ending in ``-1`` or ``2H`` (PyTorch's and :func:`to_onnx`'s
    ``[h_forward | h_backward]``). Initial states given to the operators are runtime inputs
    and are not imported. A ``GRU`` with ``linear_before_reset=0`` (ONNX's default) becomes
    ``GRU(reset_after=False)``, an ``LSTM`` with peepholes ``P`` ``LSTM(peepholes=True)``.

    Parameters
    ----------
    model_or_path : onnx.ModelProto, bytes, str or path-like
        The model, its serialized bytes, or the path of a ``.onnx`` file.
    dtype : 'float32', 'float64' or None
        None follows the model's weights (float or double).
    net : LSTM, GRU or RNN, optional
        Load into this existing network of the same architecture instead of creating one;
        nothing in it changes when anything raises.
    external_data_dir : str, path-like or None
        Where the model's external data files are (tensors stored outside the model). A
        model given as bytes or a ModelProto reads no file unless this is given (its
        external tensors raise ValueError); a path reads them from its own directory by
        default.

    Returns
    -------
    LSTM, GRU or RNN
        A new network (or ``net``) whose ``run`` equals the model's output ``Y[:, 0]`` for
        ``X[:, None, :]`` and a zero (or the same) initial state (bidirectional: ``run(X)``,
        zero initial states).

    Raises
    ------
    ImportError
        onnx is not installed.
    TypeError
        ``model_or_path`` of an unknown type; weights that are not float/double (without
        ``dtype``).
    ValueError
        Bytes that are not an ONNX model, a model that fails onnx's checker, external data
        without ``external_data_dir`` (bytes, ModelProto), a cycle or a name produced twice.
        Anything streamrnn cannot represent exactly: ``direction="reverse"`` (a single
        backward direction), forward and bidirectional layers mixed, non-default
        ``activations`` (RNN: ``Tanh`` or ``Relu``; bidirectional: the same for both
        directions), ``activation_alpha/beta``, ``clip``, ``input_forget=1``,
        ``sequence_lens``, operators other than
        the chain above, weights that are not constants, unused floating-point
        initializers, mismatched shapes, a bidirectional ``Y`` merged in another way.

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
    model = _load_model(onnx, model_or_path, external_data_dir)
    graph = model.graph
    _check_dag(graph)
    consts: Dict[str, np.ndarray] = {}
    for t in graph.initializer:
        consts[t.name] = numpy_helper.to_array(t)
    floats = {n for n, a in consts.items() if a.dtype.kind == "f"}
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
                if a.name == "value":
                    arr = numpy_helper.to_array(a.t)
                    consts[node.output[0]] = arr
                    if arr.dtype.kind == "f":
                        floats.add(node.output[0])
        if node.op_type in ("LSTM", "GRU", "RNN"):
            rec.append(node)
        elif node.op_type not in _PLUMBING | {"MatMul", "Add", "Gemm"}:
            raise ValueError(f"from_onnx: operator {node.op_type} ({node.name!r}) is not "
                             f"supported; expected stacked LSTM/GRU/RNN operators and an "
                             f"optional linear head")
    if not rec:
        raise ValueError("from_onnx: the model has no LSTM, GRU or RNN operator")
    kinds = {n.op_type for n in rec}
    if len(kinds) > 1:
        raise ValueError(f"from_onnx: mixed recurrent operators {sorted(kinds)}; streamrnn "
                         f"stacks layers of one kind")
    op = rec[0].op_type
    graph_inputs = {i.name for i in graph.input} - set(consts)

    def const(name: str, what: str) -> np.ndarray:
        while name not in consts and name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        if name not in consts:
            raise ValueError(f"from_onnx: {what} ({name!r}) must be a constant (an "
                             f"initializer or a Constant node)")
        used.add(name)
        return consts[name]

    def source(name: str, merged: str = "") -> str:
        """Follow shape-only operators back to the tensor they pass through. If that is
        ``merged``, the Y of a bidirectional layer, check that the path turns its
        ``(T, 2, batch, H)`` into ``[h_forward | h_backward]`` per time step."""
        path = []
        while name in producer and producer[name].op_type in _PASS_THROUGH:
            node = producer[name]
            if node.op_type == "Transpose":
                perm = [a.ints for a in node.attribute if a.name == "perm"]
                if not perm or perm[0][-1] != len(perm[0]) - 1:
                    raise ValueError(f"from_onnx: Transpose {node.name!r} moves the feature "
                                     f"axis")
            path.append(node)
            name = node.input[0]
        if merged and name == merged:
            check_merge(path[::-1], prev_layout)
        return name

    def check_merge(path: List[Any], layout: int) -> None:
        """``path``: the shape-only operators from a bidirectional Y to its reader, in order.
        With batch 1 the memory order of (T, 2, 1, H) (``layout=1``: (1, T, 2, H)) is the
        concatenation the next layer reads, as long as no Transpose reorders time, direction
        and hidden axes before a Reshape merges the last two into 2H."""
        t_ax, d_ax = (1, 2) if layout else (0, 1)
        where = f"from_onnx: the output Y of a bidirectional {op}"
        for node in path:
            if node.op_type == "Identity":
                continue
            if node.op_type == "Transpose":
                perm = list([a.ints for a in node.attribute if a.name == "perm"][0])
                if len(perm) != 4 or not perm.index(t_ax) < perm.index(d_ax) < perm.index(3):
                    raise ValueError(f"{where}: Transpose {node.name!r} perm={perm} reorders "
                                     f"the time, direction and hidden axes of its Y (layout="
                                     f"{layout})")
                continue
            if node.op_type == "Reshape":
                shape = node.input[1] if len(node.input) > 1 else ""
                while (shape not in consts and shape in producer
                       and producer[shape].op_type == "Identity"):
                    shape = producer[shape].input[0]
                target = consts.get(shape)
                if (target is None or target.ndim != 1 or target.size < 2
                        or int(target[-1]) not in (-1, 2 * H)):
                    raise ValueError(f"{where}: Reshape {node.name!r} must have a constant "
                                     f"shape ending in -1 or {2 * H} (the directions' h "
                                     f"concatenated), got "
                                     f"{None if target is None else target.tolist()}")
                return
            break
        raise ValueError(f"{where} must be merged to (T, batch, 2H) by Transpose (perm "
                         f"[0, 2, 1, 3]) and Reshape, got "
                         f"{[n.op_type for n in path] or 'no operator'}")

    def ancestors(name: str) -> set:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n and n not in seen:
                seen.add(n)
                if n in producer:
                    todo.extend(producer[n].input)
        return seen

    used: set = set()
    params: Dict[str, np.ndarray] = {}
    cell = ""
    D = H = 0
    prev_y: Optional[str] = None
    wdtypes = set()
    bidirectional = False
    prev_layout = 0
    for k, node in enumerate(rec):
        where = f"from_onnx: {op} {node.name or k!r}"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        unknown = set(attrs) - _ALLOWED_ATTRS[op]
        if unknown:
            raise ValueError(f"{where}: unsupported attributes {sorted(unknown)}")
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction == "reverse":
            raise ValueError(f"{where}: direction='reverse' (a single backward direction) is "
                             f"not a streamrnn network: only 'forward' and 'bidirectional' "
                             f"layers are supported")
        if direction not in ("forward", "bidirectional"):
            raise ValueError(f"{where}: direction={direction!r} is not supported (forward or "
                             f"bidirectional)")
        if k > 0 and (direction == "bidirectional") != bidirectional:
            raise ValueError(f"{where}: direction={direction!r} differs from layer 0's; a "
                             f"streamrnn network is bidirectional in every layer or in none")
        bidirectional = direction == "bidirectional"
        nd = 2 if bidirectional else 1
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
        ins = list(node.input) + [""] * (8 - len(node.input))
        if ins[4]:
            raise ValueError(f"{where}: sequence_lens is not supported")
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
        if k == 0:
            D, H = W.shape[2], h
            src = source(ins[0])
            if src not in graph_inputs:
                raise ValueError(f"{where}: input X must come from a graph input")
        else:
            if h != H:
                raise ValueError(f"{where}: hidden size {h} differs from layer 0's {H}")
            if W.shape[2] != nd * H:
                raise ValueError(f"{where}: W {W.shape} must read the previous layer's h "
                                 f"(input size {nd * H})")
            if source(ins[0], (prev_y or "") if bidirectional else "") != prev_y:
                raise ValueError(f"{where}: input X is not the previous layer's output Y")
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
        if not node.output or not node.output[0]:
            if k < len(rec) - 1:
                raise ValueError(f"{where}: output Y is not produced")
            prev_y = None
        else:
            prev_y = node.output[0]
        prev_layout = int(attrs.get("layout", 0))
        for s in ins[5:7]:  # initial states: runtime values, not parameters
            used.update(ancestors(s))
    # the head: MatMul (+ Add) or Gemm reading the top layer's Y
    heads = [n for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    adds = [n for n in graph.node if n.op_type == "Add"]
    O = None
    if len(heads) > 1:
        raise ValueError(f"from_onnx: {len(heads)} MatMul/Gemm operators; at most one head")
    if heads:
        hn = heads[0]
        if prev_y is None or source(hn.input[0], prev_y if bidirectional else "") != prev_y:
            raise ValueError(f"from_onnx: {hn.op_type} {hn.name!r} does not read the top "
                             f"recurrent layer's output Y")
        Wt = const(hn.input[1], "head weight")
        bias: Optional[np.ndarray] = None
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
    unused = sorted(floats - used)
    if unused:
        raise ValueError(f"from_onnx: unused floating-point initializers {unused}")
    if len(wdtypes) > 1 and dtype is None and net is None:
        raise TypeError(f"from_onnx: weights of mixed dtypes {sorted(map(str, wdtypes))}; pass "
                        f"dtype='float32' or 'float64'")
    _check(onnx, model)
    return build_network(cell, D, H, len(rec), O, dtype, next(iter(wdtypes)), params,
                         net=net, source="from_onnx", bidirectional=bidirectional)
