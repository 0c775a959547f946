"""The cells: forward and backward of one layer, one direction, one step (the only place
each cell's maths lives).

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

The logistic sigmoid is computed as ``1/(1+exp(-x))`` for ``x >= 0`` and as
``exp(x)/(1+exp(x))`` for ``x < 0`` (no overflow; the C core uses the same branches).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, stable: ``1/(1+exp(-x))`` for x >= 0, ``exp(x)/(1+exp(x))`` for
    x < 0. Each ``exp`` only ever sees a non-positive argument, so nothing overflows."""
    x = np.asarray(x)
    pos = x >= 0
    e_neg = np.exp(np.where(pos, -x, 0))   # exp(-x) where x >= 0, unused elsewhere
    e_pos = np.exp(np.where(pos, 0, x))    # exp(x) where x < 0, unused elsewhere
    return np.where(pos, 1 / (1 + e_neg), e_pos / (1 + e_pos))


class _LayerRecord:
    """What one layer's backward needs from one step, and the state the step leaves."""

    __slots__ = ("x", "h_prev", "c_prev", "gates", "extra", "h", "c")

    def __init__(self, x: np.ndarray, h_prev: np.ndarray, c_prev: Optional[np.ndarray],
                 gates: np.ndarray, extra: Optional[np.ndarray], h: np.ndarray,
                 c: Optional[np.ndarray]) -> None:
        self.x = x              # (D_k,) the layer's input at this step (not copied)
        self.h_prev = h_prev    # (H,) h entering the step
        self.c_prev = c_prev    # (H,) c entering the step (LSTM), else None
        self.gates = gates      # (G*H,) post-activation gates (RNN: = h)
        self.extra = extra      # (H,) LSTM tanh(c'), GRU W_hn h_prev + b_hn, else None
        self.h = h              # (H,) h leaving the step
        self.c = c              # (H,) c leaving the step (LSTM), else None


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
    """Backward of the pointwise part of one cell step from its record.

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


def cell_step(cell: str, w: Dict[str, np.ndarray], sfx: str, x: np.ndarray, h: np.ndarray,
              c: Optional[np.ndarray]) -> _LayerRecord:
    """One step of one layer and direction (the one pre-activation helper): ``ai = W_ih x +
    b_ih``, ``ah = W_hh h + b_hh`` with the arrays ``w[name + sfx]``, then the pointwise
    part. x, h, c are not written; the record keeps x itself and copies of h and c."""
    ai = w["weight_ih" + sfx] @ x + w["bias_ih" + sfx]
    ah = w["weight_hh" + sfx] @ h + w["bias_hh" + sfx]
    c_prev = None if c is None else c.copy()
    gates, h_new, c_new, extra = _cell_pointwise(cell, ai, ah, h, c_prev)
    return _LayerRecord(x, h.copy(), c_prev, gates, extra, h_new, c_new)


def cell_step_backward(cell: str, w: Dict[str, np.ndarray], g: Dict[str, np.ndarray],
                       sfx: str, rec: _LayerRecord, dh: np.ndarray, dc: Optional[np.ndarray]
                       ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Backward of :func:`cell_step` from its record with the weights ``w`` (current ones):
    adds the step's parameter gradients into the views ``g`` and returns ``(dx, dh_prev,
    dc_prev)``, dLoss/d of the step's input and of the state entering it."""
    dai, dah, direct, dc_prev = _cell_backward(cell, rec, dh, dc)
    g["weight_ih" + sfx] += np.outer(dai, rec.x)
    g["weight_hh" + sfx] += np.outer(dah, rec.h_prev)
    g["bias_ih" + sfx] += dai
    g["bias_hh" + sfx] += dah
    dx = w["weight_ih" + sfx].T @ dai
    return dx, w["weight_hh" + sfx].T @ dah + direct, dc_prev
