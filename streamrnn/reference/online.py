"""Online training: TBPTT(k1, k2) on one stream (the reference of sr.OnlineTrainer).

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
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .._checks import LOSSES, check_trainer_settings
from .layout import _check_int
from .losses import _loss_and_dy, _mean_loss, _parse_target
from .net import Net, _StepRecord
from .optim import _Updater


def _backward(net: Net, records: Sequence[_StepRecord], dys: Sequence[Optional[np.ndarray]],
              grad: np.ndarray, dh_out: Optional[np.ndarray] = None) -> None:
    """Backpropagate through ``records`` (oldest first) given dLoss/dy per step (None: no
    output gradient at that step), accumulating into the flat vector ``grad``: the
    network's one backward (:meth:`Net._backward`) fed with the ring's step records. The
    state entering the oldest record is a constant. ``dh_out`` (T, L, H), when given,
    receives dLoss/dh of every layer's h leaving every step."""
    g = net.split(grad)
    d_top = net._head_backward([rec.layers[-1].h for rec in records], dys, g)
    layers = [[[rec.layers[k] for rec in records]] for k in range(net.num_layers)]
    net._backward(layers, d_top, None, None, g, None if dh_out is None else dh_out[:, :, None])


def _loss_and_grad(net: Net, records: Sequence[_StepRecord], loss: str, n_newest: int
                   ) -> Tuple[float, np.ndarray, int]:
    """The TBPTT loss and gradient of a window of records (oldest first): the mean per-step
    loss of the targeted steps among the ``n_newest`` newest records, backpropagated through
    all of them. Returns (loss, flat gradient, n_targeted); with no targeted step: (nan,
    zeros, 0) and no backward."""
    first = max(len(records) - n_newest, 0)
    value, dys, n_t = _mean_loss(loss, [rec.y for rec in records],
                                 [rec.target if j >= first else None
                                  for j, rec in enumerate(records)])
    grad = np.zeros(net.flat.shape[0], dtype=net.dtype)
    if n_t:
        with np.errstate(over="ignore", invalid="ignore"):
            _backward(net, records, dys, grad)
    return value, grad, n_t


def _record_window(net: Net, h0: Any, c0: Any, X: Any, min_steps: int = 0
                   ) -> List[_StepRecord]:
    """Run ``X`` (T, D) from (h0, c0) with the current weights, recording every step."""
    X = np.asarray(X, dtype=net.dtype)
    if X.ndim != 2 or X.shape[1] != net.input_size or X.shape[0] < min_steps:
        at_least = f" with T >= {min_steps}" if min_steps else ""
        raise ValueError(f"X must have shape (T, {net.input_size}){at_least}, got {X.shape}")
    h, c = net._check_state(h0, c0)
    records: List[_StepRecord] = []
    for t in range(X.shape[0]):
        rec, h, c = net._record_step(net._check_x(X[t], "X[t]"), h, c)
        records.append(rec)
    return records


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
    records = _record_window(net, h0, c0, X)
    if len(targets) != len(records):
        raise ValueError(f"targets must have {len(records)} entries, got {len(targets)}")
    n = len(records) if n_newest is None else _check_int(n_newest, "n_newest", 1)
    for rec, y in zip(records, targets):
        rec.target, rec.has_target = _parse_target(net, loss, y)
    return _loss_and_grad(net, records, loss, n)[:2]


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
    records = _record_window(net, h0, c0, X, 1)
    tgt, has = _parse_target(net, loss, target)
    if not has:
        raise ValueError(f"target must be a real target for the last step, got {target!r}")
    dys: List[Optional[np.ndarray]] = [None] * len(records)
    dys[-1] = _loss_and_dy(loss, records[-1].y, tgt, 1.0)[1]
    dh = np.zeros((len(records), net.num_layers, net.hidden_size), dtype=net.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        _backward(net, records, dys, np.zeros(net.flat.shape[0], dtype=net.dtype), dh)
    return dh


class Trainer(_Updater):
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
        if net.num_directions != 1:
            raise ValueError("net must have one direction (a stream runs forward only), "
                             f"got num_directions={net.num_directions}")
        loss, optimizer, k1, k2, clip_value, clip_norm = check_trainer_settings(
            loss, optimizer, k1, k2, clip_value, clip_norm, net.out_size)
        super().__init__([net], optimizer, clip_value, clip_norm)
        self.net = net
        self.loss = loss
        self.k1 = k1
        self.k2 = k2
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
        loss, grad, n_t = _loss_and_grad(self.net, list(self.ring), self.loss, self.k1)
        if n_t:
            self.apply(loss, grad)
