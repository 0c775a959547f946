"""Targets and losses.

Per-step losses (computed in float64 from the stored values): ``mse = mean_j (y_pred[j] -
y[j])**2``; ``cross_entropy = logsumexp(y_pred) - y_pred[y]`` with ``logsumexp(v) = max(v) +
log(sum(exp(v - max(v))))``. Their gradients: ``(2/O) (y_pred - y)`` and ``softmax(y_pred) -
onehot(y)``.

Sequence losses (:func:`sequence_loss`): many-to-many, the mean over the targeted steps of
the per-step loss (mse targets (T, O) with NaN rows = no target; cross-entropy targets (T,)
ints with -1 = no target); many-to-one, the per-step loss of the single output. No targeted
step: loss NaN and a zero gradient.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

import numpy as np

from .._checks import LOSSES

if TYPE_CHECKING:
    from .net import Net


def _parse_target(net: "Net", loss: str, y: Any) -> Tuple[Any, bool]:
    """A step's target as stored in a record: (target, has_target). Raises on bad input
    (the rules of :meth:`Trainer.learn_one`)."""
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
        return value, dy.astype(y.dtype)


def step_loss(loss: str, y_pred: Any, target: Any) -> float:
    """The per-step loss of prediction ``y_pred`` against ``target`` (float64):
    mse ``mean((y_pred - target)**2)``; cross_entropy ``logsumexp(y_pred) -
    y_pred[target]`` (target a class index)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    y = np.atleast_1d(np.asarray(y_pred, dtype=np.float64))
    return _loss_and_dy(loss, y, target, 1.0)[0]


def _mean_loss(loss: str, ys: Sequence[np.ndarray], targets: Sequence[Any]
               ) -> Tuple[float, List[Optional[np.ndarray]], int]:
    """Mean per-step loss over the n steps with a target (``targets[t]`` not None) and
    those steps' ``dLoss/dy`` scaled by 1/n (None at the others): ``(loss, dys, n)``, the
    loss NaN when n == 0."""
    steps = [t for t in range(len(ys)) if targets[t] is not None]
    dys: List[Optional[np.ndarray]] = [None] * len(ys)
    total = 0.0
    for t in steps:
        value, dys[t] = _loss_and_dy(loss, ys[t], targets[t], 1.0 / len(steps))
        total += value
    return (total / len(steps) if steps else float("nan")), dys, len(steps)


def sequence_loss(loss: str, Y: np.ndarray, target: Any, many_to_one: bool = False
                  ) -> Tuple[float, np.ndarray]:
    """``(loss, dLoss/dY)`` of a window's outputs Y (see the module docstring)."""
    if many_to_one:
        if loss == "mse":
            return _loss_and_dy(loss, Y, np.asarray(target, dtype=np.float64).reshape(-1), 1.0)
        return _loss_and_dy(loss, Y, int(target), 1.0)
    T = Y.shape[0]
    targets: List[Any]
    if loss == "mse":
        tg = np.asarray(target, dtype=np.float64).reshape(T, -1)
        targets = [None if np.any(np.isnan(row)) else row for row in tg]
    else:
        targets = [int(v) if v >= 0 else None for v in np.asarray(target).reshape(T)]
    value, dys, _ = _mean_loss(loss, list(Y), targets)
    dY = np.zeros_like(Y)
    for t, dy in enumerate(dys):
        if dy is not None:
            dY[t] = dy
    return value, dY
