"""Whole windows: one or two directions, sequence training, encoder-decoder.

A network runs over a whole window X (T, D) at once, layer by layer (:meth:`Net._layer_forward`,
the same step as the streaming forward); the backward is the network's one backward
(:meth:`Net._backward`) over the window's records.

States of a window (initial ``h0, c0`` and final ``hT, cT``) have shape (L, ndir, H): the
forward direction's final state is after t = T-1, the reverse direction's after t = 0.

Outputs: "many-to-many" Y (T, O|ndir*H), the head on every step's top-layer output;
"many-to-one" Y (O|ndir*H,), the head on the readout ``z = [h_fwd(T-1) | h_bwd(0)]`` of the
top layer (unidirectional: ``z = h(T-1)``, PyTorch's ``out[-1]``). Losses: see
:mod:`streamrnn.reference.losses`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cells import LSTM_CELLS
from .losses import sequence_loss
from .net import Net
from .optim import _Updater


def window_forward(net: Net, X: Any, h0: Any = None, c0: Any = None,
                   many_to_one: bool = False) -> Tuple[np.ndarray, np.ndarray,
                                                       Any, Dict[str, Any]]:
    """Forward over a window: ``(Y, hT, cT, cache)``; h0/c0 (L, ndir, H) or None (zeros).

    cache holds what :func:`window_backward` needs (the records of every layer, direction
    and step, the layer outputs)."""
    X = np.asarray(X, dtype=net.dtype)
    T, H, nd = X.shape[0], net.hidden_size, net.num_directions
    h0, c0 = net._window_states(h0, c0)
    hT, cT = net._window_states(None, None)
    records: List[List[List[Any]]] = []
    outs = []
    inp = X
    for k in range(net.num_layers):
        out = np.zeros((T, nd * H), dtype=net.dtype)
        records.append([])
        for r in range(nd):
            recs, hT[k, r], c = net._layer_forward(k, r, inp, h0[k, r],
                                                   c0[k, r] if c0 is not None else None)
            if cT is not None:
                cT[k, r] = c
            for t, rec in enumerate(recs):
                out[t, r * H:(r + 1) * H] = rec.h
            records[-1].append(recs)
        outs.append(out)
        inp = out
    top = outs[-1]
    if many_to_one:
        z = top[T - 1].copy() if nd == 1 else np.concatenate([top[T - 1, :H], top[0, H:]])
        Y = net._head(z)
    else:
        z = None
        Y = np.array([net._head(top[t]) for t in range(T)], dtype=net.dtype
                     ).reshape(T, net.out_size)
    cache = {"X": X, "records": records, "outs": outs, "z": z, "many_to_one": many_to_one}
    return Y, hT, cT, cache


def window_backward(net: Net, cache: Dict[str, Any], dY: Any, dhT: Any = None,
                    dcT: Any = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Full BPTT through the window of ``cache``: ``(grad, dX, dh0, dc0)`` given dLoss/dY
    and dLoss/d(final states) (None: zero). grad has the flat layout."""
    T, H = cache["X"].shape[0], net.hidden_size
    dY = np.asarray(dY, dtype=net.dtype)
    grad = np.zeros_like(net.flat)
    g = net.split(grad)
    if cache["many_to_one"]:
        dz = net._head_backward([cache["z"]], [dY], g)[0]
        d_top = np.zeros((T, net.num_directions * H), dtype=net.dtype)
        d_top[T - 1, :H] += dz[:H]
        d_top[0, H:] += dz[H:]
    else:
        d_top = net._head_backward(cache["outs"][-1], dY, g)
    dX, dh0, dc0 = net._backward(cache["records"], d_top, dhT, dcT, g)
    return grad, dX, dh0, dc0


def sequence_loss_and_grad(net: Net, X: Any, target: Any, loss: str = "mse",
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


def seq2seq_loss_and_grad(enc: Net, dec: Net, X_src: Any, target: Any,
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
    lstm = enc.cell in LSTM_CELLS
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


class SequenceTrainer(_Updater):
    """Reference of :class:`streamrnn.SequenceTrainer` over :class:`Net`\\ (s): one update
    per call of ``learn_batch`` = mean of the per-window gradients (windows without a target
    left out), the mean of their losses, then :meth:`apply`: the online trainer's update
    steps d-f. With two networks (an encoder-decoder) their gradients are concatenated,
    encoder first."""

    context = "init_state"
    start: Any = None

    def __init__(self, nets: Sequence[Net], loss: str = "mse", optimizer: Any = None,
                 clip_value: Optional[float] = None, clip_norm: Optional[float] = None
                 ) -> None:
        super().__init__(nets, optimizer, clip_value, clip_norm)
        self.loss = loss

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
