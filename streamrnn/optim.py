"""Optimizer settings for :class:`streamrnn.OnlineTrainer`: SGD, Adam and RMSprop.

These are small immutable configuration objects; the update itself runs in the C core
(and, in readable NumPy, in :func:`streamrnn.reference.optimizer_step`). Each implements
the formulas of the corresponding ``torch.optim`` class with its defaults (SGD:
``dampening=0``; Adam: ``amsgrad=False, maximize=False``; RMSprop: ``centered=False``), so a
trajectory can be compared step by step with PyTorch.

Notation (per parameter component, applied to the whole flat parameter vector at once):
``p`` parameter, ``g`` gradient after clipping, ``t`` the number of applied updates so far
including this one (skipped updates do not count).

>>> import streamrnn as sr
>>> sr.Adam(lr=1e-2)
Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Tuple

import numpy as np

__all__ = ["SGD", "Adam", "RMSprop"]


def _number(value: Any, name: str, expected: str) -> float:
    """``value`` as a finite float; bool (and anything that is not a real number) is a
    TypeError, a non-finite value a ValueError. ``expected`` completes "must be ..."."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return v


def _at_least(value: Any, name: str, low: float) -> float:
    expected = f"a finite number >= {low:g}"
    v = _number(value, name, expected)
    if not v >= low:
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return v


def _positive(value: Any, name: str) -> float:
    expected = "a finite number > 0"
    v = _number(value, name, expected)
    if not v > 0:
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return v


def _unit(value: Any, name: str) -> float:
    expected = "a finite number in [0, 1)"
    v = _number(value, name, expected)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return v


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


class _Optimizer:
    """Common behaviour: read-only attributes, equality, hashing, repr and pickling."""

    kind: str = ""
    _fields: Tuple[str, ...] = ()

    def _freeze(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} settings are read-only; create a new "
                             f"{type(self).__name__}(...) instead of setting {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} settings are read-only")

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._values())

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> Any:
        # rebuilt through __init__, so a loaded object is validated again
        return (type(self), self._values())

    def __copy__(self) -> "_Optimizer":
        return self

    def __deepcopy__(self, memo: Any) -> "_Optimizer":
        return self


class SGD(_Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay.

    The update of ``torch.optim.SGD`` with ``dampening=0, maximize=False``::

        g = g + weight_decay * p                      (when weight_decay != 0)
        if momentum != 0:
            buf = g                          on the first applied update
            buf = momentum * buf + g         afterwards
            g = g + momentum * buf           if nesterov
            g = buf                          otherwise
        p = p - lr * g

    Parameters
    ----------
    lr : float
        Learning rate, a finite number >= 0 (required, as in PyTorch).
    momentum : float, default 0.0
        Momentum factor, a finite number >= 0.
    nesterov : bool, default False
        Nesterov momentum; requires ``momentum > 0``.
    weight_decay : float, default 0.0
        L2 penalty coefficient added to the gradient, a finite number >= 0.

    Raises
    ------
    TypeError
        A setting of the wrong type (a bool is not a number).
    ValueError
        A setting out of range or not finite; ``nesterov=True`` with ``momentum == 0``.

    Examples
    --------
    >>> SGD(lr=0.1, momentum=0.9, nesterov=True)
    SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
    """

    kind = "sgd"
    _fields = ("lr", "momentum", "nesterov", "weight_decay")

    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        lr = _at_least(lr, "lr", 0.0)
        momentum = _at_least(momentum, "momentum", 0.0)
        nesterov = _flag(nesterov, "nesterov")
        weight_decay = _at_least(weight_decay, "weight_decay", 0.0)
        if nesterov and momentum <= 0.0:
            raise ValueError(f"nesterov=True requires momentum > 0, got momentum={momentum!r}")
        self._freeze(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


class Adam(_Optimizer):
    r"""Adam (Kingma & Ba), with L2 weight decay added to the gradient.

    The update of ``torch.optim.Adam`` with ``amsgrad=False, maximize=False``::

        g = g + weight_decay * p                      (when weight_decay != 0)
        t = t + 1
        m = m + (1 - beta1) * (g - m)      (= beta1 * m + (1 - beta1) * g; torch's lerp)
        v = beta2 * v + (1 - beta2) * g * g
        p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    ``m`` and ``v`` start at zero.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, a finite number >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, a finite number > 0.
    weight_decay : float, default 0.0
        L2 penalty coefficient added to the gradient, a finite number >= 0.

    Raises
    ------
    TypeError, ValueError
        As for :class:`SGD`.

    Examples
    --------
    >>> Adam(lr=3e-3, betas=(0.8, 0.99))
    Adam(lr=0.003, betas=(0.8, 0.99), eps=1e-08, weight_decay=0.0)
    """

    kind = "adam"
    _fields = ("lr", "betas", "eps", "weight_decay")

    lr: float
    betas: Tuple[float, float]
    eps: float
    weight_decay: float

    def __init__(self, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        lr = _at_least(lr, "lr", 0.0)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") \
                or not hasattr(betas, "__getitem__"):
            raise TypeError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got "
                            f"{type(betas).__name__} {betas!r}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got "
                             f"{len(betas)} values {tuple(betas)!r}")
        b1 = _unit(betas[0], "betas[0]")
        b2 = _unit(betas[1], "betas[1]")
        eps = _positive(eps, "eps")
        weight_decay = _at_least(weight_decay, "weight_decay", 0.0)
        self._freeze(lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)


class RMSprop(_Optimizer):
    r"""RMSprop (Hinton), optionally with momentum and weight decay.

    The update of ``torch.optim.RMSprop`` with ``centered=False, maximize=False``::

        g = g + weight_decay * p                      (when weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v) + eps
        if momentum > 0:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg

    ``v`` and ``buf`` start at zero.

    Parameters
    ----------
    lr : float, default 1e-2
        Learning rate, a finite number >= 0.
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average, in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, a finite number > 0.
    momentum : float, default 0.0
        Momentum factor, a finite number >= 0.
    weight_decay : float, default 0.0
        L2 penalty coefficient added to the gradient, a finite number >= 0.

    Raises
    ------
    TypeError, ValueError
        As for :class:`SGD`.

    Examples
    --------
    >>> RMSprop(lr=1e-3, momentum=0.9)
    RMSprop(lr=0.001, alpha=0.99, eps=1e-08, momentum=0.9, weight_decay=0.0)
    """

    kind = "rmsprop"
    _fields = ("lr", "alpha", "eps", "momentum", "weight_decay")

    lr: float
    alpha: float
    eps: float
    momentum: float
    weight_decay: float

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        lr = _at_least(lr, "lr", 0.0)
        alpha = _unit(alpha, "alpha")
        eps = _positive(eps, "eps")
        momentum = _at_least(momentum, "momentum", 0.0)
        weight_decay = _at_least(weight_decay, "weight_decay", 0.0)
        self._freeze(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)


def check_in_dtype(optimizer: _Optimizer, clip_value: Any, clip_norm: Any,
                   dtype: Any) -> None:
    """Refuse settings that vanish or overflow in the network's dtype.

    The C core computes the update in the network's dtype, so a setting given as a Python
    float becomes e.g. ``float32(1e-50) == 0``: ``Adam(eps=1e-50)`` would then divide 0 by 0
    and skip every update of a float32 network, ``weight_decay=1e-50`` would silently be no
    decay, ``lr=1e39`` infinite. Every nonzero setting (``lr``, ``momentum``,
    ``weight_decay``, ``eps``, ``betas``, ``alpha`` and ``clip_value``, ``clip_norm``) must be
    a normal number of the dtype: magnitude in ``[finfo(dtype).tiny, finfo(dtype).max]``
    (float32: 1.2e-38 to 3.4e38). Called by the trainers when the network's dtype is known.

    Raises
    ------
    ValueError
        Naming the setting, its value, the dtype and the allowed range.
    """
    dt = np.dtype(dtype)
    fi = np.finfo(dt)
    tiny, big = float(fi.tiny), float(fi.max)
    values = []
    for f in optimizer._fields:
        v = getattr(optimizer, f)
        if isinstance(v, tuple):
            values += [(f"optimizer.{f}[{i}]", x) for i, x in enumerate(v)]
        elif not isinstance(v, bool):
            values.append((f"optimizer.{f}", v))
    values += [("clip_value", clip_value), ("clip_norm", clip_norm)]
    for name, v in values:
        if v is None or v == 0:
            continue
        v = float(v)
        if not tiny <= abs(v) <= big:
            with np.errstate(over="ignore", under="ignore"):
                rounded = float(dt.type(v))
            became = (f"it would round to {rounded!r}" if rounded == 0 or math.isinf(rounded)
                      else f"it would be a subnormal {rounded!r} with lost precision")
            raise ValueError(
                f"{name}={v!r} {'vanishes' if abs(v) < tiny else 'overflows'} in {dt.name}, "
                f"the network's dtype ({became}): a nonzero setting must have a magnitude in "
                f"[{tiny:.3g}, {big:.3g}] for a {dt.name} network")
