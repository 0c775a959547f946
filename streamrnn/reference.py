"""The NumPy reference of streamrnn: the executable specification of the C core.

Plain, readable and slow on purpose: loops over time, one small function per concept, and
the maths of each cell written exactly once (forward in :func:`_cell_pointwise`, backward in
:func:`_cell_backward`). The C core (``src_c/``) is tested against this module; where the two
differ, this module is right unless it contradicts ``DESIGN.md``.

Networks
--------
A network is a cell type, its sizes and one flat 1-D parameter vector (float32 or float64;
all computation happens in that dtype). Cells are named by strings:

=============  ==  ===================================================================
cell           G   one layer, one step (PyTorch's maths, gate rows in PyTorch's order)
=============  ==  ===================================================================
``rnn_tanh``   1   ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``
``rnn_relu``   1   ``h' = relu(W_ih x + b_ih + W_hh h + b_hh)``
``lstm``       4   rows ``i, f, g, o``: ``i, f, o = sigmoid(.)``, ``g = tanh(.)``,
                   ``c' = f*c + i*g``, ``h' = o*tanh(c')``
``gru``        3   rows ``r, z, n``: ``r, z = sigmoid(.)``,
                   ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``, ``h' = (1-z)*n + z*h``
=============  ==  ===================================================================

Flat parameter layout (:func:`param_shapes`): for each layer k, ``weight_ih_l{k}``
``(G*H, D_k)``, ``weight_hh_l{k}`` ``(G*H, H)``, ``bias_ih_l{k}`` ``(G*H,)``,
``bias_hh_l{k}`` ``(G*H,)`` with ``D_0 = input_size`` and ``D_k = H`` above; then, with a
head (``output_size >= 1``), ``head.weight`` ``(O, H)`` and ``head.bias`` ``(O,)``. Layer k
takes the new h of layer k-1 at the same step; the output ``y`` is ``head.weight @ h_top +
head.bias`` with a head, else the new top-layer h itself.

The logistic sigmoid is computed as ``1/(1+exp(-x))`` for ``x >= 0`` and as
``exp(x)/(1+exp(x))`` for ``x < 0`` (no overflow; the C core uses the same branches).

Online training: TBPTT(k1, k2)
------------------------------
:class:`Trainer` owns a stream state ``(h, c)`` (zeros at the start and after ``reset()``),
a ring buffer of the records of the last ``k2`` steps, its counters and the optimizer state.

``learn_one(x, y)``
    1. Validate ``x`` (shape ``(D,)``, or a scalar when D == 1; finite) and ``y``; an error
       changes nothing. ``mse``: y is array-like of the output shape ``(O,)`` (``(H,)``
       without a head; a scalar when that size is 1); ``None`` or any NaN component means
       *no target at this step*; an infinite component is an error. ``cross_entropy``: y is
       an integer class index in ``[0, O)``; ``None`` or a float NaN means no target. Targets
       are stored in the network's dtype.
    2. One forward step of every layer on the trainer's state with the current weights,
       recording into the ring: the input x; per layer h_prev (and c_prev for LSTM), the
       post-activation gates (RNN: the new h; LSTM: i, f, g, o; GRU: r, z, n), the extra term
       (LSTM: ``tanh(c')``; GRU: ``W_hn h_prev + b_hn``), the new h; the output ``y_pred``; the
       target. The ring keeps the newest ``k2`` records (older ones are dropped).
    3. If targeted, the per-step loss of ``y_pred`` joins the running statistic
       ``running_loss`` (mean over all targeted steps since reset).
       Per-step losses (computed in float64 from the stored values):
       ``mse = mean_j (y_pred[j] - y[j])**2``;
       ``cross_entropy = logsumexp(y_pred) - y_pred[y]`` with
       ``logsumexp(v) = max(v) + log(sum(exp(v - max(v))))``.
    4. ``steps += 1``; when the number of steps since the last update point (or since
       reset) reaches ``k1``, that count restarts at 0 and an *update* is attempted (below).
    5. Return a copy of ``y_pred``: the prediction made before any learning at this step.

An update
    a. ``n_t`` = the number of targeted steps among the ``k1`` newest records. If ``n_t ==
       0`` nothing at all happens (no optimizer call; neither ``updates`` nor ``skipped``
       nor ``last_loss`` / ``last_grad_norm`` change).
    b. ``loss = (1/n_t) * sum of the per-step losses of those steps`` (``last_loss``).
    c. Backpropagate through all the records in the ring (the newest ``min(k2, steps since
       reset)`` steps), newest to oldest, with the *recorded* activations (no forward
       recompute: with ``k1 < k2`` the older steps ran with older weights -- intended, this
       is Williams & Peng's TBPTT(k1, k2)) and the *current* weights in every ``W^T delta``
       and head product. The state entering the oldest record is a constant (no gradient
       flows out of the window). ``dLoss/dy`` of a targeted step among the k1 newest is
       ``(2/O_n) (y_pred - y) / n_t`` (mse, ``O_n`` the output size) or
       ``(softmax(y_pred) - onehot(y)) / n_t`` (cross-entropy); other steps contribute no
       output gradient. The gradient of every parameter is accumulated in one flat vector
       with the layout of the parameters. (:func:`window_loss_and_grad` runs the same
       backward on a window it records itself.)
    d. ``last_grad_norm`` = the L2 norm of this raw gradient (accumulated in float64). If the
       loss, any gradient component or that norm is not finite: skip (``skipped += 1``;
       weights and optimizer state untouched).
    e. Clipping (:func:`clip_gradient`): ``clip_value=c`` clamps every component to
       ``[-c, c]``; then ``clip_norm=t`` multiplies the gradient by
       ``min(1, t / (total + 1e-6))`` where ``total`` is the L2 norm of the (value-clipped)
       gradient -- exactly ``torch.nn.utils.clip_grad_norm_``.
    f. The optimizer (:func:`optimizer_step`; torch.optim's formulas, see
       :mod:`streamrnn.optim`) computes candidate new weights and moments. If any candidate
       value is not finite, the update is skipped as in (d). Otherwise the weights are
       written in place into ``net.flat``, the moments stored, the optimizer's step count
       (Adam's ``t``; SGD's "first step") advanced, and ``updates += 1``.

``predict_one(x)`` returns the output for x from a copy of the state; nothing advances.
``reset()`` zeroes the state, empties the ring and clears the since-reset counters
(``steps``, the k1 phase, ``running_loss``); the weights, the optimizer's moments and step
count, ``updates``, ``skipped``, ``last_loss`` and ``last_grad_norm`` are kept.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._checks import LOSSES, check_int, check_trainer_settings
from .optim import SGD, Adam, RMSprop  # noqa: F401  (the optimizers the reference implements)

__all__ = [
    "CELLS", "LOSSES", "gate_count", "param_shapes", "num_params", "split_params",
    "random_params", "sigmoid", "Net", "step_loss", "clip_gradient", "optimizer_step",
    "window_loss_and_grad", "hidden_state_gradients", "Trainer",
    "window_param_shapes", "WindowNet", "window_forward", "window_backward", "sequence_loss",
    "sequence_loss_and_grad", "decoder_inputs", "seq2seq_loss_and_grad", "SequenceTrainer",
]

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


# ---------------------------------------------------------------------------------------
# sizes and the flat parameter layout
# ---------------------------------------------------------------------------------------

def _check_cell(cell: Any) -> str:
    if not isinstance(cell, str) or cell not in _GATES:
        raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")
    return cell


def _check_int(value: Any, name: str, minimum: int) -> int:
    return check_int(value, name, minimum)


def _check_output_size(output_size: Any) -> Optional[int]:
    """None or 0 mean "no head"; else an integer >= 1."""
    if output_size is None:
        return None
    o = _check_int(output_size, "output_size", 0)
    return o if o > 0 else None


def gate_count(cell: str) -> int:
    """Number of gate blocks G of a cell: rnn_tanh/rnn_relu 1, lstm 4, gru 3."""
    return _GATES[_check_cell(cell)]


def param_shapes(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None) -> List[Tuple[str, Tuple[int, ...]]]:
    """The parameters of a network as ``[(key, shape), ...]`` in flat order.

    Keys are PyTorch's (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``,
    ...) followed, with a head, by ``head.weight`` and ``head.bias``.
    """
    G = gate_count(cell)
    D = _check_int(input_size, "input_size", 1)
    H = _check_int(hidden_size, "hidden_size", 1)
    L = _check_int(num_layers, "num_layers", 1)
    O = _check_output_size(output_size)
    shapes: List[Tuple[str, Tuple[int, ...]]] = []
    for k in range(L):
        d_in = D if k == 0 else H
        shapes.append((f"weight_ih_l{k}", (G * H, d_in)))
        shapes.append((f"weight_hh_l{k}", (G * H, H)))
        shapes.append((f"bias_ih_l{k}", (G * H,)))
        shapes.append((f"bias_hh_l{k}", (G * H,)))
    if O is not None:
        shapes.append(("head.weight", (O, H)))
        shapes.append(("head.bias", (O,)))
    return shapes


def num_params(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
               output_size: Optional[int] = None) -> int:
    """Length of the flat parameter vector."""
    return sum(int(np.prod(shape)) for _, shape in
               param_shapes(cell, input_size, hidden_size, num_layers, output_size))


def split_params(flat: np.ndarray, cell: str, input_size: int, hidden_size: int,
                 num_layers: int = 1, output_size: Optional[int] = None
                 ) -> Dict[str, np.ndarray]:
    """``{key: view}``: reshaped views into the 1-D array ``flat`` (writing a view writes
    ``flat``). Raises ValueError when ``flat`` is not 1-D of length :func:`num_params`."""
    shapes = param_shapes(cell, input_size, hidden_size, num_layers, output_size)
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
                  seed: Optional[int] = None, scale: Optional[float] = None) -> np.ndarray:
    """A flat parameter vector drawn uniformly from ``[-scale, scale]`` (default
    ``scale = 1/sqrt(H)``, PyTorch's initialisation) with ``numpy.random.default_rng(seed)``.
    A convenience for tests and examples; it does not reproduce the C core's seeded draws."""
    n = num_params(cell, input_size, hidden_size, num_layers, output_size)
    s = 1.0 / math.sqrt(hidden_size) if scale is None else float(scale)
    rng = np.random.default_rng(seed)
    return rng.uniform(-s, s, size=n).astype(dtype)


# ---------------------------------------------------------------------------------------
# the cells: forward and backward of one layer, one step (the only place each cell's maths
# lives)
# ---------------------------------------------------------------------------------------

def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, stable: ``1/(1+exp(-x))`` for x >= 0, ``exp(x)/(1+exp(x))`` for
    x < 0. Each ``exp`` only ever sees a non-positive argument, so nothing overflows."""
    x = np.asarray(x)
    pos = x >= 0
    e_neg = np.exp(np.where(pos, -x, 0))   # exp(-x) where x >= 0, unused elsewhere
    e_pos = np.exp(np.where(pos, 0, x))    # exp(x) where x < 0, unused elsewhere
    return np.where(pos, 1 / (1 + e_neg), e_pos / (1 + e_pos))


class _LayerRecord:
    """What one layer's backward needs from one step (see the module docstring)."""

    __slots__ = ("h_prev", "c_prev", "gates", "extra", "h")

    def __init__(self, h_prev: np.ndarray, c_prev: Optional[np.ndarray], gates: np.ndarray,
                 extra: Optional[np.ndarray], h: np.ndarray) -> None:
        self.h_prev = h_prev    # (H,) h entering the step
        self.c_prev = c_prev    # (H,) c entering the step (LSTM), else None
        self.gates = gates      # (G*H,) post-activation gates (RNN: = h)
        self.extra = extra      # (H,) LSTM tanh(c'), GRU W_hn h_prev + b_hn, else None
        self.h = h              # (H,) h leaving the step


class _StepRecord:
    """One step of the network: the input, every layer's record, the output and the
    step's target (``has_target`` False: no loss at this step)."""

    __slots__ = ("x", "layers", "y", "target", "has_target")

    def __init__(self, x: np.ndarray, layers: List[_LayerRecord], y: np.ndarray) -> None:
        self.x = x
        self.layers = layers
        self.y = y
        self.target: Any = None
        self.has_target = False


def _cell_pointwise(cell: str, ai: np.ndarray, ah: np.ndarray, h: np.ndarray,
                    c: Optional[np.ndarray]
                    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """The pointwise part of one cell step.

    ai = W_ih x + b_ih and ah = W_hh h + b_hh (both (G*H,)), h/c the state entering the step.
    Returns (gates, h_new, c_new, extra): post-activation gates, the new h, the new c (LSTM;
    else None) and the extra term the backward needs (LSTM tanh(c_new), GRU the n rows of ah).
    """
    H = h.shape[0]
    if cell == "rnn_tanh":
        h_new = np.tanh(ai + ah)
        return h_new, h_new, None, None
    if cell == "rnn_relu":
        a = ai + ah
        h_new = np.where(a > 0, a, 0).astype(a.dtype)
        return h_new, h_new, None, None
    if cell == "lstm":
        a = ai + ah
        i = sigmoid(a[0:H])
        f = sigmoid(a[H:2 * H])
        g = np.tanh(a[2 * H:3 * H])
        o = sigmoid(a[3 * H:4 * H])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        h_new = o * tc
        return np.concatenate([i, f, g, o]), h_new, c_new, tc
    if cell == "gru":
        r = sigmoid(ai[0:H] + ah[0:H])
        z = sigmoid(ai[H:2 * H] + ah[H:2 * H])
        ah_n = ah[2 * H:3 * H].copy()
        n = np.tanh(ai[2 * H:3 * H] + r * ah_n)
        h_new = (1 - z) * n + z * h
        return np.concatenate([r, z, n]), h_new, None, ah_n
    raise ValueError(f"unknown cell {cell!r}")


def _cell_backward(cell: str, rec: _LayerRecord, dh: np.ndarray, dc: Optional[np.ndarray]
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Backward of one cell step from its record.

    dh: dLoss/dh_new (from the head or the layer above at this step, plus from the next
    step); dc: LSTM dLoss/dc_new from the next step (else None).
    Returns (dai, dah, direct, dc_prev): dLoss/d(W_ih x + b_ih), dLoss/d(W_hh h + b_hh), the
    part of dLoss/dh_prev that does not pass through W_hh (GRU: z*dh; else 0) and, for LSTM,
    dLoss/dc_prev.
    """
    H = dh.shape[0]
    zero = np.zeros_like(dh)
    if cell == "rnn_tanh":
        da = dh * (1 - rec.h * rec.h)
        return da, da.copy(), zero, None
    if cell == "rnn_relu":
        da = np.where(rec.h > 0, dh, 0).astype(dh.dtype)
        return da, da.copy(), zero, None
    if cell == "lstm":
        g = rec.gates
        i, f, gg, o = g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H]
        tc = rec.extra
        assert dc is not None and rec.c_prev is not None and tc is not None  # set for LSTM
        dct = dc + dh * o * (1 - tc * tc)
        d_i = dct * gg * i * (1 - i)
        d_f = dct * rec.c_prev * f * (1 - f)
        d_g = dct * i * (1 - gg * gg)
        d_o = dh * tc * o * (1 - o)
        da = np.concatenate([d_i, d_f, d_g, d_o])
        return da, da.copy(), zero, dct * f
    if cell == "gru":
        g = rec.gates
        r, z, n = g[0:H], g[H:2 * H], g[2 * H:3 * H]
        ah_n = rec.extra
        dn = dh * (1 - z) * (1 - n * n)            # dLoss/d(pre-activation of n)
        dz = dh * (rec.h_prev - n) * z * (1 - z)
        dr = dn * ah_n * r * (1 - r)
        dai = np.concatenate([dr, dz, dn])
        dah = np.concatenate([dr, dz, dn * r])
        return dai, dah, dh * z, None
    raise ValueError(f"unknown cell {cell!r}")


# ---------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------

class Net:
    """A recurrent network over a flat parameter vector (the reference of sr.LSTM/GRU/RNN).

    Parameters
    ----------
    cell : {'rnn_tanh', 'rnn_relu', 'lstm', 'gru'}
    input_size, hidden_size : int >= 1
    num_layers : int >= 1, default 1
    output_size : int >= 1, or None / 0 for no head
    params : 1-D float32 or float64 array of length :func:`num_params`, or None (zeros,
        float64). Kept by reference, not copied: writing ``net.flat`` (or a view in
        ``net.p``) changes the network.

    Attributes
    ----------
    cell : str
    sizes : tuple (input_size, hidden_size, num_layers, output_size or None)
    input_size, hidden_size, num_layers, output_size : the same, one by one
    out_size : int, length of the output (O with a head, else H)
    flat : ndarray, the parameters
    p : dict, :func:`split_params` views into ``flat``
    dtype : numpy dtype of ``flat``; every computation uses it
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, params: Optional[np.ndarray] = None
                 ) -> None:
        self.cell = _check_cell(cell)
        self.input_size = _check_int(input_size, "input_size", 1)
        self.hidden_size = _check_int(hidden_size, "hidden_size", 1)
        self.num_layers = _check_int(num_layers, "num_layers", 1)
        self.output_size = _check_output_size(output_size)
        self.sizes = (self.input_size, self.hidden_size, self.num_layers, self.output_size)
        n = num_params(self.cell, *self.sizes)
        if params is None:
            params = np.zeros(n, dtype=np.float64)
        if not isinstance(params, np.ndarray):
            raise TypeError(f"params must be a 1-D float32 or float64 ndarray, got "
                            f"{type(params).__name__}")
        if params.dtype not in (np.float32, np.float64):
            raise TypeError(f"params must have dtype float32 or float64, got {params.dtype}")
        self.flat = params
        self.p = split_params(params, self.cell, *self.sizes)
        self.dtype = params.dtype
        self.out_size = self.output_size if self.output_size is not None else self.hidden_size

    def __repr__(self) -> str:
        return (f"Net({self.cell!r}, {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, output_size={self.output_size}, "
                f"dtype={self.dtype})")

    # -- state ---------------------------------------------------------------------------
    def zero_state(self) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(h, c): zeros (num_layers, H) in the network's dtype; c is None unless LSTM."""
        shape = (self.num_layers, self.hidden_size)
        h = np.zeros(shape, dtype=self.dtype)
        c = np.zeros(shape, dtype=self.dtype) if self.cell == "lstm" else None
        return h, c

    def _check_state(self, h: Any, c: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        shape = (self.num_layers, self.hidden_size)
        h = np.asarray(h, dtype=self.dtype)
        if h.shape != shape:
            raise ValueError(f"h must have shape {shape}, got {h.shape}")
        if self.cell == "lstm":
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
    def _record_step(self, x: np.ndarray, h: np.ndarray, c: Optional[np.ndarray]
                     ) -> Tuple[_StepRecord, np.ndarray, Optional[np.ndarray]]:
        """One step of the whole network from (h, c) with the current weights; returns the
        step's record and the new (h, c) as new arrays (the arguments are not written)."""
        h_out = np.empty_like(h)
        c_out = np.empty_like(c) if c is not None else None
        layers: List[_LayerRecord] = []
        inp = x
        for k in range(self.num_layers):
            ai = self.p[f"weight_ih_l{k}"] @ inp + self.p[f"bias_ih_l{k}"]
            ah = self.p[f"weight_hh_l{k}"] @ h[k] + self.p[f"bias_hh_l{k}"]
            c_prev = c[k].copy() if c is not None else None
            gates, h_new, c_new, extra = _cell_pointwise(self.cell, ai, ah, h[k], c_prev)
            layers.append(_LayerRecord(h[k].copy(), c_prev, gates, extra, h_new))
            h_out[k] = h_new
            if c_out is not None:
                c_out[k] = c_new
            inp = h_new
        if self.output_size is not None:
            y = self.p["head.weight"] @ inp + self.p["head.bias"]
        else:
            y = inp.copy()
        return _StepRecord(x.copy(), layers, y), h_out, c_out

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


# ---------------------------------------------------------------------------------------
# losses, the backward through a window, clipping, optimizers
# ---------------------------------------------------------------------------------------

def _parse_target(net: Net, loss: str, y: Any) -> Tuple[Any, bool]:
    """A step's target as stored in a record: (target, has_target). Raises on bad input."""
    if loss == "mse":
        if y is None:
            return None, False
        arr = np.asarray(y, dtype=net.dtype)
        if arr.ndim == 0 and net.out_size == 1:
            arr = arr.reshape(1)
        if arr.shape != (net.out_size,):
            raise ValueError(f"y must have shape ({net.out_size},) (or be None), got "
                             f"{arr.shape}")
        if np.any(np.isinf(arr)):
            raise ValueError(f"y must not hold inf (NaN marks a step without a target), "
                             f"got {arr!r}")
        if np.any(np.isnan(arr)):
            return None, False
        return arr.copy(), True
    # cross_entropy
    if y is None:
        return None, False
    if isinstance(y, (bool, np.bool_)):
        raise TypeError(f"y must be a class index (int), None or NaN, got "
                        f"{type(y).__name__} {y!r}")
    if isinstance(y, (int, np.integer)):
        if not 0 <= y < net.out_size:
            raise ValueError(f"y must be a class index in [0, {net.out_size}), got {y}")
        return int(y), True
    if isinstance(y, (float, np.floating)) and math.isnan(y):
        return None, False
    raise TypeError(f"y must be a class index (int), None or NaN, got "
                    f"{type(y).__name__} {y!r}")


def _loss_and_dy(loss: str, y: np.ndarray, target: Any, scale: float
                 ) -> Tuple[float, np.ndarray]:
    """Per-step loss (a Python float, computed in float64) and ``scale * dLoss/dy`` in the
    dtype of y."""
    yd = y.astype(np.float64)
    n = yd.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        return _loss_and_dy_f64(loss, yd, target, scale, n, y.dtype)


def _loss_and_dy_f64(loss: str, yd: np.ndarray, target: Any, scale: float, n: int,
                     dtype: Any) -> Tuple[float, np.ndarray]:
    if loss == "mse":
        e = yd - np.asarray(target).astype(np.float64)
        value = float(np.sum(e * e)) / n
        dy = scale * 2.0 * e / n
    else:
        mx = float(np.max(yd))
        lse = mx + math.log(float(np.sum(np.exp(yd - mx))))
        value = lse - float(yd[target])
        onehot = np.zeros(n)
        onehot[target] = 1.0
        dy = scale * (np.exp(yd - lse) - onehot)
    return value, dy.astype(dtype)


def step_loss(loss: str, y_pred: Any, target: Any) -> float:
    """The per-step loss of prediction ``y_pred`` against ``target`` (float64):
    mse ``mean((y_pred - target)**2)``; cross_entropy ``logsumexp(y_pred) -
    y_pred[target]`` (target a class index)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    y = np.atleast_1d(np.asarray(y_pred, dtype=np.float64))
    return _loss_and_dy(loss, y, target, 1.0)[0]


def _backward(net: Net, records: Sequence[_StepRecord], dys: Sequence[Optional[np.ndarray]],
              grad: np.ndarray, dh_out: Optional[np.ndarray] = None) -> None:
    """Backpropagate through ``records`` (oldest first) given dLoss/dy per step (None: no
    output gradient at that step), accumulating into the flat vector ``grad``. Uses the
    recorded activations and the current weights ``net.p``; the state entering the oldest
    record is a constant. ``dh_out`` (T, L, H), when given, receives dLoss/dh of every layer's
    h leaving every step (the total: from the output or layer above and from the next step)."""
    L, H = net.num_layers, net.hidden_size
    p = net.p
    g = split_params(grad, net.cell, *net.sizes)
    carry_h = [np.zeros(H, dtype=net.dtype) for _ in range(L)]   # dLoss/dh from step t+1
    carry_c = [np.zeros(H, dtype=net.dtype) if net.cell == "lstm" else None for _ in range(L)]
    for t in reversed(range(len(records))):
        rec, dy = records[t], dys[t]
        # dLoss/dh of the top layer from this step's output
        if dy is None:
            d_up = np.zeros(H, dtype=net.dtype)
        elif net.output_size is not None:
            g["head.weight"] += np.outer(dy, rec.layers[-1].h)
            g["head.bias"] += dy
            d_up = p["head.weight"].T @ dy
        else:
            d_up = dy
        for k in reversed(range(L)):
            lrec = rec.layers[k]
            dh = carry_h[k] + d_up
            if dh_out is not None:
                dh_out[t, k] = dh
            dai, dah, direct, carry_c[k] = _cell_backward(net.cell, lrec, dh, carry_c[k])
            x_in = rec.x if k == 0 else rec.layers[k - 1].h
            g[f"weight_ih_l{k}"] += np.outer(dai, x_in)
            g[f"weight_hh_l{k}"] += np.outer(dah, lrec.h_prev)
            g[f"bias_ih_l{k}"] += dai
            g[f"bias_hh_l{k}"] += dah
            carry_h[k] = p[f"weight_hh_l{k}"].T @ dah + direct    # to step t-1, layer k
            if k > 0:
                d_up = p[f"weight_ih_l{k}"].T @ dai                # to layer k-1, step t


def _loss_and_grad(net: Net, records: Sequence[_StepRecord], loss: str, n_newest: int
                   ) -> Tuple[float, np.ndarray, int]:
    """The TBPTT loss and gradient of a window of records (oldest first): the mean per-step
    loss of the targeted steps among the ``n_newest`` newest records, backpropagated through
    all of them. Returns (loss, flat gradient, n_targeted); with no targeted step: (nan,
    zeros, 0) and no backward."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _loss_and_grad_impl(net, records, loss, n_newest)


def _loss_and_grad_impl(net: Net, records: Sequence[_StepRecord], loss: str, n_newest: int
                        ) -> Tuple[float, np.ndarray, int]:
    grad = np.zeros(net.flat.shape[0], dtype=net.dtype)
    first = max(len(records) - n_newest, 0)
    n_t = sum(1 for r in records[first:] if r.has_target)
    if n_t == 0:
        return float("nan"), grad, 0
    dys: List[Optional[np.ndarray]] = [None] * len(records)
    total = 0.0
    for j in range(first, len(records)):
        rec = records[j]
        if rec.has_target:
            value, dys[j] = _loss_and_dy(loss, rec.y, rec.target, 1.0 / n_t)
            total += value
    _backward(net, records, dys, grad)
    return total / n_t, grad, n_t


def window_loss_and_grad(net: Net, h0: Any, c0: Any, X: Any, targets: Sequence[Any],
                         loss: str = "mse", n_newest: Optional[int] = None
                         ) -> Tuple[float, np.ndarray]:
    """Loss and flat gradient of one window, with the Trainer's code.

    Runs ``X`` (T, D) from the state (h0, c0) (a constant) with the current weights,
    recording every step, then returns ``(loss, grad)``: the mean per-step loss over the
    targeted steps among the ``n_newest`` (default: all T) newest steps and its gradient
    w.r.t. the flat parameters (same layout as ``net.flat``). ``targets[t]`` follows
    :meth:`Trainer.learn_one`'s rules for y (None or NaN: no target). With no targeted step
    the result is ``(nan, zeros)`` (the Trainer makes no update then).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    X = np.asarray(X, dtype=net.dtype)
    if X.ndim != 2 or X.shape[1] != net.input_size:
        raise ValueError(f"X must have shape (T, {net.input_size}), got {X.shape}")
    if len(targets) != X.shape[0]:
        raise ValueError(f"targets must have {X.shape[0]} entries, got {len(targets)}")
    T = X.shape[0]
    n_newest = T if n_newest is None else _check_int(n_newest, "n_newest", 1)
    h, c = net._check_state(h0, c0)
    records: List[_StepRecord] = []
    for t in range(T):
        rec, h, c = net._record_step(net._check_x(X[t], "X[t]"), h, c)
        rec.target, rec.has_target = _parse_target(net, loss, targets[t])
        records.append(rec)
    value, grad, _ = _loss_and_grad(net, records, loss, n_newest)
    return value, grad


def hidden_state_gradients(net: Net, h0: Any, c0: Any, X: Any, target: Any,
                           loss: str = "mse") -> np.ndarray:
    """How the loss of the last step reaches back in time: dLoss/dh_t for every step.

    Runs ``X`` (T, D) from the state (h0, c0) with the current weights, takes the per-step
    loss of the *last* step's output against ``target`` (the rules of
    :meth:`Trainer.learn_one` for y; it must be a real target) and backpropagates it
    through the whole window (the backward of :func:`window_loss_and_grad`).

    Returns
    -------
    ndarray (T, num_layers, H), the network's dtype
        Row ``t`` holds dLoss/dh of every layer's h leaving step ``t``; its norm against
        ``T - 1 - t`` is the vanishing/exploding-gradient curve
        (``examples/gradient_flow.py`` plots it).

    Raises
    ------
    ValueError
        Bad ``loss``, ``X`` of the wrong shape, an empty window or a missing target.

    Examples
    --------
    >>> import numpy as np
    >>> from streamrnn import reference as ref
    >>> net = ref.Net("rnn_tanh", 1, 4, output_size=1,
    ...               params=ref.random_params("rnn_tanh", 1, 4, 1, 1, seed=0))
    >>> h0, c0 = net.zero_state()
    >>> ref.hidden_state_gradients(net, h0, c0, np.ones((5, 1)), [0.0]).shape
    (5, 1, 4)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    X = np.asarray(X, dtype=net.dtype)
    if X.ndim != 2 or X.shape[1] != net.input_size or X.shape[0] < 1:
        raise ValueError(f"X must have shape (T, {net.input_size}) with T >= 1, got {X.shape}")
    h, c = net._check_state(h0, c0)
    records: List[_StepRecord] = []
    for t in range(X.shape[0]):
        rec, h, c = net._record_step(net._check_x(X[t], "X[t]"), h, c)
        records.append(rec)
    tgt, has = _parse_target(net, loss, target)
    if not has:
        raise ValueError(f"target must be a real target for the last step, got {target!r}")
    dys: List[Optional[np.ndarray]] = [None] * len(records)
    dys[-1] = _loss_and_dy(loss, records[-1].y, tgt, 1.0)[1]
    dh = np.zeros((len(records), net.num_layers, net.hidden_size), dtype=net.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        _backward(net, records, dys, np.zeros(net.flat.shape[0], dtype=net.dtype), dh)
    return dh


def _l2(g: np.ndarray) -> float:
    """L2 norm accumulated in float64 (inf when the sum of squares overflows)."""
    g64 = g.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return math.sqrt(float(np.dot(g64, g64)))


def clip_gradient(grad: np.ndarray, clip_value: Optional[float] = None,
                  clip_norm: Optional[float] = None) -> np.ndarray:
    """A clipped copy of ``grad``: first clamp every component to ``[-clip_value,
    clip_value]``, then multiply by ``min(1, clip_norm / (total + 1e-6))`` with ``total``
    the L2 norm after the value clipping (``torch.nn.utils.clip_grad_norm_``). None: off."""
    g = np.array(grad, copy=True)
    if clip_value is not None:
        g = np.clip(g, -clip_value, clip_value).astype(grad.dtype)
    if clip_norm is not None:
        coef = clip_norm / (_l2(g) + 1e-6)
        if coef < 1.0:
            g = (g.astype(np.float64) * coef).astype(grad.dtype)
    return g


def optimizer_step(opt: Any, p: np.ndarray, g: np.ndarray, m1: np.ndarray, m2: np.ndarray,
                   step: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One optimizer update, functional: returns new arrays ``(p, m1, m2)``.

    ``g`` is the (clipped) gradient, ``step`` the number of updates already applied (0 on
    the first). Moments: SGD ``m1`` = momentum buffer (``m2`` unused); Adam ``m1, m2`` =
    first and second moment; RMSprop ``m1`` = momentum buffer, ``m2`` = square average.
    Unused moments are returned unchanged. Formulas: see :mod:`streamrnn.optim`.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _optimizer_step(opt, p, g, m1, m2, step)


def _optimizer_step(opt: Any, p: np.ndarray, g: np.ndarray, m1: np.ndarray, m2: np.ndarray,
                    step: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    lr = opt.lr
    m1 = m1.copy()
    m2 = m2.copy()
    if opt.weight_decay != 0:
        g = g + opt.weight_decay * p
    if opt.kind == "sgd":
        if opt.momentum != 0:
            m1 = g.copy() if step == 0 else opt.momentum * m1 + g
            g = g + opt.momentum * m1 if opt.nesterov else m1
        return p - lr * g, m1, m2
    if opt.kind == "adam":
        b1, b2 = opt.betas
        t = step + 1
        m1 = m1 + (1.0 - b1) * (g - m1)
        m2 = b2 * m2 + (1.0 - b2) * g * g
        bc1 = 1.0 - b1 ** t
        bc2_sqrt = math.sqrt(1.0 - b2 ** t)
        denom = np.sqrt(m2) / bc2_sqrt + opt.eps
        return p - (lr / bc1) * (m1 / denom), m1, m2
    if opt.kind == "rmsprop":
        m2 = opt.alpha * m2 + (1.0 - opt.alpha) * g * g
        avg = np.sqrt(m2) + opt.eps
        if opt.momentum != 0:
            m1 = opt.momentum * m1 + g / avg
            return p - lr * m1, m1, m2
        return p - lr * (g / avg), m1, m2
    raise ValueError(f"unknown optimizer kind {opt.kind!r}")


# ---------------------------------------------------------------------------------------
# the online trainer
# ---------------------------------------------------------------------------------------

class Trainer:
    """Online TBPTT(k1, k2) on one stream (the reference of sr.OnlineTrainer).

    See the module docstring for the exact semantics.

    Parameters
    ----------
    net : Net
        Trained in place (``net.flat`` is written on every applied update).
    loss : {'mse', 'cross_entropy'}
    optimizer : SGD, Adam or RMSprop from :mod:`streamrnn.optim`; default ``Adam()``
    k1 : int >= 1, update every k1 steps
    k2 : int >= k1, backpropagate through the newest k2 steps
    clip_value, clip_norm : finite float > 0 or None

    Attributes
    ----------
    h, c : the stream state (c None unless LSTM)
    steps : learn_one calls since creation or reset
    updates : applied updates since creation
    skipped : updates skipped for a non-finite loss, gradient or result, since creation
    last_grad_norm : pre-clip gradient L2 norm of the last attempted update (NaN before any)
    last_loss : loss of the last attempted update (NaN before any)
    running_loss : mean per-step loss over all targeted steps since reset (NaN if none)
    opt_steps : the optimizer's step count (= updates)
    m1, m2 : optimizer moments, flat like the parameters (see :func:`optimizer_step`)
    """

    def __init__(self, net: Net, loss: str = "mse", optimizer: Any = None, k1: int = 1,
                 k2: int = 32, clip_value: Optional[float] = None,
                 clip_norm: Optional[float] = None) -> None:
        if not isinstance(net, Net):
            raise TypeError(f"net must be a reference.Net, got {type(net).__name__}")
        loss, optimizer, k1, k2, clip_value, clip_norm = check_trainer_settings(
            loss, optimizer, k1, k2, clip_value, clip_norm, net.out_size)
        self.net = net
        self.loss = loss
        self.optimizer = optimizer
        self.k1 = k1
        self.k2 = k2
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        n = net.flat.shape[0]
        self.m1 = np.zeros(n, dtype=net.dtype)
        self.m2 = np.zeros(n, dtype=net.dtype)
        self.opt_steps = 0
        self.updates = 0
        self.skipped = 0
        self.last_loss = float("nan")
        self.last_grad_norm = float("nan")
        self.reset()

    def reset(self) -> None:
        """Zero the state, empty the ring, clear the since-reset counters (the weights, the
        optimizer state, updates, skipped, last_loss and last_grad_norm are kept)."""
        self.h, self.c = self.net.zero_state()
        self.ring: "collections.deque[_StepRecord]" = collections.deque(maxlen=self.k2)
        self.steps = 0
        self.since_update = 0
        self.loss_sum = 0.0
        self.loss_count = 0

    @property
    def skipped_updates(self) -> int:
        """Alias of ``skipped`` (the name sr.OnlineTrainer uses)."""
        return self.skipped

    @property
    def running_loss(self) -> float:
        """Mean per-step loss of the predictions over all targeted steps since reset."""
        return self.loss_sum / self.loss_count if self.loss_count else float("nan")

    def predict_one(self, x: Any) -> np.ndarray:
        """The output for x from a copy of the state; nothing changes."""
        y, _, _ = self.net.step(x, self.h, self.c)
        return y

    def learn_one(self, x: Any, y: Any = None) -> np.ndarray:
        """Step the stream with x, record target y, update every k1 steps; returns the
        prediction for x made before any learning at this step (a copy)."""
        xv = self.net._check_x(x)
        target, has_target = _parse_target(self.net, self.loss, y)
        rec, self.h, self.c = self.net._record_step(xv, self.h, self.c)
        rec.target, rec.has_target = target, has_target
        self.ring.append(rec)
        if has_target:
            self.loss_sum += _loss_and_dy(self.loss, rec.y, target, 1.0)[0]
            self.loss_count += 1
        self.steps += 1
        self.since_update += 1
        if self.since_update >= self.k1:
            self.since_update = 0
            self._update()
        return rec.y.copy()

    def learn_many(self, X: Any, Y: Any = None) -> np.ndarray:
        """``learn_one`` over the rows of X (T, D); Y: None (no targets) or a sequence of T
        targets with learn_one's rules (cross_entropy: also -1 for no target). All rows
        are validated before any step. Returns the predictions (T, O|H)."""
        X = np.asarray(X, dtype=self.net.dtype)
        if X.ndim != 2 or X.shape[1] != self.net.input_size:
            raise ValueError(f"X must have shape (T, {self.net.input_size}), got {X.shape}")
        T = X.shape[0]
        if Y is None:
            Y = [None] * T
        if len(Y) != T:
            raise ValueError(f"Y must have {T} rows, got {len(Y)}")
        Y = [None if self.loss == "cross_entropy" and isinstance(v, (int, np.integer))
             and not isinstance(v, (bool, np.bool_)) and v == -1 else v for v in Y]
        for t in range(T):
            self.net._check_x(X[t], "X[t]")
            _parse_target(self.net, self.loss, Y[t])
        out = np.empty((T, self.net.out_size), dtype=self.net.dtype)
        for t in range(T):
            out[t] = self.learn_one(X[t], Y[t])
        return out

    def _update(self) -> None:
        """One TBPTT(k1, k2) update from the ring (module docstring, steps a-f)."""
        records = list(self.ring)
        loss, grad, n_t = _loss_and_grad(self.net, records, self.loss, self.k1)
        if n_t == 0:
            return
        self.last_loss = loss
        self.last_grad_norm = _l2(grad)
        if not (math.isfinite(loss) and math.isfinite(self.last_grad_norm)):
            self.skipped += 1
            return
        grad = clip_gradient(grad, self.clip_value, self.clip_norm)
        p_new, m1_new, m2_new = optimizer_step(self.optimizer, self.net.flat, grad, self.m1,
                                               self.m2, self.opt_steps)
        if not (np.all(np.isfinite(p_new)) and np.all(np.isfinite(m1_new))
                and np.all(np.isfinite(m2_new))):
            self.skipped += 1
            return
        self.net.flat[...] = p_new
        self.m1 = m1_new
        self.m2 = m2_new
        self.opt_steps += 1
        self.updates += 1


# ---------------------------------------------------------------------------------------
# whole windows: bidirectional layers, sequence training, encoder-decoder
# ---------------------------------------------------------------------------------------
#
# A window network runs over a whole window X (T, D) at once. With ``num_directions = 2``
# (bidirectional) each layer has a forward direction (t = 0, 1, ..., T-1) and a backward
# direction (t = T-1, ..., 0) with their own parameters (PyTorch's ``..._reverse`` keys);
# the layer's output at step t is ``[h_fwd(t) | h_bwd(t)]`` (2H), the input of the next layer
# (whose D_k is 2H) and of the head (``head.weight`` (O, 2H)). Flat order: for each layer,
# the forward direction's four arrays, then the reverse direction's, then the head: exactly
# ``torch.nn.LSTM(bidirectional=True).named_parameters()`` followed by the head.
#
# States of a window (initial ``h0, c0`` and final ``hT, cT``) have shape (L, ndir, H): the
# forward direction's final state is after t = T-1, the backward direction's after t = 0.
#
# Outputs: "many-to-many" Y (T, O|ndir*H), the head on every step's top-layer output;
# "many-to-one" Y (O|ndir*H,), the head on the readout ``z = [h_fwd(T-1) | h_bwd(0)]`` of the
# top layer (unidirectional: ``z = h(T-1)``, PyTorch's ``out[-1]``).
#
# Sequence losses (:func:`sequence_loss`): many-to-many, the mean over the targeted steps of
# the per-step loss of :func:`step_loss` (mse targets (T, O) with NaN rows = no target;
# cross-entropy targets (T,) ints with -1 = no target); many-to-one, the per-step loss of
# the single output. No targeted step: loss NaN and a zero gradient.

def window_param_shapes(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                        output_size: Optional[int] = None, num_directions: int = 1
                        ) -> List[Tuple[str, Tuple[int, ...]]]:
    """``[(key, shape), ...]`` of a (possibly bidirectional) network in flat order."""
    G = gate_count(cell)
    D = _check_int(input_size, "input_size", 1)
    H = _check_int(hidden_size, "hidden_size", 1)
    L = _check_int(num_layers, "num_layers", 1)
    O = _check_output_size(output_size)
    if num_directions not in (1, 2):
        raise ValueError(f"num_directions must be 1 or 2, got {num_directions!r}")
    shapes: List[Tuple[str, Tuple[int, ...]]] = []
    for k in range(L):
        d_in = D if k == 0 else num_directions * H
        for r in range(num_directions):
            sfx = f"_l{k}" + ("_reverse" if r else "")
            shapes += [(f"weight_ih{sfx}", (G * H, d_in)), (f"weight_hh{sfx}", (G * H, H)),
                       (f"bias_ih{sfx}", (G * H,)), (f"bias_hh{sfx}", (G * H,))]
    if O is not None:
        shapes += [("head.weight", (O, num_directions * H)), ("head.bias", (O,))]
    return shapes


class WindowNet:
    """A (possibly bidirectional) network run over whole windows (the reference of
    ``sr.LSTM/GRU/RNN(..., bidirectional=...)`` with ``run(X)`` and of the sequence
    trainers). ``params``: flat vector of :func:`window_param_shapes` (kept by reference)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, num_directions: int = 1,
                 params: Optional[np.ndarray] = None) -> None:
        self.cell = _check_cell(cell)
        self.shapes = window_param_shapes(cell, input_size, hidden_size, num_layers,
                                          output_size, num_directions)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.output_size = _check_output_size(output_size)
        self.num_directions = num_directions
        n = sum(int(np.prod(s)) for _, s in self.shapes)
        if params is None:
            params = np.zeros(n)
        if params.ndim != 1 or params.shape[0] != n:
            raise ValueError(f"params must be a 1-D array of {n} parameters, got "
                             f"{params.shape}")
        self.flat = params
        self.dtype = params.dtype
        self.p: Dict[str, np.ndarray] = {}
        off = 0
        for key, shape in self.shapes:
            size = int(np.prod(shape))
            self.p[key] = params[off:off + size].reshape(shape)
            off += size
        nH = num_directions * hidden_size
        self.out_size = self.output_size if self.output_size is not None else nH

    def _key(self, name: str, k: int, r: int) -> str:
        return f"{name}_l{k}" + ("_reverse" if r else "")

    def state_shape(self) -> Tuple[int, int, int]:
        return (self.num_layers, self.num_directions, self.hidden_size)


def window_forward(net: WindowNet, X: Any, h0: Any = None, c0: Any = None,
                   many_to_one: bool = False) -> Tuple[np.ndarray, np.ndarray,
                                                       Any, Dict[str, Any]]:
    """Forward over a window: ``(Y, hT, cT, cache)``; h0/c0 (L, ndir, H) or None (zeros).

    cache holds what :func:`window_backward` needs (per layer, direction and step the
    :class:`_LayerRecord`, the layer outputs)."""
    X = np.asarray(X, dtype=net.dtype)
    T = X.shape[0]
    H, L, nd = net.hidden_size, net.num_layers, net.num_directions
    lstm = net.cell == "lstm"
    zeros = np.zeros(net.state_shape(), dtype=net.dtype)
    h0 = zeros if h0 is None else np.asarray(h0, dtype=net.dtype)
    c0 = (zeros if c0 is None else np.asarray(c0, dtype=net.dtype)) if lstm else None
    hT = np.zeros_like(zeros)
    cT: Any = np.zeros_like(zeros) if lstm else None
    records: Dict[Tuple[int, int, int], _LayerRecord] = {}
    outs = []
    inp = X
    for k in range(L):
        out = np.zeros((T, nd * H), dtype=net.dtype)
        for r in range(nd):
            W_ih, W_hh = net.p[net._key("weight_ih", k, r)], net.p[net._key("weight_hh", k, r)]
            b_ih, b_hh = net.p[net._key("bias_ih", k, r)], net.p[net._key("bias_hh", k, r)]
            h = h0[k, r].copy()
            c = c0[k, r].copy() if lstm else None
            order = range(T) if r == 0 else range(T - 1, -1, -1)
            for t in order:
                ai = W_ih @ inp[t] + b_ih
                ah = W_hh @ h + b_hh
                gates, h_new, c_new, extra = _cell_pointwise(net.cell, ai, ah, h, c)
                records[(k, r, t)] = _LayerRecord(h.copy(), None if c is None else c.copy(),
                                                  gates, extra, h_new)
                h, c = h_new, c_new
                out[t, r * H:(r + 1) * H] = h
            hT[k, r] = h
            if lstm:
                cT[k, r] = c
        outs.append(out)
        inp = out
    top = outs[-1]
    if many_to_one:
        z = top[T - 1].copy() if nd == 1 else np.concatenate([top[T - 1, :H], top[0, H:]])
        Y = net.p["head.weight"] @ z + net.p["head.bias"] if net.output_size else z
    else:
        z = None
        Y = top @ net.p["head.weight"].T + net.p["head.bias"] if net.output_size else top.copy()
    cache = {"X": X, "records": records, "outs": outs, "z": z, "many_to_one": many_to_one}
    return Y, hT, cT, cache


def window_backward(net: WindowNet, cache: Dict[str, Any], dY: Any, dhT: Any = None,
                    dcT: Any = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Full BPTT through the window of ``cache``: ``(grad, dX, dh0, dc0)`` given dLoss/dY
    and dLoss/d(final states) (None: zero). grad has the flat layout."""
    X, records, outs = cache["X"], cache["records"], cache["outs"]
    T = X.shape[0]
    H, L, nd = net.hidden_size, net.num_layers, net.num_directions
    lstm = net.cell == "lstm"
    dY = np.asarray(dY, dtype=net.dtype)
    grad = np.zeros_like(net.flat)
    g = WindowNet(net.cell, net.input_size, H, L, net.output_size, nd, grad).p
    top = outs[-1]
    dout = np.zeros((T, nd * H), dtype=net.dtype)
    if cache["many_to_one"]:
        if net.output_size:
            g["head.weight"] += np.outer(dY, cache["z"])
            g["head.bias"] += dY
            dz = net.p["head.weight"].T @ dY
        else:
            dz = dY
        dout[T - 1, :H] += dz[:H]
        if nd == 2:
            dout[0, H:] += dz[H:]
    elif net.output_size:
        g["head.weight"] += dY.T @ top
        g["head.bias"] += dY.sum(axis=0)
        dout = dY @ net.p["head.weight"]
    else:
        dout = dY.copy()
    zeros = np.zeros(net.state_shape(), dtype=net.dtype)
    dhT = zeros if dhT is None else np.asarray(dhT, dtype=net.dtype)
    dcT = (zeros if dcT is None else np.asarray(dcT, dtype=net.dtype)) if lstm else None
    dh0 = np.zeros_like(zeros)
    dc0: Any = np.zeros_like(zeros) if lstm else None
    dX = np.zeros_like(X)
    for k in range(L - 1, -1, -1):
        inp = X if k == 0 else outs[k - 1]
        din = np.zeros_like(inp)
        for r in range(nd):
            W_ih, W_hh = net.p[net._key("weight_ih", k, r)], net.p[net._key("weight_hh", k, r)]
            dh = dhT[k, r].copy()
            dc = dcT[k, r].copy() if lstm else None
            order = range(T - 1, -1, -1) if r == 0 else range(T)
            for t in order:
                rec = records[(k, r, t)]
                dai, dah, direct, dc = _cell_backward(net.cell, rec,
                                                      dh + dout[t, r * H:(r + 1) * H], dc)
                g[net._key("weight_ih", k, r)] += np.outer(dai, inp[t])
                g[net._key("weight_hh", k, r)] += np.outer(dah, rec.h_prev)
                g[net._key("bias_ih", k, r)] += dai
                g[net._key("bias_hh", k, r)] += dah
                din[t] += W_ih.T @ dai
                dh = W_hh.T @ dah + direct
            dh0[k, r] = dh
            if lstm:
                dc0[k, r] = dc
        if k == 0:
            dX = din
        dout = din
    return grad, dX, dh0, dc0


def sequence_loss(loss: str, Y: np.ndarray, target: Any, many_to_one: bool = False
                  ) -> Tuple[float, np.ndarray]:
    """``(loss, dLoss/dY)`` of a window's outputs Y (see the section comment above)."""
    if many_to_one:
        if loss == "mse":
            return _loss_and_dy(loss, Y, np.asarray(target, dtype=np.float64).reshape(-1), 1.0)
        return _loss_and_dy(loss, Y, int(target), 1.0)
    T = Y.shape[0]
    if loss == "mse":
        tg = np.asarray(target, dtype=np.float64).reshape(T, -1)
        targeted = [t for t in range(T) if not np.any(np.isnan(tg[t]))]
    else:
        tg = np.asarray(target).reshape(T)
        targeted = [t for t in range(T) if tg[t] >= 0]
    dY = np.zeros_like(Y)
    if not targeted:
        return float("nan"), dY
    total = 0.0
    for t in targeted:
        v, dy = _loss_and_dy(loss, Y[t], tg[t] if loss == "mse" else int(tg[t]),
                             1.0 / len(targeted))
        total += v
        dY[t] = dy
    return total / len(targeted), dY


def sequence_loss_and_grad(net: WindowNet, X: Any, target: Any, loss: str = "mse",
                           many_to_one: bool = False) -> Tuple[float, np.ndarray]:
    """Loss and flat gradient of one window from zero states (full BPTT)."""
    Y, _, _, cache = window_forward(net, X, many_to_one=many_to_one)
    value, dY = sequence_loss(loss, Y, target, many_to_one)
    return value, window_backward(net, cache, dY)[0]


def decoder_inputs(loss: str, target: Any, out_size: int, start: Any, dtype: Any
                   ) -> np.ndarray:
    """Teacher forcing: the decoder's input tokens (T, O): row 0 ``start`` (a class index
    for cross-entropy, a value (O,) for mse; None: zeros), row t the target of step t-1
    (one-hot for cross-entropy)."""
    if loss == "mse":
        tg = np.asarray(target, dtype=dtype).reshape(-1, out_size)
        T = tg.shape[0]
        tok = np.zeros((T, out_size), dtype=dtype)
        if start is not None:
            tok[0] = np.asarray(start, dtype=dtype).reshape(out_size)
        tok[1:] = tg[:-1]
        return tok
    tg1 = np.asarray(target).reshape(-1)
    T = tg1.shape[0]
    tok = np.zeros((T, out_size), dtype=dtype)
    if start is not None:
        tok[0, int(start)] = 1
    for t in range(1, T):
        tok[t, int(tg1[t - 1])] = 1
    return tok


def seq2seq_loss_and_grad(enc: WindowNet, dec: WindowNet, X_src: Any, target: Any,
                          context: str = "init_state", loss: str = "mse", start: Any = None
                          ) -> Tuple[float, np.ndarray, np.ndarray]:
    """Encoder-decoder with teacher forcing: ``(loss, grad_encoder, grad_decoder)``.

    The encoder (no head) runs over X_src from zeros. Its final state of layer k is the sum
    over its directions of the final states (forward: after the last step, backward: after
    the first). ``context="init_state"``: those (h, c) are the decoder's initial states;
    ``"input"``: the top layer's final h is appended to the decoder's input at every step and
    the decoder starts from zeros. The decoder (unidirectional, head of size O) reads the
    tokens of :func:`decoder_inputs` (``[token | context]`` for "input"); the loss is the
    many-to-many :func:`sequence_loss` of its outputs against ``target``. Backpropagation
    runs through the decoder into the encoder."""
    _, hT, cT, cache_e = window_forward(enc, X_src)
    lstm = enc.cell == "lstm"
    h_ctx = hT.sum(axis=1)                       # (L, H)
    c_ctx: Any = cT.sum(axis=1) if lstm else None
    O = dec.out_size
    tok = decoder_inputs(loss, target, O, start, dec.dtype)
    T = tok.shape[0]
    if context == "init_state":
        Xd = tok
        h0 = h_ctx[:, None, :]
        c0 = c_ctx[:, None, :] if lstm else None
    else:
        Xd = np.concatenate([tok, np.repeat(h_ctx[-1][None, :], T, axis=0)], axis=1)
        h0 = c0 = None
    Yd, _, _, cache_d = window_forward(dec, Xd, h0, c0)
    value, dY = sequence_loss(loss, Yd, target)
    g_dec, dXd, dh0, dc0 = window_backward(dec, cache_d, dY)
    shape = enc.state_shape()
    if context == "init_state":
        dhT = np.broadcast_to(dh0[:, 0:1, :], shape).copy()
        dcT = np.broadcast_to(dc0[:, 0:1, :], shape).copy() if lstm else None
    else:
        dhT = np.zeros(shape, dtype=enc.dtype)
        dhT[-1, :, :] = dXd[:, O:].sum(axis=0)
        dcT = None
    Ye = cache_e["outs"][-1]
    g_enc = window_backward(enc, cache_e, np.zeros_like(Ye), dhT, dcT)[0]
    return value, g_enc, g_dec


class SequenceTrainer:
    """Reference of :class:`streamrnn.SequenceTrainer` over :class:`WindowNet`(s): one
    update per call of ``learn_batch`` = mean of the per-window gradients (windows without
    a target left out), the mean of their losses, then :func:`clip_gradient` and
    :func:`optimizer_step` exactly as in the online trainer's update (steps d-f). With two
    networks (an encoder-decoder) their gradients are concatenated, encoder first."""

    def __init__(self, nets: Sequence[WindowNet], loss: str = "mse", optimizer: Any = None,
                 clip_value: Optional[float] = None, clip_norm: Optional[float] = None
                 ) -> None:
        self.nets = list(nets)
        self.loss = loss
        self.optimizer = optimizer if optimizer is not None else Adam()
        self.clip_value, self.clip_norm = clip_value, clip_norm
        P = sum(n.flat.shape[0] for n in self.nets)
        dt = self.nets[0].dtype
        self.m1 = np.zeros(P, dtype=dt)
        self.m2 = np.zeros(P, dtype=dt)
        self.opt_steps = self.updates = self.skipped = 0

    def apply(self, loss: float, grad: np.ndarray) -> None:
        """Steps d-f of an update with a ready mean loss and gradient."""
        norm = _l2(grad)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            self.skipped += 1
            return
        grad = clip_gradient(grad, self.clip_value, self.clip_norm)
        flat = np.concatenate([n.flat for n in self.nets])
        p_new, m1, m2 = optimizer_step(self.optimizer, flat, grad, self.m1, self.m2,
                                       self.opt_steps)
        if not (np.all(np.isfinite(p_new)) and np.all(np.isfinite(m1))
                and np.all(np.isfinite(m2))):
            self.skipped += 1
            return
        off = 0
        for n in self.nets:
            n.flat[...] = p_new[off:off + n.flat.shape[0]]
            off += n.flat.shape[0]
        self.m1, self.m2 = m1, m2
        self.opt_steps += 1
        self.updates += 1

    def learn_batch(self, windows: Sequence[Any], targets: Sequence[Any],
                    many_to_one: Any = False) -> float:
        """One update from windows (single network: sequences; two: (src, tgt) pairs with
        ``targets`` the decoder targets and ``windows`` the sources). ``many_to_one``: one
        flag for all windows or one per window."""
        flags = (list(many_to_one) if isinstance(many_to_one, (list, tuple, np.ndarray))
                 else [many_to_one] * len(windows))
        losses, grads = [], []
        for X, Y, m2o in zip(windows, targets, flags):
            if len(self.nets) == 1:
                v, g = sequence_loss_and_grad(self.nets[0], X, Y, self.loss, bool(m2o))
            else:
                v, ge, gd = seq2seq_loss_and_grad(self.nets[0], self.nets[1], X, Y,
                                                  self.context, self.loss, self.start)
                g = np.concatenate([ge, gd])
            if not math.isnan(v):
                losses.append(v)
                grads.append(g)
        if not losses:
            return float("nan")
        loss = float(np.mean(losses))
        grad = (np.sum([g.astype(np.float64) for g in grads], axis=0) / len(grads)
                ).astype(self.nets[0].dtype)
        self.apply(loss, grad)
        return loss

    context = "init_state"
    start: Any = None
