"""Clipping, the optimizers' formulas (torch.optim's, see :mod:`streamrnn.optim`) and the
end of every update (the online trainer's steps d-f, the sequence trainer's ``apply``)."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ..optim import Adam


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


class _Updater:
    """The optimizer state of a trainer of the networks ``nets`` and the end of its updates.

    Attributes: nets, optimizer, clip_value, clip_norm; m1, m2 (the moments, flat like the
    parameters, see :func:`optimizer_step`); opt_steps (the optimizer's step count, =
    updates); updates (applied); skipped (skipped for a non-finite loss, gradient or
    result); last_loss and last_grad_norm (of the last attempted update, NaN before any).
    """

    def __init__(self, nets: Sequence[Any], optimizer: Any, clip_value: Optional[float],
                 clip_norm: Optional[float]) -> None:
        self.nets = list(nets)   # their ``flat`` vectors are updated in place, in order
        self.optimizer = optimizer if optimizer is not None else Adam()
        self.clip_value, self.clip_norm = clip_value, clip_norm
        n = sum(net.flat.shape[0] for net in self.nets)
        self.m1 = np.zeros(n, dtype=self.nets[0].dtype)
        self.m2 = np.zeros(n, dtype=self.nets[0].dtype)
        self.opt_steps = self.updates = self.skipped = 0
        self.last_loss = self.last_grad_norm = float("nan")

    def apply(self, loss: float, grad: np.ndarray) -> None:
        """Steps d-f of an update with a ready (mean) loss and gradient: skip on a
        non-finite loss or gradient norm, clip, take the optimizer's candidate, skip if it
        is not finite, else write the weights in place and keep the moments."""
        self.last_loss = loss
        self.last_grad_norm = norm = _l2(grad)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            self.skipped += 1
            return
        grad = clip_gradient(grad, self.clip_value, self.clip_norm)
        flats = [net.flat for net in self.nets]
        flat = flats[0] if len(flats) == 1 else np.concatenate(flats)
        p_new, m1, m2 = optimizer_step(self.optimizer, flat, grad, self.m1, self.m2,
                                       self.opt_steps)
        if not (np.all(np.isfinite(p_new)) and np.all(np.isfinite(m1))
                and np.all(np.isfinite(m2))):
            self.skipped += 1
            return
        off = 0
        for f in flats:
            f[...] = p_new[off:off + f.shape[0]]
            off += f.shape[0]
        self.m1, self.m2 = m1, m2
        self.opt_steps += 1
        self.updates += 1
