"""Helpers shared by the importers and exporters (no heavy imports here)."""
from __future__ import annotations

import importlib
from typing import Any, Dict, Mapping, Optional

import numpy as np

from .. import _core

__all__ = ["require", "as_numpy", "build_network", "GATES", "permute_gates", "check_dtype_arg",
           "direction_suffixes", "param_arrays"]

GATES = _core.GATES   # gates per cell, from the C core


def direction_suffixes(bidirectional: bool) -> "tuple[str, ...]":
    """The PyTorch key suffixes of a layer's directions: ``("",)`` or ``("", "_reverse")``."""
    return ("", "_reverse") if bidirectional else ("",)


def as_numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (float16/bfloat16 through float32, exactly); any
    other value unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        t = value.detach().cpu()
        if getattr(t.dtype, "is_floating_point", False) and t.element_size() < 4:
            t = t.float()
        try:
            return t.numpy()
        except TypeError:
            return t
    return value


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for this function: pip install "
                          f"\"streamrnn[{extra}]\" ({exc})") from exc


def check_dtype_arg(dtype: Any) -> Optional[np.dtype]:
    """None, or 'float32'/'float64' as a NumPy dtype."""
    if dtype is None:
        return None
    from .._checks import check_dtype
    return check_dtype(dtype)


def param_arrays(net: Any) -> Dict[str, np.ndarray]:
    """Copies of a network's parameters by name (PyTorch's names, ``_core.param_layout``),
    read at one moment (a copy of the network, like ``state_dict``), for any cell: also the
    variants whose ``state_dict`` refuses (they have no PyTorch module)."""
    import copy
    snap = copy.copy(net)     # one consistent read of the weights
    flat = snap.parameters()
    layout = _core.param_layout(net.cell, net.input_size, net.hidden_size, net.num_layers,
                                net.output_size, 2 if net.bidirectional else 1)
    return {name: flat[off:off + int(np.prod(shape))].reshape(shape).copy()
            for name, off, shape in layout}


def permute_gates(a: np.ndarray, order: "tuple[int, ...]", axis: int = 0) -> np.ndarray:
    """Reorder the G equal blocks of ``a`` along ``axis``: block i of the result is block
    ``order[i]`` of ``a``."""
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


def build_network(cell: str, input_size: int, hidden_size: int, num_layers: int,
                  output_size: Optional[int], dtype: Any, source_dtype: Any,
                  state_dict: Mapping[str, np.ndarray], net: Any = None,
                  source: str = "", bidirectional: bool = False) -> Any:
    """A new network holding ``state_dict`` (PyTorch key names), or ``net`` loaded with it.

    ``dtype`` is the caller's argument (None: ``net.dtype`` when loading into ``net``, else
    ``source_dtype``, the dtype of the source's parameters). Every key and shape is checked
    against the architecture (bidirectional: also the ``..._l{k}_reverse`` keys, layers
    above the first and the head reading ``2 * hidden_size`` features) before anything is
    created or written;
    ``net.load_state_dict`` is itself strict and atomic, so on any error ``net`` is unchanged.
    """
    from .. import network as _network
    if net is not None and not isinstance(net, (_network.LSTM, _network.GRU, _network.RNN)):
        raise TypeError(f"net must be a streamrnn LSTM, GRU or RNN, got {type(net).__name__}")
    dt = check_dtype_arg(dtype)
    if dt is None:
        if net is not None:
            dt = net.dtype
        else:
            try:
                src = np.dtype(source_dtype)
            except TypeError:  # e.g. torch.float16, bfloat16
                src = None
            if src is None or src.name not in ("float32", "float64"):
                raise TypeError(f"{source}: the parameters are {source_dtype}; pass "
                                f"dtype='float32' or 'float64' to convert them")
            dt = src
    H = hidden_size
    ndir = 2 if bidirectional else 1
    try:
        layout = _core.param_layout(cell, input_size, H, num_layers, output_size, ndir)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: not a network streamrnn can hold: {e}") from None
    expected: Dict[str, tuple] = {name: shape for name, _, shape in layout}
    missing = sorted(set(expected) - set(state_dict))
    unused = sorted(set(state_dict) - set(expected))
    if missing or unused:
        kind = "bidirectional " if bidirectional else ""
        raise ValueError(f"{source}: parameters do not match a {num_layers}-layer {kind}{cell} "
                         f"network: missing {missing}, unused {unused}")
    for key, shape in expected.items():
        arr = np.asarray(state_dict[key])
        if arr.shape != shape:
            raise ValueError(f"{source}: {key} must have shape {shape}, got {arr.shape}")
        if arr.dtype.kind != "f":
            raise TypeError(f"{source}: {key} must be a real floating array, got {arr.dtype}")
    if net is None:
        kw: Dict[str, Any] = dict(input_size=input_size, hidden_size=H, num_layers=num_layers,
                                  output_size=output_size, dtype=dt.name,
                                  bidirectional=bool(bidirectional))
        if cell in ("lstm", "lstm_peephole"):
            net = _network.LSTM(peepholes=cell == "lstm_peephole", **kw)
        elif cell in ("gru", "gru_reset_before"):
            net = _network.GRU(reset_after=cell == "gru", **kw)
        else:
            net = _network.RNN(nonlinearity=cell[4:], **kw)
    else:
        want = (cell, input_size, H, num_layers, output_size, bool(bidirectional))
        have = (net.cell, net.input_size, net.hidden_size, net.num_layers, net.output_size,
                bool(net.bidirectional))
        if want != have:
            raise ValueError(f"{source}: net has (cell, input_size, hidden_size, num_layers, "
                             f"output_size, bidirectional) = {have}, the source has {want}")
        if dt != net.dtype:
            raise TypeError(f"{source}: dtype {dt.name} differs from net.dtype "
                            f"{net.dtype.name}")
    net.load_state_dict(state_dict)  # strict and atomic
    return net
