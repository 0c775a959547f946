"""PyTorch interoperability: ``from_torch`` and ``to_torch``.

torch is imported only when one of these functions is called (optional extra
``streamrnn[torch]``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import numpy as np

from ._common import GATES, build_network, check_dtype_arg, direction_suffixes, require

if TYPE_CHECKING:  # pragma: no cover
    import torch as _torch

    from ..network import GRU, LSTM, RNN

__all__ = ["from_torch", "to_torch"]

_MODES = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu"}


def _to_numpy(torch: Any, t: Any) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype not in (torch.float32, torch.float64):
        if not t.dtype.is_floating_point:
            raise TypeError(f"parameters must be real floating tensors, got {t.dtype}")
        t = t.to(torch.float64)  # float16/bfloat16: exact in float64
    return t.numpy().copy()


def _torch_dtype_name(torch: Any, dt: Any) -> Any:
    return {torch.float32: "float32", torch.float64: "float64"}.get(dt, dt)


def from_torch(module: "_torch.nn.Module", head: Optional["_torch.nn.Linear"] = None,
               dtype: Any = None, *, allow_dropout: bool = False,
               net: Optional[Union["LSTM", "GRU", "RNN"]] = None, h0: Any = None,
               c0: Any = None) -> Union["LSTM", "GRU", "RNN"]:
    """A streamrnn network with the weights of a PyTorch recurrent module.

    The weights are copied unchanged (same layout and gate order), so the network computes
    the module's function; every parameter is checked before anything is created or loaded.

    Parameters
    ----------
    module : torch.nn.LSTM, GRU, RNN, LSTMCell, GRUCell, RNNCell or the module from to_torch
        Every layer is copied (RNN: ``tanh`` or ``relu``). ``batch_first`` does not matter
        (streamrnn steps one sample at a time). ``bidirectional=True`` gives a bidirectional
        network (both directions' weights, PyTorch's ``_reverse`` names). ``bias=False``
        loads zero biases, which computes the same function. A module returned by
        :func:`to_torch` for a network with a head (attributes ``rnn`` and ``head``) brings
        its head along.
    head : torch.nn.Linear, optional
        A linear layer applied to the top layer's h (``in_features == hidden_size``, or
        ``2 * hidden_size`` for a bidirectional module: ``[h_forward | h_backward]``); becomes
        the network's head (``output_size = out_features``). ``bias=False``: zero bias.
    dtype : 'float32', 'float64' or None
        None follows the module's parameters (which must then be float32 or float64); given,
        the parameters are converted (float16/bfloat16 modules need it).
    allow_dropout : bool
        ``dropout > 0`` only acts in training mode between layers, so inference is the same,
        but streamrnn's trainer has no dropout: a module with ``dropout > 0`` raises unless
        this is True.
    net : LSTM, GRU or RNN, optional
        Load into this existing network (same cell, sizes, ``bidirectional`` and, if
        ``dtype`` is given, dtype) instead of creating one. Nothing in it changes when
        anything raises.
    h0, c0 : tensor or array, optional
        The initial state the module is called with (a learned ``nn.Parameter`` h0, c0 for
        an LSTM): ``(num_layers, hidden_size)`` or ``(num_layers, 1, hidden_size)``,
        becomes the network's initial state (:meth:`~streamrnn.LSTM.set_initial_state`;
        a module from :func:`to_torch` brings its own). Not for a bidirectional module.

    Returns
    -------
    LSTM, GRU or RNN
        A new network (or ``net``), with ``seed=None``. Its ``step``/``run`` give the module's
        outputs (``run(X, s)`` equals ``module(X, h0)[0]`` for an unbatched ``X``; for a
        bidirectional module ``run(X)`` equals ``module(X)[0]``, shape ``(T, 2 * H)``).

    Raises
    ------
    ImportError
        torch is not installed.
    TypeError
        ``module`` or ``head`` is of an unsupported type, or a non-float parameter dtype.
    ValueError
        An unsupported variant: ``proj_size > 0``, ``dropout > 0`` without
        ``allow_dropout``; a head whose ``in_features`` is not ``num_directions *
        hidden_size``; extra or missing parameters (e.g. a parametrized weight); ``net`` of
        another architecture (including a bidirectional module into a unidirectional ``net``
        and the reverse).

    See Also
    --------
    to_torch : The other direction.
    LSTM.load_state_dict : Loads a ``state_dict()`` of PyTorch key names (no head Linear).

    Examples
    --------
    >>> import torch, streamrnn as sr                           # doctest: +SKIP
    >>> m = torch.nn.GRU(3, 16, num_layers=2)                   # doctest: +SKIP
    >>> net = sr.from_torch(m, head=torch.nn.Linear(16, 1))     # doctest: +SKIP
    >>> net                                                     # doctest: +SKIP
    GRU(input_size=3, hidden_size=16, num_layers=2, output_size=1, dtype='float32')
    >>> bi = sr.from_torch(torch.nn.LSTM(3, 8, bidirectional=True))  # doctest: +SKIP
    >>> bi.bidirectional, bi.run(torch.zeros(5, 3).numpy()).shape    # doctest: +SKIP
    (True, (5, 16))
    """
    torch = require("torch", "torch")
    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module (LSTM, GRU, RNN or a cell), got "
                        f"{type(module).__name__}")
    from ._torch_modules import RecurrentWithHead
    if isinstance(module, RecurrentWithHead):
        if head is not None and module.head is not None:
            raise ValueError("head given twice: the module already has a head")
        if module.h0 is not None and (h0 is not None or c0 is not None):
            raise ValueError("h0/c0 given twice: the module already has an initial state")
        if module.h0 is not None:
            h0, c0 = module.h0, module.c0
        if module.head is not None:
            head = module.head
        module = module.rnn
    params: Dict[str, np.ndarray] = {}
    tensors = dict(module.state_dict())
    dtypes = set()
    if isinstance(module, nn.RNNBase):
        if module.mode not in _MODES:
            raise ValueError(f"unsupported recurrent mode {module.mode!r}")
        cell = _MODES[module.mode]
        bidirectional = bool(module.bidirectional)
        if getattr(module, "proj_size", 0):
            raise ValueError(f"proj_size={module.proj_size} (LSTM with projections, h = "
                             f"W_hr (o * tanh(c)) of proj_size elements) is not supported: "
                             f"streamrnn has no projected LSTM cell (its h has hidden_size "
                             f"elements); train the model without proj_size, or keep this "
                             f"one in PyTorch")
        if module.dropout and not allow_dropout:
            raise ValueError(f"dropout={module.dropout} between layers: streamrnn has no "
                             f"dropout; inference is unaffected, pass allow_dropout=True")
        D, H, L = module.input_size, module.hidden_size, module.num_layers
        use_bias = module.bias
        suffix = [(k, f"_l{k}{d}", d) for k in range(L)
                  for d in direction_suffixes(bidirectional)]
    elif isinstance(module, nn.RNNCellBase):
        if isinstance(module, nn.LSTMCell):
            cell = "lstm"
        elif isinstance(module, nn.GRUCell):
            cell = "gru"
        elif isinstance(module, nn.RNNCell):
            if module.nonlinearity not in ("tanh", "relu"):
                raise ValueError(f"nonlinearity {module.nonlinearity!r} is not supported")
            cell = "rnn_" + module.nonlinearity
        else:
            raise TypeError(f"unsupported cell type {type(module).__name__}")
        D, H, L = module.input_size, module.hidden_size, 1
        use_bias = module.bias
        bidirectional = False
        suffix = [(0, "", "")]
    else:
        raise TypeError(f"module must be a torch.nn.LSTM, GRU, RNN, LSTMCell, GRUCell or "
                        f"RNNCell, got {type(module).__name__}")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if use_bias else [])
    expected = {f"{n}{s}": (k, n, d) for k, s, d in suffix for n in names}
    missing = sorted(set(expected) - set(tensors))
    unused = sorted(set(tensors) - set(expected))
    if missing or unused:
        raise ValueError(f"from_torch: {type(module).__name__} parameters do not match its "
                         f"configuration: missing {missing}, unused {unused}")
    G = GATES[cell]
    for key, (k, n, d) in expected.items():
        t = tensors[key]
        dtypes.add(t.dtype)
        params[f"{n}_l{k}{d}"] = _to_numpy(torch, t)
    if not use_bias:
        for k, _, d in suffix:
            params[f"bias_ih_l{k}{d}"] = np.zeros(G * H)
            params[f"bias_hh_l{k}{d}"] = np.zeros(G * H)
    O = None
    if head is not None:
        if not isinstance(head, nn.Linear):
            raise TypeError(f"head must be a torch.nn.Linear, got {type(head).__name__}")
        width = (2 if bidirectional else 1) * H
        if head.in_features != width:
            what = (f"2 * hidden_size={width} (a bidirectional module)" if bidirectional
                    else f"hidden_size={H}")
            raise ValueError(f"head.in_features must equal {what}, got {head.in_features}")
        O = head.out_features
        htensors = dict(head.state_dict())
        hexpected = {"weight"} | ({"bias"} if head.bias is not None else set())
        if set(htensors) != hexpected:
            raise ValueError(f"from_torch: head parameters {sorted(htensors)} do not match "
                             f"an nn.Linear's {sorted(hexpected)}")
        dtypes.add(htensors["weight"].dtype)
        params["head.weight"] = _to_numpy(torch, htensors["weight"])
        if "bias" in htensors:
            dtypes.add(htensors["bias"].dtype)
            params["head.bias"] = _to_numpy(torch, htensors["bias"])
        else:
            params["head.bias"] = np.zeros(O)
    if len(dtypes) > 1 and check_dtype_arg(dtype) is None and net is None:
        raise TypeError(f"from_torch: parameters have mixed dtypes {sorted(map(str, dtypes))}; "
                        f"pass dtype='float32' or 'float64'")
    source_dtype = _torch_dtype_name(torch, next(iter(dtypes)))
    initial: Optional[List[Optional[np.ndarray]]] = None
    if h0 is not None or c0 is not None:
        if bidirectional:
            raise ValueError("from_torch: h0/c0 for a bidirectional module: a bidirectional "
                             "streamrnn network runs each window from zero states")
        if c0 is not None and cell != "lstm":
            raise ValueError(f"from_torch: c0 is only for an LSTM, the module is {cell}")
        initial = []
        for name, v in (("h0", h0), ("c0", c0)):
            if v is None:
                initial.append(None)
                continue
            if isinstance(v, torch.Tensor):
                v = _to_numpy(torch, v)
            a = np.asarray(v)
            if a.shape not in ((L, H), (L, 1, H)):
                raise ValueError(f"from_torch: {name} must have shape ({L}, {H}) or ({L}, 1, "
                                 f"{H}) (num_layers, [1,] hidden_size), got {a.shape}")
            initial.append(a.reshape(L, H))
        # checked like set_initial_state does, before the weights are loaded
        from ..network import LSTM as _L, GRU as _G, RNN as _R
        cls = {"lstm": _L, "gru": _G}.get(cell, _R)
        probe = cls(D, H, L, dtype="float64")
        probe.set_initial_state(*initial)
    out = build_network(cell, D, H, L, O, dtype, source_dtype, params, net=net,
                        source="from_torch", bidirectional=bidirectional)
    out.set_initial_state(*(initial or (None, None)))
    return out


def to_torch(net: Union["LSTM", "GRU", "RNN"]) -> "_torch.nn.Module":
    """The PyTorch module computing the same function as a streamrnn network.

    Also available as the method ``net.to_torch()``. The weights are copied, so the module and
    the network are independent afterwards.

    Parameters
    ----------
    net : LSTM, GRU or RNN
        The network to convert (any cell, layers, head, dtype, bidirectional or not).

    Returns
    -------
    torch.nn.Module
        Without a head or initial state: a ``torch.nn.LSTM``/``GRU``/``RNN``
        (``batch_first=False``, ``bidirectional`` as the network) with the network's sizes,
        dtype and a copy of its weights. With a head or an initial state
        (:meth:`~streamrnn.LSTM.set_initial_state`): a ``RecurrentWithHead`` module holding
        ``rnn`` (as above), ``head`` (``torch.nn.Linear`` or None) and the parameters
        ``h0``/``c0`` ``(num_layers, 1, H)`` (or None), whose ``forward(x, hx=None)``
        returns ``(head(output), h_n)``, starting from ``h0``/``c0`` when ``hx`` is None.
        Both are in training mode like any new module (there is no dropout, so modes do
        not matter). ``from_torch`` reads either back.

    Raises
    ------
    ImportError
        torch is not installed.
    TypeError
        ``net`` is not a streamrnn network.

    See Also
    --------
    from_torch : The other direction.

    Examples
    --------
    >>> import streamrnn as sr
    >>> net = sr.LSTM(2, 8, output_size=1, seed=0)
    >>> m = sr.to_torch(net)                        # doctest: +SKIP
    >>> type(m.rnn).__name__, type(m.head).__name__  # doctest: +SKIP
    ('LSTM', 'Linear')
    """
    from ..network import GRU, LSTM, RNN
    if not isinstance(net, (LSTM, GRU, RNN)):
        raise TypeError(f"net must be a streamrnn LSTM, GRU or RNN, got {type(net).__name__}")
    if net.cell not in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        why = {"gru_reset_before": "torch.nn.GRU applies the reset gate after the recurrent "
                                   "product (reset_after=True)",
               "lstm_peephole": "torch.nn.LSTM has no peepholes"}.get(net.cell, "")
        raise ValueError(f"to_torch: {net!r} (cell {net.cell!r}) has no PyTorch equivalent"
                         f"{': ' + why if why else ''}; export it with sr.to_onnx instead")
    torch = require("torch", "torch")
    tdt = {"float32": torch.float32, "float64": torch.float64}[net.dtype.name]
    kw = dict(num_layers=net.num_layers, dtype=tdt, bidirectional=bool(net.bidirectional))
    if net.cell == "lstm":
        rnn = torch.nn.LSTM(net.input_size, net.hidden_size, **kw)
    elif net.cell == "gru":
        rnn = torch.nn.GRU(net.input_size, net.hidden_size, **kw)
    else:
        rnn = torch.nn.RNN(net.input_size, net.hidden_size, nonlinearity=net.cell[4:], **kw)
    sd = net.state_dict()
    initial = net.initial_state
    rnn.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()
                         if not k.startswith("head.")})
    if net.output_size is None and initial is None:
        return rnn
    from ._torch_modules import RecurrentWithHead
    head = None
    if net.output_size is not None:
        width = (2 if net.bidirectional else 1) * net.hidden_size
        head = torch.nn.Linear(width, net.output_size, dtype=tdt)
        head.load_state_dict({"weight": torch.from_numpy(sd["head.weight"]),
                              "bias": torch.from_numpy(sd["head.bias"])})
    h0 = c0 = None
    if initial is not None:  # (L, H) -> (L, 1, H), expanded to the batch in forward
        h0 = torch.from_numpy(initial[0].copy()).unsqueeze(1)
        if initial[1] is not None:
            c0 = torch.from_numpy(initial[1].copy()).unsqueeze(1)
    return RecurrentWithHead(rnn, head, h0, c0)
