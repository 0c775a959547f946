"""Keras 3 interoperability: ``from_keras``.

keras is imported only when :func:`from_keras` is called (optional extra
``streamrnn[keras]``); if it is not imported yet, ``KERAS_BACKEND`` defaults to ``torch``.

Keras keeps ``kernel (D, G*H)`` and ``recurrent_kernel (H, G*H)`` (PyTorch's matrices
transposed) with gates LSTM ``i, f, c, o`` (PyTorch's order) and GRU ``z, r, h``
(PyTorch: ``r, z, n``). An LSTM or SimpleRNN has one bias (loaded as ``bias_ih``,
``bias_hh = 0``); a GRU with ``reset_after=True`` has an input and a recurrent bias row,
exactly PyTorch's ``b_ih`` and ``b_hh``; one with ``reset_after=False`` (the Keras 2
default) has one bias and becomes ``sr.GRU(reset_after=False)`` (the reset gate multiplies h
before the recurrent kernel), its bias as ``bias_ih`` and ``bias_hh = 0``.
``keras.layers.Bidirectional(..., merge_mode="concat")`` holds a ``forward_layer`` and a
``backward_layer`` (``go_backwards=True``, its output flipped back into time order):
PyTorch's direction and ``_reverse`` direction.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import numpy as np

from ._common import GATES, build_network, direction_suffixes, permute_gates, require

if TYPE_CHECKING:  # pragma: no cover
    from ..network import GRU, LSTM, RNN

__all__ = ["from_keras"]

_KERAS_TO_TORCH_GRU = (1, 0, 2)  # torch block i = keras block order[i]: r, z, n <- z, r, h


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", "keras")


def _act(keras: Any, f: Any) -> str:
    name = keras.activations.serialize(f)
    if isinstance(name, dict):  # a configured activation object
        name = name.get("config", {}).get("name", name.get("class_name"))
    return str(name)


def _layers(keras: Any, obj: Any) -> List[Any]:
    L = keras.layers
    if isinstance(obj, (L.LSTM, L.GRU, L.SimpleRNN, L.Bidirectional)):
        return [obj]
    if isinstance(obj, keras.Sequential):
        return list(obj.layers)
    if isinstance(obj, keras.Model):
        raise TypeError("from_keras reads a keras.Sequential, a single recurrent layer or a "
                        "list of layers; for a functional model pass its layers in order: "
                        "from_keras([model.get_layer(name), ...])")
    if isinstance(obj, (list, tuple)):
        return list(obj)
    raise TypeError(f"from_keras: expected a keras LSTM/GRU/SimpleRNN layer, a "
                    f"keras.Sequential or a list of layers, got {type(obj).__name__}")


def _np(keras: Any, v: Any) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(v))


def from_keras(layer_or_model: Any, dtype: Any = None, *, allow_dropout: bool = False,
               net: Optional[Union["LSTM", "GRU", "RNN"]] = None,
               time_reversed: bool = False,
               ignore_head_activation: bool = False) -> Union["LSTM", "GRU", "RNN"]:
    """A streamrnn network with the weights of Keras 3 recurrent layers.

    Kernels are transposed into PyTorch's layout and GRU gates reordered; every weight and
    setting is checked before anything is created or loaded.

    Parameters
    ----------
    layer_or_model : keras layer, keras.Sequential or list of layers
        ``keras.layers.LSTM``, ``GRU`` (``reset_after=True``, or ``False``: a
        ``GRU(reset_after=False)``) or ``SimpleRNN`` (``tanh`` or ``relu``); or a
        Sequential/list of such layers of one kind and one ``units`` (all but the last with
        ``return_sequences=True``), optionally followed by one ``Dense`` with linear
        activation (the head). ``keras.layers.Bidirectional`` wrappers of such layers
        (``merge_mode="concat"``, ``return_sequences=True``; all layers bidirectional or
        none) give a bidirectional network. ``InputLayer`` is skipped; ``Dropout`` layers only with
        ``allow_dropout``. Layers must be built (have weights).
    dtype : 'float32', 'float64' or None
        None follows the layers' variables.
    allow_dropout : bool
        ``dropout``/``recurrent_dropout > 0`` and ``Dropout`` layers act only in training;
        streamrnn has no dropout, so they raise unless this is True.
    net : LSTM, GRU or RNN, optional
        Load into this existing network of the same architecture; nothing in it changes
        when anything raises.
    time_reversed : bool
        Accept ``go_backwards=True`` on the first recurrent layer (not inside a
        ``Bidirectional``): such a layer reads the window backwards and returns its outputs
        in that order, so the model computes ``net.run(X[::-1])`` for the returned (forward)
        network; streamrnn steps forwards, so without this flag it raises. Go-backwards
        layers above the first are refused either way (they reverse the sequence between
        layers, which no single forward pass computes).
    ignore_head_activation : bool
        A ``Dense`` head with an activation (``sigmoid``, ``softmax``, ...) raises, since a
        streamrnn head is linear; True imports it as the linear head, whose outputs are then
        the Dense's pre-activations (apply the activation to them yourself).

    Returns
    -------
    LSTM, GRU or RNN
        ``run(X, s)`` gives the Keras layer's ``return_sequences=True`` output for one
        sequence ``X[None]`` (the Dense applied per step); bidirectional: ``run(X)``, shape
        ``(T, 2 * units)`` or ``(T, O)``.

    Raises
    ------
    ImportError
        keras is not installed.
    TypeError
        An unsupported layer or object type (a functional ``keras.Model``: pass its layers).
    ValueError
        What streamrnn cannot compute exactly: a ``Bidirectional`` wrapper with
        ``merge_mode`` other than ``"concat"`` (``sum``, ``mul``, ``ave``, None) or with
        ``return_sequences=False``, bidirectional and unidirectional layers mixed,
        ``go_backwards=True`` (outside a ``Bidirectional``'s backward layer), activations
        other than ``tanh``/``sigmoid`` (SimpleRNN: ``tanh``/``relu``), a Dense
        with an activation or not last, layers of different kinds or sizes, dropout without
        ``allow_dropout``, unbuilt layers, mixed precision, extra weights; ``net`` of another
        architecture (including bidirectional layers into a unidirectional ``net`` and the
        reverse).

    See Also
    --------
    from_torch, from_onnx : The same for PyTorch modules and ONNX models.

    Examples
    --------
    >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "torch")  # doctest: +SKIP
    >>> import keras, streamrnn as sr                                 # doctest: +SKIP
    >>> model = keras.Sequential([keras.Input((None, 3)),
    ...                           keras.layers.GRU(16, return_sequences=True),
    ...                           keras.layers.Dense(1)])              # doctest: +SKIP
    >>> sr.from_keras(model)                                          # doctest: +SKIP
    GRU(input_size=3, hidden_size=16, num_layers=1, output_size=1, dtype='float32')
    >>> bi = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))
    ... # doctest: +SKIP
    >>> bi.build((None, None, 3))                                     # doctest: +SKIP
    >>> sr.from_keras(bi).bidirectional                               # doctest: +SKIP
    True
    """
    keras = _keras()
    K = keras.layers
    rec: List[Any] = []
    dense = None
    for i, layer in enumerate(_layers(keras, layer_or_model)):
        name = f"from_keras: layer {i} ({getattr(layer, 'name', type(layer).__name__)!r})"
        if isinstance(layer, K.InputLayer):
            continue
        if dense is not None:
            raise ValueError(f"{name}: the Dense head must be the last layer")
        if isinstance(layer, K.Dropout):
            if not allow_dropout:
                raise ValueError(f"{name}: Dropout acts only in training and streamrnn has no "
                                 f"dropout; pass allow_dropout=True")
            continue
        if isinstance(layer, K.Dense):
            if not rec:
                raise ValueError(f"{name}: a Dense before any recurrent layer")
            if _act(keras, layer.activation) != "linear" and not ignore_head_activation:
                raise ValueError(f"{name}: Dense activation "
                                 f"{_act(keras, layer.activation)!r}: a streamrnn head is "
                                 f"linear; pass ignore_head_activation=True to import the "
                                 f"Dense as the linear head (its outputs are then the "
                                 f"pre-activations: apply "
                                 f"{_act(keras, layer.activation)!r} yourself)")
            dense = layer
            continue
        if isinstance(layer, K.Bidirectional):
            if layer.merge_mode != "concat":
                raise ValueError(f"{name}: Bidirectional merge_mode={layer.merge_mode!r} is "
                                 f"not supported: a streamrnn bidirectional network "
                                 f"concatenates the directions (merge_mode='concat')")
            if not layer.return_sequences:
                raise ValueError(f"{name}: Bidirectional with return_sequences=False is not "
                                 f"supported (its backward half is the state after the whole "
                                 f"window, not a per-step output); use "
                                 f"return_sequences=True")
            parts = [layer.forward_layer, layer.backward_layer]
        else:
            parts = [layer]
        for part in parts:
            if not isinstance(part, (K.LSTM, K.GRU, K.SimpleRNN)):
                raise TypeError(f"{name}: unsupported layer type {type(part).__name__}")
        first = rec[0][0] if rec else parts[0]
        if any(type(part) is not type(first) for part in parts):
            raise ValueError(f"{name}: layers of different kinds ({type(first).__name__}, "
                             f"{', '.join(type(p).__name__ for p in parts)})")
        if rec and (len(parts) == 2) != (len(rec[0]) == 2):
            raise ValueError(f"{name}: bidirectional and unidirectional layers mixed; a "
                             f"streamrnn network is bidirectional in every layer or in none")
        if rec and not rec[-1][0].return_sequences:
            raise ValueError(f"{name}: the layer before it has return_sequences=False")
        rec.append(parts)
    if not rec:
        raise ValueError("from_keras: no LSTM, GRU or SimpleRNN layer")
    bidirectional = len(rec[0]) == 2
    ndir = 2 if bidirectional else 1
    params: Dict[str, np.ndarray] = {}
    dtypes: set = set()
    cell = ""
    D = H = 0
    if not isinstance(time_reversed, (bool, np.bool_)):
        raise TypeError(f"time_reversed must be True or False, got "
                        f"{type(time_reversed).__name__}")
    if time_reversed and (bidirectional or not rec[0][0].go_backwards):
        raise ValueError("from_keras: time_reversed=True is for a model whose first "
                         "recurrent layer has go_backwards=True (outside a Bidirectional); "
                         "this one has none")
    for k, parts in enumerate(rec):
        for sfx, layer in zip(direction_suffixes(bidirectional), parts):
            backward = sfx != "" or (k == 0 and bool(time_reversed))
            this, arrs, din, h = _convert(keras, layer, allow_dropout, backward=backward)
            name = f"from_keras: {type(layer).__name__} {layer.name!r}"
            if cell and this != cell:
                raise ValueError(f"{name}: activation {_act(keras, layer.cell.activation)!r} "
                                 f"differs from the first layer's")
            cell = this
            if k == 0 and not sfx:
                D, H = din, h
            elif h != H or din != (D if k == 0 else ndir * H):
                raise ValueError(f"{name}: streamrnn stacks layers of one size: units {h} and "
                                 f"input {din} differ from {H} and "
                                 f"{D if k == 0 else ndir * H}")
            dtypes |= {a.dtype for a in arrs.values()}
            for key, a in arrs.items():
                params[f"{key}_l{k}{sfx}"] = a
    O = None
    if dense is not None:
        name = f"from_keras: Dense {dense.name!r}"
        if not dense.built:
            raise ValueError(f"{name} is not built (has no weights)")
        dense_vars = [dense.kernel] + ([dense.bias] if dense.use_bias else [])
        extra = [w.path for w in dense.weights if all(w is not v for v in dense_vars)]
        if extra or len(dense.weights) != len(dense_vars):
            raise ValueError(f"{name}: unused weights {extra}")
        kern = _np(keras, dense.kernel)
        if kern.ndim != 2 or kern.shape[0] != ndir * H:
            raise ValueError(f"{name}: kernel must have shape ({ndir * H}, units), got "
                             f"{kern.shape}")
        O = kern.shape[1]
        bias = _np(keras, dense.bias) if dense.use_bias else np.zeros(O, kern.dtype)
        dtypes |= {kern.dtype, bias.dtype}
        params["head.weight"] = np.ascontiguousarray(kern.T)
        params["head.bias"] = bias
    if len(dtypes) > 1 and dtype is None and net is None:
        raise TypeError(f"from_keras: weights of mixed dtypes {sorted(map(str, dtypes))}; pass "
                        f"dtype='float32' or 'float64'")
    return build_network(cell, D, H, len(rec), O, dtype, next(iter(dtypes)), params, net=net,
                         source="from_keras", bidirectional=bidirectional)


def _convert(keras: Any, layer: Any, allow_dropout: bool,
             backward: bool) -> "tuple[str, Dict[str, np.ndarray], int, int]":
    """One Keras recurrent layer in PyTorch's layout: (cell, {weight_ih, weight_hh, bias_ih,
    bias_hh}, input size, units). ``backward``: the backward layer of a Bidirectional (which
    must have ``go_backwards=True``; every other layer must not)."""
    K = keras.layers
    name = f"from_keras: {type(layer).__name__} {layer.name!r}"
    c = layer.cell
    if not layer.built or getattr(c, "kernel", None) is None:
        raise ValueError(f"{name} is not built (has no weights): call it on data or "
                         f"build(input_shape) first")
    if bool(layer.go_backwards) != backward:
        if backward:
            raise ValueError(f"{name}: a Bidirectional's backward layer must have "
                             f"go_backwards=True")
        raise ValueError(f"{name}: go_backwards=True reads the window backwards and "
                         f"returns the outputs in that order, and streamrnn steps forwards: "
                         f"on the first recurrent layer, pass time_reversed=True to import "
                         f"the forward network that computes it as net.run(X[::-1]); above "
                         f"the first layer (the sequence reversed between layers) it is not "
                         f"supported")
    if (c.dropout or c.recurrent_dropout) and not allow_dropout:
        raise ValueError(f"{name}: dropout={c.dropout}, recurrent_dropout="
                         f"{c.recurrent_dropout}: streamrnn has no dropout (inference is "
                         f"unaffected); pass allow_dropout=True")
    act = _act(keras, c.activation)
    if isinstance(layer, K.SimpleRNN):
        if act not in ("tanh", "relu"):
            raise ValueError(f"{name}: activation {act!r} is not supported (tanh or relu)")
        cell = "rnn_" + act
    else:
        ract = _act(keras, c.recurrent_activation)
        if act != "tanh" or ract != "sigmoid":
            raise ValueError(f"{name}: activation={act!r}, recurrent_activation={ract!r}: "
                             f"only tanh and sigmoid (PyTorch's) are supported")
        cell = "lstm" if isinstance(layer, K.LSTM) else "gru"
        if cell == "gru" and not c.reset_after:
            cell = "gru_reset_before"   # sr.GRU(reset_after=False): one bias row
    variables = {"kernel": c.kernel, "recurrent_kernel": c.recurrent_kernel}
    if c.use_bias:
        variables["bias"] = c.bias
    known = {id(v) for v in variables.values()}
    extra = [w.path for w in layer.weights if id(w) not in known]
    if extra or len(layer.weights) != len(variables):
        raise ValueError(f"{name}: unused weights {extra}")
    if layer.compute_dtype != c.kernel.dtype:
        raise ValueError(f"{name}: mixed precision (compute dtype {layer.compute_dtype}, "
                         f"variables {c.kernel.dtype}) is not supported")
    arrs = {n: _np(keras, v) for n, v in variables.items()}
    kern, rker = arrs["kernel"], arrs["recurrent_kernel"]
    G = GATES[cell]
    h = int(layer.units)
    if rker.shape != (h, G * h) or kern.ndim != 2 or kern.shape[1] != G * h:
        raise ValueError(f"{name}: kernel {kern.shape} / recurrent_kernel {rker.shape} do "
                         f"not hold {G} gates of {h} units")
    zeros = np.zeros(G * h, kern.dtype)
    out: Dict[str, np.ndarray] = {}
    if cell in ("gru", "gru_reset_before"):
        # reset_after=True: input and recurrent bias rows (2, 3*units); False: one (3*units,)
        want = (2, G * h) if cell == "gru" else (G * h,)
        bias = arrs.get("bias", np.zeros(want, kern.dtype))
        if bias.shape != want:
            raise ValueError(f"{name}: bias must have shape {want} (reset_after="
                             f"{cell == 'gru'}), got {bias.shape}")
        if cell == "gru_reset_before":
            bias = np.stack([bias, zeros])
        order = _KERAS_TO_TORCH_GRU
        out["weight_ih"] = permute_gates(kern.T, order)
        out["weight_hh"] = permute_gates(rker.T, order)
        out["bias_ih"] = permute_gates(bias[0], order)
        out["bias_hh"] = permute_gates(bias[1], order)
    else:
        bias = arrs.get("bias", zeros)
        if bias.shape != (G * h,):
            raise ValueError(f"{name}: bias must have shape ({G * h},), got {bias.shape}")
        out["weight_ih"] = np.ascontiguousarray(kern.T)
        out["weight_hh"] = np.ascontiguousarray(rker.T)
        out["bias_ih"] = bias
        out["bias_hh"] = zeros
    return cell, out, int(kern.shape[0]), h
