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
``lstm_        4   as ``lstm`` with peepholes (ONNX's ``P``), ``weight_peephole`` =
peephole``         ``[p_i | p_f | p_o]``: ``i = sigmoid(. + p_i*c)``, ``f = sigmoid(. + p_f*c)``,
                   ``c' = f*c + i*g``, ``o = sigmoid(. + p_o*c')``, ``h' = o*tanh(c')``
``gru_reset_   3   as ``gru``, but the reset gate acts on h before the product:
before``           ``n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)`` (ONNX
                   ``linear_before_reset=0``, Keras ``reset_after=False``)
=============  ==  ===================================================================

For ``gru_reset_before`` the recurrent part of the n rows needs r, so :func:`cell_step`
forms it in two stages (r first) and :func:`cell_step_backward` takes its gradient through
``W_hn`` and ``r*h`` there.

The logistic sigmoid is computed as ``1/(1+exp(-x))`` for ``x >= 0`` and as
``exp(x)/(1+exp(x))`` for ``x < 0`` (no overflow; the C core uses the same branches).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

LSTM_CELLS = ("lstm", "lstm_peephole")     # the cells with a cell state c


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
        self.extra = extra      # (H,) LSTM tanh(c'), GRU W_hn h_prev + b_hn,
        #                         gru_reset_before r*h_prev, else None
        self.h = h              # (H,) h leaving the step
        self.c = c              # (H,) c leaving the step (LSTM), else None


def _cell_pointwise(cell: str, ai: np.ndarray, ah: np.ndarray, h: np.ndarray,
                    c: Optional[np.ndarray], peep: Optional[np.ndarray] = None
                    ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """The pointwise part of one cell step.

    ai = W_ih x + b_ih and ah = W_hh h + b_hh (both (G*H,)), h/c the state entering the step;
    for gru_reset_before the n rows of ah are W_hn (r*h) + b_hn (:func:`_recurrent_part`);
    peep (3H,): lstm_peephole's ``[p_i | p_f | p_o]``.
    Returns (gates, h_new, c_new, extra): post-activation gates, the new h, the new c (LSTM;
    else None) and the extra term the backward needs (LSTM tanh(c_new), GRU the n rows of ah,
    gru_reset_before r*h).
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
    if cell == "lstm_peephole":
        assert c is not None and peep is not None
        a = ai + ah
        p_i, p_f, p_o = peep[0:H], peep[H:2 * H], peep[2 * H:3 * H]
        i = sigmoid(a[0:H] + p_i * c)             # the gates i, f see c_{t-1}
        f = sigmoid(a[H:2 * H] + p_f * c)
        g = np.tanh(a[2 * H:3 * H])
        c_new = f * c + i * g
        o = sigmoid(a[3 * H:4 * H] + p_o * c_new)  # o sees c_t
        tc = np.tanh(c_new)
        return np.concatenate([i, f, g, o]), o * tc, c_new, tc
    if cell == "gru":
        r = sigmoid(ai[0:H] + ah[0:H])
        z = sigmoid(ai[H:2 * H] + ah[H:2 * H])
        ah_n = ah[2 * H:3 * H].copy()
        n = np.tanh(ai[2 * H:3 * H] + r * ah_n)
        h_new = (1 - z) * n + z * h
        return np.concatenate([r, z, n]), h_new, None, ah_n
    if cell == "gru_reset_before":
        r = sigmoid(ai[0:H] + ah[0:H])
        z = sigmoid(ai[H:2 * H] + ah[H:2 * H])
        n = np.tanh(ai[2 * H:3 * H] + ah[2 * H:3 * H])
        h_new = (1 - z) * n + z * h
        return np.concatenate([r, z, n]), h_new, None, r * h
    raise ValueError(f"unknown cell {cell!r}")


def _recurrent_part(cell: str, w_hh: np.ndarray, b_hh: np.ndarray, ai: np.ndarray,
                    h: np.ndarray) -> np.ndarray:
    """ah (G*H,): ``W_hh h + b_hh``; for gru_reset_before the n rows are ``W_hn (r*h) + b_hn``
    with ``r = sigmoid(ai_r + W_hr h + b_hr)`` (the reset gate needs the r rows first)."""
    ah = w_hh @ h + b_hh
    if cell == "gru_reset_before":
        H = h.shape[0]
        r = sigmoid(ai[0:H] + ah[0:H])
        ah[2 * H:3 * H] = w_hh[2 * H:3 * H] @ (r * h) + b_hh[2 * H:3 * H]
    return ah


def _cell_backward(cell: str, rec: _LayerRecord, dh: np.ndarray, dc: Optional[np.ndarray],
                   peep: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Backward of the pointwise part of one cell step from its record.

    dh: dLoss/dh_new (from the head or the layer above at this step, plus from the next
    step); dc: LSTM dLoss/dc_new from the next step (else None).
    Returns (dai, dah, direct, dc_prev): dLoss/d(W_ih x + b_ih), dLoss/d(W_hh h + b_hh), the
    part of dLoss/dh_prev that does not pass through W_hh (GRU: z*dh; else 0) and, for LSTM,
    dLoss/dc_prev. gru_reset_before: the r rows of dai and dah are left 0 and dah's n rows
    are dLoss/d(W_hn (r*h) + b_hn); :func:`cell_step_backward` adds the r rows and h_prev's
    path through ``r*h``, which need ``W_hn``. lstm_peephole: ``peep`` its peepholes; the
    gradient of ``[p_i | p_f | p_o]`` is ``[d_i*c_prev | d_f*c_prev | d_o*c]`` from the
    returned dai (:func:`cell_step_backward`).
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
    if cell == "lstm_peephole":
        g = rec.gates
        i, f, gg, o = g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H]
        tc = rec.extra
        assert dc is not None and rec.c_prev is not None and tc is not None and peep is not None
        p_i, p_f, p_o = peep[0:H], peep[H:2 * H], peep[2 * H:3 * H]
        d_o = dh * tc * o * (1 - o)
        dct = dc + dh * o * (1 - tc * tc) + d_o * p_o   # c_t: via h, o's peephole, t+1
        d_i = dct * gg * i * (1 - i)
        d_f = dct * rec.c_prev * f * (1 - f)
        d_g = dct * i * (1 - gg * gg)
        da = np.concatenate([d_i, d_f, d_g, d_o])
        return da, da.copy(), zero, dct * f + d_i * p_i + d_f * p_f
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
    if cell == "gru_reset_before":
        g = rec.gates
        z, n = g[H:2 * H], g[2 * H:3 * H]
        dn = dh * (1 - z) * (1 - n * n)            # dLoss/d(pre-activation of n)
        dz = dh * (rec.h_prev - n) * z * (1 - z)
        da = np.concatenate([zero, dz, dn])
        return da, da.copy(), dh * z, None
    raise ValueError(f"unknown cell {cell!r}")


def cell_step(cell: str, w: Dict[str, np.ndarray], sfx: str, x: np.ndarray, h: np.ndarray,
              c: Optional[np.ndarray]) -> _LayerRecord:
    """One step of one layer and direction (the one pre-activation helper): ``ai = W_ih x +
    b_ih``, ``ah = W_hh h + b_hh`` with the arrays ``w[name + sfx]``, then the pointwise
    part. x, h, c are not written; the record keeps x itself and copies of h and c."""
    ai = w["weight_ih" + sfx] @ x + w["bias_ih" + sfx]
    ah = _recurrent_part(cell, w["weight_hh" + sfx], w["bias_hh" + sfx], ai, h)
    c_prev = None if c is None else c.copy()
    gates, h_new, c_new, extra = _cell_pointwise(cell, ai, ah, h, c_prev,
                                                 w.get("weight_peephole" + sfx))
    return _LayerRecord(x, h.copy(), c_prev, gates, extra, h_new, c_new)


def cell_step_backward(cell: str, w: Dict[str, np.ndarray], g: Dict[str, np.ndarray],
                       sfx: str, rec: _LayerRecord, dh: np.ndarray, dc: Optional[np.ndarray]
                       ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Backward of :func:`cell_step` from its record with the weights ``w`` (current ones):
    adds the step's parameter gradients into the views ``g`` and returns ``(dx, dh_prev,
    dc_prev)``, dLoss/d of the step's input and of the state entering it."""
    dai, dah, direct, dc_prev = _cell_backward(cell, rec, dh, dc, w.get("weight_peephole" + sfx))
    w_hh = w["weight_hh" + sfx]
    if cell == "lstm_peephole":
        H = dh.shape[0]
        assert rec.c_prev is not None and rec.c is not None
        g["weight_peephole" + sfx] += np.concatenate([dai[0:H] * rec.c_prev,
                                                      dai[H:2 * H] * rec.c_prev,
                                                      dai[3 * H:4 * H] * rec.c])
    if cell == "gru_reset_before":
        # n = tanh(. + W_hn (r*h) + b_hn): d(r*h) = W_hn^T dn reaches r and h_prev
        H = dh.shape[0]
        r, rh = rec.gates[0:H], rec.extra
        assert rh is not None
        d_rh = w_hh[2 * H:3 * H].T @ dah[2 * H:3 * H]
        dai[0:H] = dah[0:H] = d_rh * rec.h_prev * r * (1 - r)
        g["weight_hh" + sfx][0:2 * H] += np.outer(dah[0:2 * H], rec.h_prev)
        g["weight_hh" + sfx][2 * H:3 * H] += np.outer(dah[2 * H:3 * H], rh)
        dh_prev = w_hh[0:2 * H].T @ dah[0:2 * H] + d_rh * r + direct
    else:
        g["weight_hh" + sfx] += np.outer(dah, rec.h_prev)
        dh_prev = w_hh.T @ dah + direct
    g["weight_ih" + sfx] += np.outer(dai, rec.x)
    g["bias_ih" + sfx] += dai
    g["bias_hh" + sfx] += dah
    dx = w["weight_ih" + sfx].T @ dai
    return dx, dh_prev, dc_prev
