"""The one model of a network: :class:`Net`, one or two directions, its forward step by step
(streaming) or layer by layer (whole windows), and one backward over recorded steps that the
online trainer (its ring of step records) and the window functions both feed.

A network is a cell type, its sizes and one flat 1-D parameter vector (float32 or float64;
all computation happens in that dtype), laid out as :func:`param_shapes` says. Layer k takes
the new h of layer k-1 at the same step; the output ``y`` is ``head.weight @ h_top +
head.bias`` with a head, else the new top-layer h itself. With two directions each layer has a
forward direction (t = 0, 1, ..., T-1) and a reverse direction (t = T-1, ..., 0) with their
own parameters; the layer's output at step t is ``[h_fwd(t) | h_bwd(t)]`` (2H), the input of
the next layer and of the head.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cells import LSTM_CELLS, _LayerRecord, cell_step, cell_step_backward
from .layout import (_check_cell, _check_directions, _check_int, _check_output_size,
                     _suffix, num_params, param_shapes, split_params)

# records[k][r][t]: layer k, direction r, step t
LayerRecords = Sequence[Sequence[Sequence[_LayerRecord]]]


class _StepRecord:
    """One step of a one-direction network: the input, every layer's record, the output and
    the step's target (``has_target`` False: no loss at this step)."""

    __slots__ = ("x", "layers", "y", "target", "has_target")

    def __init__(self, x: np.ndarray, layers: List[_LayerRecord], y: np.ndarray) -> None:
        self.x = x
        self.layers = layers
        self.y = y
        self.target: Any = None
        self.has_target = False


class Net:
    """A recurrent network over a flat parameter vector (the reference of sr.LSTM/GRU/RNN).

    Parameters
    ----------
    cell : {'rnn_tanh', 'rnn_relu', 'lstm', 'gru', 'gru_reset_before', 'lstm_peephole'}
    input_size, hidden_size : int >= 1
    num_layers : int >= 1, default 1
    output_size : int >= 1, or None / 0 for no head
    params : 1-D float32 or float64 array of length :func:`num_params`, or None (zeros,
        float64). Kept by reference, not copied: writing ``net.flat`` (or a view in
        ``net.p``) changes the network.
    num_directions : 1 or 2 (bidirectional: runs over whole windows only)

    Attributes
    ----------
    cell : str
    sizes : tuple (input_size, hidden_size, num_layers, output_size or None)
    input_size, hidden_size, num_layers, output_size, num_directions : one by one
    out_size : int, length of the output (O with a head, else num_directions * H)
    shapes : :func:`param_shapes` of the network
    flat : ndarray, the parameters
    p : dict, :func:`split_params` views into ``flat``
    dtype : numpy dtype of ``flat``; every computation uses it
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, params: Optional[np.ndarray] = None,
                 num_directions: int = 1) -> None:
        self.cell = _check_cell(cell)
        self.input_size = _check_int(input_size, "input_size", 1)
        self.hidden_size = _check_int(hidden_size, "hidden_size", 1)
        self.num_layers = _check_int(num_layers, "num_layers", 1)
        self.output_size = _check_output_size(output_size)
        self.num_directions = _check_directions(num_directions)
        self.sizes = (self.input_size, self.hidden_size, self.num_layers, self.output_size)
        self.shapes = param_shapes(self.cell, *self.sizes, self.num_directions)
        if params is None:
            params = np.zeros(num_params(self.cell, *self.sizes, self.num_directions))
        if not isinstance(params, np.ndarray):
            raise TypeError(f"params must be a 1-D float32 or float64 ndarray, got "
                            f"{type(params).__name__}")
        if params.dtype not in (np.float32, np.float64):
            raise TypeError(f"params must have dtype float32 or float64, got {params.dtype}")
        self.flat = params
        self.p = self.split(params)
        self.dtype = params.dtype
        nH = self.num_directions * self.hidden_size
        self.out_size = self.output_size if self.output_size is not None else nH

    def __repr__(self) -> str:
        nd = f", num_directions={self.num_directions}" if self.num_directions != 1 else ""
        return (f"{type(self).__name__}({self.cell!r}, {self.input_size}, "
                f"{self.hidden_size}, num_layers={self.num_layers}, "
                f"output_size={self.output_size}{nd}, dtype={self.dtype})")

    def split(self, flat: np.ndarray) -> Dict[str, np.ndarray]:
        """:func:`split_params` of a flat vector with this network's layout."""
        return split_params(flat, self.cell, *self.sizes, self.num_directions)

    # -- state ---------------------------------------------------------------------------
    def state_shape(self) -> Tuple[int, int, int]:
        """(num_layers, num_directions, H): the shape of a window's states."""
        return (self.num_layers, self.num_directions, self.hidden_size)

    def _window_states(self, h: Any, c: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(h, c) of a window (or their gradients) as arrays (L, num_directions, H) in the
        network's dtype, None meaning zeros; c is None unless LSTM."""
        h, c = (np.zeros(self.state_shape(), dtype=self.dtype) if a is None
                else np.asarray(a, dtype=self.dtype) for a in (h, c))
        return h, (c if self.cell in LSTM_CELLS else None)

    def zero_state(self) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(h, c): zeros (num_layers, H) in the network's dtype (two directions: (num_layers,
        2, H), a window's initial state); c is None unless LSTM."""
        shape: Tuple[int, ...] = (self.num_layers, self.hidden_size)
        if self.num_directions != 1:
            shape = self.state_shape()
        h = np.zeros(shape, dtype=self.dtype)
        c = np.zeros(shape, dtype=self.dtype) if self.cell in LSTM_CELLS else None
        return h, c

    def _check_state(self, h: Any, c: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        if self.num_directions != 1:
            raise ValueError("a two-direction network has no stream state: run it over "
                             "whole windows (reference.window_forward)")
        shape = (self.num_layers, self.hidden_size)
        h = np.asarray(h, dtype=self.dtype)
        if h.shape != shape:
            raise ValueError(f"h must have shape {shape}, got {h.shape}")
        if self.cell in LSTM_CELLS:
            if c is None:
                raise ValueError(f"c must be an array of shape {shape} for an LSTM, got None")
            c = np.asarray(c, dtype=self.dtype)
            if c.shape != shape:
                raise ValueError(f"c must have shape {shape}, got {c.shape}")
        elif c is not None:
            raise ValueError(f"c must be None for a {self.cell} network, got "
                             f"{type(c).__name__}")
        return h, c

    def _check_x(self, x: Any, name: str = "x") -> np.ndarray:
        arr = np.asarray(x, dtype=self.dtype)
        if arr.ndim == 0 and self.input_size == 1:
            arr = arr.reshape(1)
        if arr.shape != (self.input_size,):
            raise ValueError(f"{name} must have shape ({self.input_size},), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got {arr!r}")
        return arr

    # -- forward ---------------------------------------------------------------------------
    def _head(self, z: np.ndarray) -> np.ndarray:
        """The output for a top-layer output z (a new array)."""
        if self.output_size is None:
            return z.copy()
        return self.p["head.weight"] @ z + self.p["head.bias"]

    def _layer_forward(self, k: int, r: int, inputs: Sequence[np.ndarray], h: np.ndarray,
                       c: Optional[np.ndarray]
                       ) -> Tuple[List[_LayerRecord], np.ndarray, Optional[np.ndarray]]:
        """Layer k, direction r over all the steps of ``inputs`` from (h, c): the records in
        time order (direction 1 runs from the last step to the first) and the final (h, c)."""
        T = len(inputs)
        recs: List[Any] = [None] * T
        for t in (range(T) if r == 0 else range(T - 1, -1, -1)):
            recs[t] = rec = cell_step(self.cell, self.p, _suffix(k, r), inputs[t], h, c)
            h, c = rec.h, rec.c
        return recs, h, c

    def _record_step(self, x: np.ndarray, h: np.ndarray, c: Optional[np.ndarray]
                     ) -> Tuple[_StepRecord, np.ndarray, Optional[np.ndarray]]:
        """One step of the whole (one-direction) network from (h, c) with the current
        weights; returns the step's record and the new (h, c) as new arrays (the arguments
        are not written)."""
        x = x.copy()
        layers: List[_LayerRecord] = []
        inp = x
        for k in range(self.num_layers):
            layers.append(cell_step(self.cell, self.p, _suffix(k, 0), inp, h[k],
                                    None if c is None else c[k]))
            inp = layers[-1].h
        h_out = np.array([rec.h for rec in layers], dtype=self.dtype)
        c_out = None if c is None else np.array([rec.c for rec in layers], dtype=self.dtype)
        return _StepRecord(x, layers, self._head(inp)), h_out, c_out

    def step(self, x: Any, h: Any, c: Any = None
             ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """One timestep: ``(y, h_new, c_new)``. Purely functional (h and c are not written).
        y is the head's output (O,) or the new top-layer h (H,)."""
        h, c = self._check_state(h, c)
        rec, h_new, c_new = self._record_step(self._check_x(x), h, c)
        return rec.y, h_new, c_new

    def run(self, X: Any, h: Any, c: Any = None
            ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """``len(X)`` steps: ``(Y (T, O|H), h_T, c_T)``; the arguments are not written."""
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.input_size:
            raise ValueError(f"X must have shape (T, {self.input_size}), got {X.shape}")
        h, c = self._check_state(h, c)
        Y = np.empty((X.shape[0], self.out_size), dtype=self.dtype)
        for t in range(X.shape[0]):
            rec, h, c = self._record_step(self._check_x(X[t], "X[t]"), h, c)
            Y[t] = rec.y
        return Y, h, c

    # -- backward --------------------------------------------------------------------------
    def _head_backward(self, tops: Sequence[np.ndarray], dys: Sequence[Optional[np.ndarray]],
                       g: Dict[str, np.ndarray]) -> np.ndarray:
        """Backward of the head at each step, newest first: dys[t] = dLoss/dy_t (None: no
        output gradient at that step), tops[t] the top-layer output it read. Adds into the
        head's views in ``g``; returns dLoss/d(top-layer output) (T, num_directions*H)."""
        d_top = np.zeros((len(tops), self.num_directions * self.hidden_size), dtype=self.dtype)
        for t in range(len(tops) - 1, -1, -1):
            dy = dys[t]
            if dy is None:
                continue
            if self.output_size is None:
                d_top[t] = dy
            else:
                g["head.weight"] += np.outer(dy, tops[t])
                g["head.bias"] += dy
                d_top[t] = self.p["head.weight"].T @ dy
        return d_top

    def _backward(self, records: LayerRecords, d_top: np.ndarray, dhT: Any, dcT: Any,
                  g: Dict[str, np.ndarray], dh_out: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """Backpropagate through recorded steps, layer by layer from the top: the one backward
        of the online trainer and of the windows.

        records[k][r][t]: what the forward recorded (:meth:`_layer_forward`); d_top (T,
        num_directions*H): dLoss/d(top-layer output) per step; dhT, dcT (L, num_directions,
        H) or None (zeros): dLoss/d(final states). Uses the recorded activations and the
        current weights ``self.p``; the states entering the window are constants whose
        gradient is returned. Adds the parameter gradients into the views ``g``; returns
        ``(dX (T, D), dh0, dc0)`` (dc0 None unless LSTM). ``dh_out`` (T, L, num_directions,
        H), when given, receives dLoss/dh of every layer's h leaving every step (the total:
        from the output or layer above and from the next step)."""
        H = self.hidden_size
        dhT, dcT = self._window_states(dhT, dcT)
        dh0, dc0 = self._window_states(None, None)
        d_out = d_top
        for k in range(self.num_layers - 1, -1, -1):
            d_in: Any = None
            for r in range(self.num_directions):
                dx, dh0[k, r], dc = self._layer_backward(
                    k, r, records[k][r], d_out[:, r * H:(r + 1) * H], dhT[k, r],
                    None if dcT is None else dcT[k, r], g,
                    None if dh_out is None else dh_out[:, k, r])
                if dc0 is not None:
                    dc0[k, r] = dc
                d_in = dx if d_in is None else d_in + dx
            d_out = d_in
        return d_out, dh0, dc0

    def _layer_backward(self, k: int, r: int, recs: Sequence[_LayerRecord], d_out: np.ndarray,
                        dh: np.ndarray, dc: Optional[np.ndarray], g: Dict[str, np.ndarray],
                        dh_out: Optional[np.ndarray] = None
                        ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """The backward of :meth:`_layer_forward` (layer k, direction r) from its records
        (time order): d_out (T, H) dLoss/dh from the head or the layer above at each step,
        (dh, dc) dLoss/d(the final state). Adds into the views ``g``; returns ``(dinputs (T,
        D_k), dh0, dc0)``. ``dh_out`` (T, H): see :meth:`_backward`."""
        T = len(recs)
        dx = np.zeros((T, self.input_size if k == 0 else self.num_directions * self.hidden_size),
                      dtype=self.dtype)
        for t in (range(T - 1, -1, -1) if r == 0 else range(T)):
            dh = dh + d_out[t]
            if dh_out is not None:
                dh_out[t] = dh
            dx[t], dh, dc = cell_step_backward(self.cell, self.p, g, _suffix(k, r), recs[t],
                                               dh, dc)
        return dx, dh, dc


class WindowNet(Net):
    """:class:`Net` with the argument order of the former window network:
    ``WindowNet(cell, input_size, hidden_size, num_layers, output_size, num_directions,
    params)`` (the reference of ``sr.LSTM/GRU/RNN(..., bidirectional=...)`` and of the
    sequence trainers)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, num_directions: int = 1,
                 params: Optional[np.ndarray] = None) -> None:
        super().__init__(cell, input_size, hidden_size, num_layers, output_size, params,
                         num_directions)
