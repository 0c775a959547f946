"""Keras 3 interoperability: ``from_keras``.

keras is imported only when :func:`from_keras` is called (optional extra
``streamrnn[keras]``); if it is not imported yet, ``KERAS_BACKEND`` defaults to ``torch``.

Keras keeps ``kernel (D, G*H)`` and ``recurrent_kernel (H, G*H)`` (PyTorch's matrices
transposed) with gates LSTM ``i, f, c, o`` (PyTorch's order) and GRU ``z, r, h``
(PyTorch: ``r, z, n``). An LSTM or SimpleRNN has one bias (loaded as ``bias_ih``,
``bias_hh = 0``); a GRU with ``reset_after=True`` has an input and a recurrent bias row,
exactly PyTorch's ``b_ih`` and ``b_hh``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import numpy as np

from ._common import build_network, permute_gates, reject_bidirectional, require

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
    if isinstance(obj, L.Bidirectional):
        reject_bidirectional("from_keras")
    if isinstance(obj, (L.LSTM, L.GRU, L.SimpleRNN)):
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
               net: Optional[Union["LSTM", "GRU", "RNN"]] = None) -> Union["LSTM", "GRU", "RNN"]:
    """A streamrnn network with the weights of Keras 3 recurrent layers.

    Kernels are transposed into PyTorch's layout and GRU gates reordered; every weight and
    setting is checked before anything is created or loaded.

    Parameters
    ----------
    layer_or_model : keras layer, keras.Sequential or list of layers
        ``keras.layers.LSTM``, ``GRU`` (``reset_after=True``) or ``SimpleRNN`` (``tanh`` or
        ``relu``); or a Sequential/list of such layers of one kind and one ``units`` (all but
        the last with ``return_sequences=True``), optionally followed by one ``Dense`` with
        linear activation (the head). ``InputLayer`` is skipped; ``Dropout`` layers only with
        ``allow_dropout``. Layers must be built (have weights).
    dtype : 'float32', 'float64' or None
        None follows the layers' variables.
    allow_dropout : bool
        ``dropout``/``recurrent_dropout > 0`` and ``Dropout`` layers act only in training;
        streamrnn has no dropout, so they raise unless this is True.
    net : LSTM, GRU or RNN, optional
        Load into this existing network of the same architecture; nothing in it changes
        when anything raises.

    Returns
    -------
    LSTM, GRU or RNN
        ``run(X, s)`` gives the Keras layer's ``return_sequences=True`` output for one
        sequence ``X[None]`` (the Dense applied per step).

    Raises
    ------
    ImportError
        keras is not installed.
    TypeError
        An unsupported layer or object type (a functional ``keras.Model``: pass its layers).
    ValueError
        What streamrnn cannot compute exactly: a ``Bidirectional`` wrapper,
        ``go_backwards=True``, activations other than ``tanh``/``sigmoid`` (SimpleRNN:
        ``tanh``/``relu``), GRU ``reset_after=False`` (the reset gate applied before the
        recurrent matmul), a Dense with an activation or not last, layers of different kinds
        or sizes, dropout without ``allow_dropout``, unbuilt layers, mixed precision,
        extra weights; ``net`` of another architecture.

    See Also
    --------
    from_torch, from_onnx : The same for PyTorch modules and ONNX models.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "torch")    # doctest: +SKIP
    >>> import keras, streamrnn as sr                                 # doctest: +SKIP
    >>> model = keras.Sequential([keras.Input((None, 3)),
    ...                           keras.layers.GRU(16, return_sequences=True),
    ...                           keras.layers.Dense(1)])              # doctest: +SKIP
    >>> sr.from_keras(model)                                          # doctest: +SKIP
    GRU(input_size=3, hidden_size=16, num_layers=1, output_size=1, dtype='float32')
    """
    keras = _keras()
    K = keras.layers
    rec: List[Any] = []
    dense = None
    for i, layer in enumerate(_layers(keras, layer_or_model)):
        name = f"from_keras: layer {i} ({getattr(layer, 'name', type(layer).__name__)!r})"
        if isinstance(layer, K.InputLayer):
            continue
        if isinstance(layer, K.Bidirectional):
            reject_bidirectional("from_keras")
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
            if _act(keras, layer.activation) != "linear":
                raise ValueError(f"{name}: Dense activation "
                                 f"{_act(keras, layer.activation)!r} is not supported "
                                 f"(the head is linear)")
            dense = layer
            continue
        if not isinstance(layer, (K.LSTM, K.GRU, K.SimpleRNN)):
            raise TypeError(f"{name}: unsupported layer type {type(layer).__name__}")
        if rec and type(layer) is not type(rec[0]):
            raise ValueError(f"{name}: layers of different kinds ({type(rec[0]).__name__}, "
                             f"{type(layer).__name__})")
        if rec and not rec[-1].return_sequences:
            raise ValueError(f"{name}: the layer before it has return_sequences=False")
        rec.append(layer)
    if not rec:
        raise ValueError("from_keras: no LSTM, GRU or SimpleRNN layer")
    params: Dict[str, np.ndarray] = {}
    dtypes = set()
    cell = ""
    D = H = 0
    for k, layer in enumerate(rec):
        name = f"from_keras: {type(layer).__name__} {layer.name!r}"
        c = layer.cell
        if not layer.built or getattr(c, "kernel", None) is None:
            raise ValueError(f"{name} is not built (has no weights): call it on data or "
                             f"build(input_shape) first")
        if layer.go_backwards:
            raise ValueError(f"{name}: go_backwards=True is not supported")
        if (c.dropout or c.recurrent_dropout) and not allow_dropout:
            raise ValueError(f"{name}: dropout={c.dropout}, recurrent_dropout="
                             f"{c.recurrent_dropout}: streamrnn has no dropout (inference is "
                             f"unaffected); pass allow_dropout=True")
        act = _act(keras, c.activation)
        if isinstance(layer, K.SimpleRNN):
            if act not in ("tanh", "relu"):
                raise ValueError(f"{name}: activation {act!r} is not supported (tanh or relu)")
            this = "rnn_" + act
        else:
            ract = _act(keras, c.recurrent_activation)
            if act != "tanh" or ract != "sigmoid":
                raise ValueError(f"{name}: activation={act!r}, recurrent_activation={ract!r}: "
                                 f"only tanh and sigmoid (PyTorch's) are supported")
            this = "lstm" if isinstance(layer, K.LSTM) else "gru"
            if this == "gru" and not c.reset_after:
                raise ValueError(f"{name}: reset_after=False applies the reset gate before "
                                 f"the recurrent matmul, which PyTorch's (and streamrnn's) GRU "
                                 f"cannot represent exactly; use reset_after=True (the "
                                 f"Keras 3 default)")
        if cell and this != cell:
            raise ValueError(f"{name}: activation {act!r} differs from the first layer's")
        cell = this
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
        dtypes |= {a.dtype for a in arrs.values()}
        kern, rker = arrs["kernel"], arrs["recurrent_kernel"]
        G = {"lstm": 4, "gru": 3}.get(cell, 1)
        h = int(layer.units)
        if rker.shape != (h, G * h) or kern.ndim != 2 or kern.shape[1] != G * h:
            raise ValueError(f"{name}: kernel {kern.shape} / recurrent_kernel {rker.shape} do "
                             f"not hold {G} gates of {h} units")
        if k == 0:
            D, H = kern.shape[0], h
        elif h != H or kern.shape[0] != H:
            raise ValueError(f"{name}: streamrnn stacks layers of one size: units {h} and "
                             f"input {kern.shape[0]} differ from {H}")
        zeros = np.zeros(G * h, kern.dtype)
        if cell == "gru":
            bias = arrs.get("bias", np.zeros((2, G * h), kern.dtype))
            if bias.shape != (2, G * h):
                raise ValueError(f"{name}: bias must have shape (2, {G * h}), got {bias.shape}")
            order = _KERAS_TO_TORCH_GRU
            params[f"weight_ih_l{k}"] = permute_gates(kern.T, order)
            params[f"weight_hh_l{k}"] = permute_gates(rker.T, order)
            params[f"bias_ih_l{k}"] = permute_gates(bias[0], order)
            params[f"bias_hh_l{k}"] = permute_gates(bias[1], order)
        else:
            bias = arrs.get("bias", zeros)
            if bias.shape != (G * h,):
                raise ValueError(f"{name}: bias must have shape ({G * h},), got {bias.shape}")
            params[f"weight_ih_l{k}"] = np.ascontiguousarray(kern.T)
            params[f"weight_hh_l{k}"] = np.ascontiguousarray(rker.T)
            params[f"bias_ih_l{k}"] = bias
            params[f"bias_hh_l{k}"] = zeros
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
        if kern.ndim != 2 or kern.shape[0] != H:
            raise ValueError(f"{name}: kernel must have shape ({H}, units), got {kern.shape}")
        O = kern.shape[1]
        bias = _np(keras, dense.bias) if dense.use_bias else np.zeros(O, kern.dtype)
        dtypes |= {kern.dtype, bias.dtype}
        params["head.weight"] = np.ascontiguousarray(kern.T)
        params["head.bias"] = bias
    if len(dtypes) > 1 and dtype is None and net is None:
        raise TypeError(f"from_keras: weights of mixed dtypes {sorted(map(str, dtypes))}; pass "
                        f"dtype='float32' or 'float64'")
    return build_network(cell, D, H, len(rec), O, dtype, next(iter(dtypes)), params, net=net,
                         source="from_keras")
