"""Sizes and the flat parameter layout of a network (one or two directions).

Flat order: for each layer k, for each direction (forward, then with ``num_directions = 2``
the reverse one, keys suffixed ``_reverse``): ``weight_ih_l{k}`` ``(G*H, D_k)``,
``weight_hh_l{k}`` ``(G*H, H)``, ``bias_ih_l{k}`` ``(G*H,)``, ``bias_hh_l{k}`` ``(G*H,)``
(``lstm_peephole``: then ``weight_peephole_l{k}`` ``(3*H,)`` = ``[p_i | p_f | p_o]``),
with ``D_0 = input_size`` and ``D_k = num_directions * H`` above; then, with a head
(``output_size >= 1``), ``head.weight`` ``(O, num_directions * H)`` and ``head.bias``
``(O,)``: exactly ``torch.nn.LSTM(...).named_parameters()`` followed by the head.

This module keeps its own copy of the layout facts (the gate counts, the key names): the
reference is an independent specification and imports nothing from the compiled core.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .._checks import check_int as _check_int

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before", "lstm_peephole")
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3,
          "lstm_peephole": 4}

Shapes = List[Tuple[str, Tuple[int, ...]]]


def _check_cell(cell: Any) -> str:
    if not isinstance(cell, str) or cell not in _GATES:
        raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")
    return cell


def _check_output_size(output_size: Any) -> Optional[int]:
    """None or 0 mean "no head"; else an integer >= 1."""
    if output_size is None:
        return None
    o = _check_int(output_size, "output_size", 0)
    return o if o > 0 else None


def _check_directions(num_directions: Any) -> int:
    if num_directions not in (1, 2):
        raise ValueError(f"num_directions must be 1 or 2, got {num_directions!r}")
    return int(num_directions)


def _suffix(k: int, r: int) -> str:
    """Key suffix of layer k, direction r (0 forward, 1 reverse)."""
    return f"_l{k}" + ("_reverse" if r else "")


def gate_count(cell: str) -> int:
    """Number of gate blocks G of a cell: rnn_tanh/rnn_relu 1, lstm and lstm_peephole 4, gru
    and gru_reset_before 3."""
    return _GATES[_check_cell(cell)]


def param_shapes(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, num_directions: int = 1) -> Shapes:
    """The parameters of a network as ``[(key, shape), ...]`` in flat order.

    Keys are PyTorch's (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``,
    ``weight_ih_l0_reverse``, ...) followed, with a head, by ``head.weight`` and
    ``head.bias``.
    """
    G = gate_count(cell)
    D = _check_int(input_size, "input_size", 1)
    H = _check_int(hidden_size, "hidden_size", 1)
    L = _check_int(num_layers, "num_layers", 1)
    O = _check_output_size(output_size)
    nd = _check_directions(num_directions)
    shapes: Shapes = []
    for k in range(L):
        d_in = D if k == 0 else nd * H
        for r in range(nd):
            s = _suffix(k, r)
            shapes += [(f"weight_ih{s}", (G * H, d_in)), (f"weight_hh{s}", (G * H, H)),
                       (f"bias_ih{s}", (G * H,)), (f"bias_hh{s}", (G * H,))]
            if cell == "lstm_peephole":     # [p_i | p_f | p_o]
                shapes.append((f"weight_peephole{s}", (3 * H,)))
    if O is not None:
        shapes += [("head.weight", (O, nd * H)), ("head.bias", (O,))]
    return shapes


window_param_shapes = param_shapes   # the former name of its two-direction form


def num_params(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
               output_size: Optional[int] = None, num_directions: int = 1) -> int:
    """Length of the flat parameter vector."""
    return sum(int(np.prod(shape)) for _, shape in
               param_shapes(cell, input_size, hidden_size, num_layers, output_size,
                            num_directions))


def split_params(flat: np.ndarray, cell: str, input_size: int, hidden_size: int,
                 num_layers: int = 1, output_size: Optional[int] = None,
                 num_directions: int = 1) -> Dict[str, np.ndarray]:
    """``{key: view}``: reshaped views into the 1-D array ``flat`` (writing a view writes
    ``flat``). Raises ValueError when ``flat`` is not 1-D of length :func:`num_params`."""
    shapes = param_shapes(cell, input_size, hidden_size, num_layers, output_size,
                          num_directions)
    total = sum(int(np.prod(s)) for _, s in shapes)
    if not isinstance(flat, np.ndarray) or flat.ndim != 1 or flat.shape[0] != total:
        got = flat.shape if isinstance(flat, np.ndarray) else type(flat).__name__
        raise ValueError(f"flat must be a 1-D array of {total} parameters, got {got}")
    out: Dict[str, np.ndarray] = {}
    off = 0
    for key, shape in shapes:
        n = int(np.prod(shape))
        out[key] = flat[off:off + n].reshape(shape)
        off += n
    return out


def random_params(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                  output_size: Optional[int] = None, dtype: Any = np.float64,
                  seed: Optional[int] = None, scale: Optional[float] = None,
                  num_directions: int = 1) -> np.ndarray:
    """A flat parameter vector drawn uniformly from ``[-scale, scale]`` (default
    ``scale = 1/sqrt(H)``, PyTorch's initialisation) with ``numpy.random.default_rng(seed)``.
    A convenience for tests and examples; it does not reproduce the C core's seeded draws."""
    n = num_params(cell, input_size, hidden_size, num_layers, output_size, num_directions)
    s = 1.0 / math.sqrt(hidden_size) if scale is None else float(scale)
    rng = np.random.default_rng(seed)
    return rng.uniform(-s, s, size=n).astype(dtype)
