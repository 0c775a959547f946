"""Training on whole windows: SequenceTrainer (full BPTT, bidirectional networks too) and
Seq2Seq (an encoder-decoder trained with teacher forcing).

Both run the C core's whole-window forward and backward (``src_c/seq.inc``) with the GIL
released, compute the loss and its gradient with respect to the outputs in NumPy (float64),
and apply clipping and the optimizer with the same C code as :class:`OnlineTrainer`. The
NumPy reference is :func:`streamrnn.reference.sequence_loss_and_grad`,
:func:`streamrnn.reference.seq2seq_loss_and_grad` and
:class:`streamrnn.reference.SequenceTrainer`.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._checks import LOSSES, ReadOnlySettings, check_clip, check_int
from ._progress import progress_bar
from .network import _Recurrent
from .optim import SGD, Adam, RMSprop, check_in_dtype

__all__ = ["SequenceTrainer", "Seq2Seq"]

# ---------------------------------------------------------------------------------- helpers

def _check_loss(loss: Any, out_size: int) -> str:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if loss == "cross_entropy" and out_size < 2:
        raise ValueError(f"loss 'cross_entropy' needs at least 2 outputs (classes), got "
                         f"{out_size}")
    return loss


def _make_updater(nets: List[_Recurrent], optimizer: Any, clip_value: Any, clip_norm: Any
                  ) -> Tuple[Any, Any, Optional[float], Optional[float]]:
    if optimizer is None:
        optimizer = Adam()
    if not isinstance(optimizer, (SGD, Adam, RMSprop)):
        raise TypeError(f"optimizer must be streamrnn.SGD, Adam or RMSprop, got "
                        f"{type(optimizer).__name__}")
    cv = check_clip(clip_value, "clip_value")
    cn = check_clip(clip_norm, "clip_norm")
    check_in_dtype(optimizer, cv, cn, nets[0].dtype)
    upd = _core._Updater()
    upd._init_updater(list(nets), optimizer, cv or 0.0, cn or 0.0)
    return upd, optimizer, cv, cn


def _as_window(X: Any, name: str, net: _Recurrent) -> np.ndarray:
    """X (T, D), T >= 1, finite, in the network's dtype (ndarrays must already have it)."""
    arr = _core._as_input(X, name, net.dtype, (-1, net.input_size))
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one step: expected shape "
                         f"(T >= 1, {net.input_size}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return arr


def _parse_target(Y: Any, name: str, T: int, out: int, loss: str, allow_missing: bool = True
                  ) -> Tuple[np.ndarray, bool, int]:
    """(target array, many_to_one, number of targeted steps).

    mse: (T, O) float (a row with NaN: no target) or (O,) (many-to-one; a scalar when O is
    1). cross_entropy: (T,) integer classes (-1: no target) or one integer (many-to-one)."""
    if Y is None or isinstance(Y, (str, bytes)):
        raise TypeError(f"{name} must be an array of targets, got {type(Y).__name__}")
    try:
        arr = np.asarray(Y)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be an array of targets, got {type(Y).__name__} "
                        f"({e})") from None
    if loss == "mse":
        if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
            raise TypeError(f"{name} must hold real numbers for loss 'mse', got dtype "
                            f"{arr.dtype}")
        arr = arr.astype(np.float64)
        if arr.shape == (T, out):
            m2o = False
        elif arr.shape == (out,) or (arr.ndim == 0 and out == 1):
            arr = arr.reshape(out)
            m2o = True
        else:
            raise ValueError(f"{name} must have shape ({T}, {out}) (one target per step) or "
                             f"({out},) (one target for the window), got {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError(f"{name} must not hold inf (NaN marks a step without a target)")
        missing = np.isnan(arr.reshape(-1, out)).any(axis=1)
        if missing.any() and not allow_missing:
            raise ValueError(f"{name} must be finite (every step needs a target here), got NaN")
        return arr, m2o, int((~missing).sum())
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold integer class indices for loss 'cross_entropy', "
                        f"got dtype {arr.dtype}")
    if arr.shape == (T,):
        m2o = False
    elif arr.ndim == 0:
        m2o = True
    else:
        raise ValueError(f"{name} must have shape ({T},) (one class per step) or be one "
                         f"class index (one target for the window), got shape {arr.shape}")
    lo = -1 if allow_missing else 0
    if arr.size and (arr.min() < lo or arr.max() >= out):
        raise ValueError(f"{name} must hold class indices in [{lo}, {out}), got values in "
                         f"[{arr.min()}, {arr.max()}]")
    arr = arr.astype(np.int64)
    return arr, m2o, int((arr.reshape(-1) >= 0).sum())


def _fits(arr: np.ndarray, name: str, dtype: Any) -> None:
    """Values fed to a network as inputs must stay finite in its dtype."""
    big = float(np.finfo(dtype).max)
    if np.abs(arr).max(initial=0.0) > big:
        raise ValueError(f"{name} must hold values of magnitude <= {big:.4g} (they are inputs "
                         f"of a {np.dtype(dtype).name} network), got "
                         f"{float(np.abs(arr).max()):.4g}")


def _loss_grad(loss: str, Y: np.ndarray, tgt: np.ndarray, m2o: bool, scale: float
               ) -> Tuple[float, np.ndarray]:
    """Loss (float64) and ``scale * dLoss/dY`` in Y's dtype (reference.sequence_loss)."""
    out = Y.shape[-1]
    Y2 = Y.reshape(-1, out).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if loss == "mse":
            tg = tgt.reshape(-1, out)
            mask = ~np.isnan(tg).any(axis=1)
            e = np.where(mask[:, None], Y2 - np.where(np.isnan(tg), 0.0, tg), 0.0)
            per = np.sum(e * e, axis=1) / out
            n = int(mask.sum())
            d = 2.0 * e / out
        else:
            cls = tgt.reshape(-1)
            mask = cls >= 0
            mx = Y2.max(axis=1, keepdims=True)
            lse = mx + np.log(np.sum(np.exp(Y2 - mx), axis=1, keepdims=True))
            rows = np.arange(Y2.shape[0])
            per = lse[:, 0] - Y2[rows, np.where(mask, cls, 0)]
            d = np.exp(Y2 - lse)
            d[rows[mask], cls[mask]] -= 1.0
            d[~mask] = 0.0
            n = int(mask.sum())
        if n == 0:
            return float("nan"), np.zeros_like(Y)
        value = float(np.sum(per[mask])) / n
        dY = (d * (scale / n)).astype(Y.dtype).reshape(Y.shape)
    return value, dY


class _Locked:
    """The networks' write lock (no step or other trainer may run meanwhile)."""

    def __init__(self, nets: Sequence[_Recurrent]) -> None:
        self.nets = nets
        self.taken: List[_Recurrent] = []

    def __enter__(self) -> None:
        try:
            for n in self.nets:
                n._begin_write()
                self.taken.append(n)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: Any) -> None:
        for n in reversed(self.taken):
            n._end_write()
        self.taken = []


class _WindowTrainerBase(ReadOnlySettings):
    """Statistics, fit() and pickling shared by SequenceTrainer and Seq2Seq."""

    _upd: Any
    # settings fixed at construction (read-only: see __setattr__)
    _settings: frozenset = frozenset()

    def _set_settings(self, **values: Any) -> None:
        self.__dict__.update(values)

    _read_only_why = ("the trainer's optimizer state and checkpoints are built from it at "
                      "construction (setting it would be ignored by training but written by "
                      "sr.save); create a new {cls}(...) with the new settings instead")

    @property
    def _read_only(self) -> "frozenset[str]":     # type: ignore[override]
        return self._settings

    @property
    def updates(self) -> int:
        """Applied optimizer updates since creation."""
        return int(self._upd._stats()["updates"])

    @property
    def skipped_updates(self) -> int:
        """Updates skipped for a non-finite loss, gradient or result (nothing changed)."""
        return int(self._upd._stats()["skipped"])

    @property
    def last_loss(self) -> float:
        """Loss of the last attempted update (NaN before any)."""
        return float(self._upd._stats()["last_loss"])

    @property
    def last_grad_norm(self) -> float:
        """Pre-clip L2 norm of the last attempted update's gradient (NaN before any)."""
        return float(self._upd._stats()["last_grad_norm"])

    def _batch(self, windows: Sequence[Any], targets: Sequence[Any],
               names: Optional[Tuple[str, str]] = None) -> List[float]:
        raise NotImplementedError

    @staticmethod
    def _names(names: Optional[Tuple[str, str]], i: int, xn: str, yn: str) -> Tuple[str, str]:
        """The argument names in error messages: a single call's own (X, Y) or list items."""
        return names if names is not None else (f"{xn}[{i}]", f"{yn}[{i}]")

    # the argument names of the (inputs, targets) lists in error messages
    _pair_names: Tuple[str, str] = ("windows", "targets")

    def _pairs(self, a: Sequence[Any], b: Sequence[Any]) -> Tuple[List[Any], List[Any]]:
        """The two argument lists, checked to be non-empty and of one length."""
        an, bn = self._pair_names
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"{an} and {bn} must have the same length, got {len(a)} and "
                             f"{len(b)}")
        if not a:
            raise ValueError(f"{an} must hold at least one window, got none")
        return a, b

    def _fit(self, windows: Sequence[Any], targets: Sequence[Any], epochs: Any, shuffle: Any,
             seed: Any, batch_size: Any, progress: Any = False,
             callback: Any = None) -> List[float]:
        epochs = check_int(epochs, "epochs", 1)
        batch_size = check_int(batch_size, "batch_size", 1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {type(shuffle).__name__}")
        if progress is not None and not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be None, True or False, got "
                            f"{type(progress).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be None or a callable (epoch, loss, seconds), got "
                            f"{type(callback).__name__}")
        windows, targets = self._pairs(windows, targets)
        self._validate_all(windows, targets)   # every window before the first update
        rng = np.random.default_rng(seed)
        history = []
        bar = progress_bar(epochs * len(windows), "fit",
                           enabled=None if progress is None else bool(progress))
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                order = rng.permutation(len(windows)) if shuffle else np.arange(len(windows))
                losses: List[float] = []
                for s in range(0, len(order), batch_size):
                    idx = order[s:s + batch_size]
                    losses += self._batch([windows[i] for i in idx],
                                          [targets[i] for i in idx])
                    bar.update(len(idx))
                finite = [v for v in losses if not math.isnan(v)]
                history.append(float(np.mean(finite)) if finite else float("nan"))
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {history[-1]:.4g}")
                if callback is not None:
                    callback(epoch, history[-1], time.perf_counter() - t0)
        finally:
            bar.close()
        return history

    def _validate_all(self, windows: List[Any], targets: List[Any]) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------- SequenceTrainer

def _rebuild_seq(net: _Recurrent, kwargs: Dict[str, Any], snap: Dict[str, Any]
                 ) -> "SequenceTrainer":
    tr = SequenceTrainer(net, **kwargs)
    tr._upd._restore(snap)
    return tr


class SequenceTrainer(_WindowTrainerBase):
    """Train a network on whole windows with full backpropagation through time.

    Each window runs from the network's initial state: zeros, or the constant that
    ``net.set_initial_state`` (or an import) set, as ``net.new_state()`` starts. Works for
    unidirectional and bidirectional networks
    (for a bidirectional network the gradient flows through both directions of every layer).

    Parameters
    ----------
    net : LSTM, GRU or RNN (``bidirectional`` or not)
        The network to train; its weights are updated in place.
    loss : {'mse', 'cross_entropy'}
        Per step: mse the mean over output components of the squared error; cross_entropy
        softmax over the outputs against a class index. A window's loss is the mean over its
        targeted steps.
    optimizer : SGD, Adam or RMSprop, default ``Adam()``
        torch.optim's formulas, as for :class:`OnlineTrainer`.
    clip_value, clip_norm : float > 0 or None
        As :class:`OnlineTrainer`: clamp every gradient component, then scale to an L2 norm
        <= clip_norm (``torch.nn.utils.clip_grad_norm_``).

    Notes
    -----
    Targets, per window of T steps, with O the output size (O = ndir*H without a head):

    * many-to-many: mse ``(T, O)`` floats, a row holding NaN has no target;
      cross_entropy ``(T,)`` integers, -1 has no target;
    * many-to-one: mse ``(O,)`` (a scalar when O is 1); cross_entropy one integer. The loss
      is on the output of the readout ``z`` of the top layer: unidirectional ``z = h(T-1)``
      (PyTorch's ``out[-1]``); bidirectional ``z = [h_fwd(T-1) | h_bwd(0)]``, the forward
      direction's last output and the backward direction's first output (in PyTorch:
      ``torch.cat([out[-1, :H], out[0, H:]])``, the same as ``h_n`` of the top layer), through
      the head when there is one.

    The settings (``net``, ``loss``, ``optimizer``, ``clip_value``, ``clip_norm``) are
    read-only attributes (AttributeError); every nonzero optimizer or clipping setting must be
    a normal number of the network's dtype (as :class:`OnlineTrainer`).

    A window without any target changes nothing and its loss is NaN. A non-finite loss,
    gradient or result skips the update (counted in ``skipped_updates``). Bad input raises
    before anything changes: weights and optimizer state are then untouched.

    Raises
    ------
    TypeError, ValueError
        Bad settings; in the methods, bad windows or targets (naming the argument, what was
        expected and what was given).

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.GRU(2, 8, output_size=1, bidirectional=True, dtype="float64", seed=0)
    >>> tr = sr.SequenceTrainer(net, optimizer=sr.Adam(lr=1e-2))
    >>> X = np.random.default_rng(0).standard_normal((20, 2))
    >>> loss = tr.learn_sequence(X, X[:, :1] * 0.5)     # many-to-many
    >>> loss = tr.learn_sequence(X, [1.0])               # many-to-one
    >>> tr.updates, tr.predict(X).shape, tr.predict(X, many_to_one=True).shape
    (2, (20, 1), (1,))
    """

    _settings = frozenset({"net", "loss", "optimizer", "clip_value", "clip_norm",
                           "out_size"})
    net: _Recurrent
    loss: str
    optimizer: Union[SGD, Adam, RMSprop]
    clip_value: Optional[float]
    clip_norm: Optional[float]
    out_size: int

    def __init__(self, net: _Recurrent, loss: str = "mse",
                 optimizer: Optional[Union[SGD, Adam, RMSprop]] = None,
                 clip_value: Optional[float] = None, clip_norm: Optional[float] = None
                 ) -> None:
        if not isinstance(net, _Recurrent):
            raise TypeError(f"net must be a streamrnn LSTM, GRU or RNN, got "
                            f"{type(net).__name__}")
        out_size = int(net.output_size or net.num_directions * net.hidden_size)
        loss = _check_loss(loss, out_size)
        self._upd, optimizer, _, _ = _make_updater([net], optimizer, clip_value, clip_norm)
        self._set_settings(out_size=out_size, loss=loss, optimizer=optimizer, net=net,
                           clip_value=clip_value, clip_norm=clip_norm)
        self._work = _core._SeqWork(net)

    def _kwargs(self) -> Dict[str, Any]:
        return dict(loss=self.loss, optimizer=self.optimizer, clip_value=self.clip_value,
                    clip_norm=self.clip_norm)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())
        return f"SequenceTrainer({self.net!r}, {args})"

    def __reduce__(self) -> Any:
        return (_rebuild_seq, (self.net, self._kwargs(), self._upd._snapshot()))

    def __deepcopy__(self, memo: Any) -> "SequenceTrainer":
        import copy

        return _rebuild_seq(copy.deepcopy(self.net, memo), self._kwargs(),
                            self._upd._snapshot())

    # ------------------------------------------------------------------------ checks
    def _check(self, X: Any, Y: Any, xname: str, yname: str
               ) -> Tuple[np.ndarray, np.ndarray, bool, int]:
        Xa = _as_window(X, xname, self.net)
        tgt, m2o, n = _parse_target(Y, yname, Xa.shape[0], self.out_size, self.loss)
        return Xa, tgt, m2o, n

    def _validate_all(self, windows: List[Any], targets: List[Any]) -> None:
        for i, (X, Y) in enumerate(zip(windows, targets)):
            self._check(X, Y, f"windows[{i}]", f"targets[{i}]")

    # ------------------------------------------------------------------------ training
    def _start(self) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The network's initial state as the window's (h0, c0), each (L, 1, H), or None
        (zeros): windows start where ``net.new_state()`` starts."""
        initial = self.net.initial_state
        if initial is None:
            return None, None
        h, c = initial
        return h[:, None, :], (c[:, None, :] if c is not None else None)

    def _grad_of(self, Xa: np.ndarray, tgt: np.ndarray, m2o: bool, scale: float) -> float:
        Y = self._work.forward(Xa, *self._start(), many_to_one=m2o)
        value, dY = _loss_grad(self.loss, Y, tgt, m2o, scale)
        if not math.isnan(value):
            self._work.backward(dY, self._upd.grad)
        return value

    def _batch(self, windows: Sequence[Any], targets: Sequence[Any],
               names: Optional[Tuple[str, str]] = None) -> List[float]:
        checked = [self._check(X, Y, *self._names(names, i, "windows", "targets"))
                   for i, (X, Y) in enumerate(zip(windows, targets))]
        n = sum(1 for c in checked if c[3] > 0)
        if n == 0:
            return [float("nan")] * len(checked)
        losses = []
        with _Locked([self.net]):
            self._upd.zero_grad()
            for Xa, tgt, m2o, nt in checked:
                losses.append(self._grad_of(Xa, tgt, m2o, 1.0 / n) if nt else float("nan"))
            finite = [v for v in losses if not math.isnan(v)]
            self._upd.apply(float(np.mean(finite)) if len(finite) == n else float("nan"))
        return losses

    def learn_sequence(self, X: Any, Y: Any) -> float:
        """One update from one window; returns its loss (before the update).

        Parameters
        ----------
        X : array (T, input_size), T >= 1, finite, the network's dtype
        Y : targets, many-to-many or many-to-one (see the class notes)

        Returns
        -------
        float
            The window's loss (NaN when it has no target; nothing changes then).

        Raises
        ------
        TypeError, ValueError
            Bad X or Y; nothing changes.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> tr = sr.SequenceTrainer(sr.LSTM(1, 4, output_size=3, seed=0), loss="cross_entropy")
        >>> round(tr.learn_sequence(np.zeros((5, 1), np.float32), [0, 1, 2, -1, 0]), 3) > 0
        True
        """
        return self._batch([X], [Y], ("X", "Y"))[0]

    def learn_batch(self, windows: Sequence[Any], targets: Sequence[Any]) -> float:
        """One update from the mean of the windows' gradients (lengths may differ).

        Each window's gradient is that of its own loss (mean over its targeted steps);
        windows without a target are left out of the mean. All windows are validated
        before anything changes.

        Parameters
        ----------
        windows : sequence of arrays (T_i, input_size)
        targets : sequence of targets, one per window (see the class notes)

        Returns
        -------
        float
            The mean of the windows' losses (NaN when none has a target).

        Raises
        ------
        TypeError, ValueError
            A bad window or target, or different lengths; nothing changes.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> tr = sr.SequenceTrainer(sr.RNN(1, 4, output_size=1, dtype="float64", seed=0))
        >>> loss = tr.learn_batch([np.ones((3, 1)), np.ones((5, 1))], [[1.0], [0.0]])
        >>> tr.updates
        1
        """
        windows, targets = self._pairs(windows, targets)
        losses = [v for v in self._batch(windows, targets) if not math.isnan(v)]
        return float(np.mean(losses)) if losses else float("nan")

    def fit(self, windows: Sequence[Any], targets: Sequence[Any], epochs: int = 1,
            shuffle: bool = True, seed: Optional[int] = None, batch_size: int = 1, *,
            progress: Optional[bool] = None,
            callback: Optional[Callable[[int, float, float], Any]] = None) -> List[float]:
        """Train for ``epochs`` passes over the windows in batches of ``batch_size``.

        Parameters
        ----------
        windows, targets : as :meth:`learn_batch`
        epochs : int >= 1
        shuffle : bool
            Shuffle the order each epoch with ``numpy.random.default_rng(seed)``.
        seed : int or None
        batch_size : int >= 1
            Windows per update (:meth:`learn_batch`).

        progress : None (a bar on stderr when it is a terminal, silent otherwise), True
            or False
        callback : callable or None
            Called after each epoch as ``callback(epoch, loss, seconds)``: the epoch index
            (from 0), its mean loss (as returned) and its wall time. An exception it raises
            stops training (the epochs done stay learned).

        Returns
        -------
        list of float
            Per epoch, the mean of the windows' losses (each taken before its update).

        Raises
        ------
        TypeError, ValueError
            Bad settings or a bad window/target (checked before the first update).

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> tr = sr.SequenceTrainer(sr.LSTM(1, 8, output_size=1, seed=0),
        ...                         optimizer=sr.Adam(lr=0.05))
        >>> X = [np.full((4, 1), v, np.float32) for v in (0.0, 1.0)]
        >>> hist = tr.fit(X, [[0.0], [1.0]], epochs=30, seed=0)
        >>> hist[-1] < hist[0]
        True
        """
        return self._fit(windows, targets, epochs, shuffle, seed, batch_size, progress,
                         callback)

    def predict(self, X: Any, many_to_one: bool = False) -> np.ndarray:
        """The outputs for a window from the network's initial state (zeros unless
        ``net.set_initial_state`` set one), changing nothing.

        Parameters
        ----------
        X : array (T, input_size), T >= 1, finite
        many_to_one : bool
            False: the output at every step; True: the output of the readout (class notes).

        Returns
        -------
        ndarray (T, O) or (O,), the network's dtype

        Raises
        ------
        TypeError, ValueError
            Bad X or many_to_one.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> tr = sr.SequenceTrainer(sr.LSTM(2, 3, bidirectional=True, seed=0))
        >>> tr.predict(np.zeros((4, 2), np.float32), many_to_one=True).shape
        (6,)
        """
        Xa = _as_window(X, "X", self.net)
        if not isinstance(many_to_one, (bool, np.bool_)):
            raise TypeError(f"many_to_one must be True or False, got "
                            f"{type(many_to_one).__name__}")
        with _Locked([self.net]):
            return self._work.forward(Xa, *self._start(), many_to_one=bool(many_to_one))


# ------------------------------------------------------------------------------- Seq2Seq

def _rebuild_s2s(enc: _Recurrent, dec: _Recurrent, kwargs: Dict[str, Any],
                 snap: Dict[str, Any]) -> "Seq2Seq":
    s = Seq2Seq(enc, dec, **kwargs)
    s._upd._restore(snap)
    return s


class Seq2Seq(_WindowTrainerBase):
    """An encoder-decoder trained with teacher forcing and full BPTT into the encoder.

    Parameters
    ----------
    encoder : LSTM, GRU or RNN without a head (may be bidirectional)
        Runs over the source window from zero states. Its final state of layer k is the
        **sum** over its directions of their final states (forward direction: after the last
        step; backward direction: after the first).
    decoder : LSTM, GRU or RNN, unidirectional, with a head of size O
        O is the number of token classes (cross_entropy) or the size of a value (mse).
    context : {'init_state', 'input'}
        'init_state': the encoder's final (h, c) of every layer are the decoder's initial
        states (same cell kind, num_layers and hidden_size required; decoder input_size O).
        'input': the encoder's final top-layer h is appended to the decoder's input at
        every step (decoder input_size = O + encoder hidden_size); the decoder starts from
        zeros.
    loss : {'mse', 'cross_entropy'}
        Mean over the target steps of the per-step loss of the decoder's outputs.
    start : None, int or array (O,)
        The decoder's input token at step 0: a class index (one-hot) for cross_entropy, a
        value for mse; None: zeros. At step t > 0 the input is the target of step t-1 (one-hot
        for cross_entropy) in training, the previous prediction in :meth:`generate`.
    optimizer, clip_value, clip_norm : as :class:`SequenceTrainer` (over the parameters of
        both networks together, encoder first)

    The settings (``encoder``, ``decoder``, ``context``, ``loss``, ``start``, ``optimizer``,
    ``clip_value``, ``clip_norm``) are read-only attributes (AttributeError; ``start`` is a
    read-only array for mse).

    Raises
    ------
    TypeError, ValueError
        Bad settings or networks that do not fit together (named in the message).

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> enc = sr.LSTM(2, 16, seed=0)
    >>> dec = sr.LSTM(5, 16, output_size=5, seed=1)
    >>> s2s = sr.Seq2Seq(enc, dec, loss="cross_entropy", start=0, optimizer=sr.Adam(lr=0.01))
    >>> src = np.zeros((6, 2), np.float32)
    >>> loss = s2s.learn(src, [1, 2, 3, 4])
    >>> s2s.generate(src, max_len=4).dtype
    dtype('int64')
    """

    _pair_names = ("src", "tgt")
    _settings = frozenset({"encoder", "decoder", "context", "loss", "start", "optimizer",
                           "clip_value", "clip_norm", "out_size"})
    encoder: _Recurrent
    decoder: _Recurrent
    context: str
    loss: str
    start: Any
    optimizer: Union[SGD, Adam, RMSprop]
    clip_value: Optional[float]
    clip_norm: Optional[float]
    out_size: int

    def __init__(self, encoder: _Recurrent, decoder: _Recurrent, context: str = "init_state",
                 loss: str = "mse", start: Any = None,
                 optimizer: Optional[Union[SGD, Adam, RMSprop]] = None,
                 clip_value: Optional[float] = None, clip_norm: Optional[float] = None
                 ) -> None:
        for name, n in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(n, _Recurrent):
                raise TypeError(f"{name} must be a streamrnn LSTM, GRU or RNN, got "
                                f"{type(n).__name__}")
        if encoder is decoder:
            raise ValueError("encoder and decoder must be two different networks")
        if encoder.output_size is not None:
            raise ValueError(f"encoder must have no head (output_size=None), got "
                             f"output_size={encoder.output_size}")
        if decoder.bidirectional:
            raise ValueError("decoder must be unidirectional (it generates one step at a "
                             "time), got bidirectional=True")
        if decoder.output_size is None:
            raise ValueError("decoder must have a head (output_size = O, the token or value "
                             "size), got output_size=None")
        if encoder.dtype != decoder.dtype:
            raise TypeError(f"encoder and decoder must have the same dtype, got "
                            f"{encoder.dtype.name} and {decoder.dtype.name}")
        if context not in ("init_state", "input"):
            raise ValueError(f"context must be 'init_state' or 'input', got {context!r}")
        O = int(decoder.output_size)
        if context == "init_state":
            if (encoder.cell != decoder.cell or encoder.num_layers != decoder.num_layers
                    or encoder.hidden_size != decoder.hidden_size):
                raise ValueError(
                    f"context='init_state' needs the decoder's cell, num_layers and "
                    f"hidden_size equal to the encoder's: encoder ({encoder.cell}, "
                    f"num_layers={encoder.num_layers}, hidden_size={encoder.hidden_size}), "
                    f"decoder ({decoder.cell}, num_layers={decoder.num_layers}, "
                    f"hidden_size={decoder.hidden_size})")
            want = O
        else:
            want = O + encoder.hidden_size
        if decoder.input_size != want:
            raise ValueError(f"decoder input_size must be {want} (output_size {O}"
                             + ("" if context == "init_state"
                                else f" + encoder hidden_size {encoder.hidden_size}")
                             + f") for context={context!r}, got {decoder.input_size}")
        loss = _check_loss(loss, O)
        start = self._check_start(start, O, loss, decoder.dtype)
        self._upd, optimizer, _, _ = _make_updater([encoder, decoder], optimizer, clip_value,
                                                   clip_norm)
        self._set_settings(loss=loss, start=start, optimizer=optimizer, encoder=encoder,
                           decoder=decoder, context=context, out_size=O,
                           clip_value=clip_value, clip_norm=clip_norm)
        self._enc = _core._SeqWork(encoder)
        self._dec = _core._SeqWork(decoder)
        self._Pe = int(encoder.parameters().shape[0])

    @staticmethod
    def _check_start(start: Any, O: int, loss: str, dtype: Any) -> Any:
        if start is None:
            return None
        if loss == "cross_entropy":
            if isinstance(start, (bool, np.bool_)) or not isinstance(start, (int, np.integer)):
                raise TypeError(f"start must be None or a class index (int) for "
                                f"cross_entropy, got {type(start).__name__}")
            if not 0 <= start < O:
                raise ValueError(f"start must be a class index in [0, {O}), got {start}")
            return int(start)
        arr = np.asarray(start, dtype=np.float64).reshape(-1)
        if arr.shape != (O,) or not np.isfinite(arr).all():
            raise ValueError(f"start must be None or a finite array of shape ({O},) for mse, "
                             f"got {np.asarray(start).shape}")
        _fits(arr, "start", dtype)    # the decoder's first input
        arr = arr.copy()
        arr.flags.writeable = False   # a setting: read-only like the others
        return arr

    def _kwargs(self) -> Dict[str, Any]:
        return dict(context=self.context, loss=self.loss, start=self.start,
                    optimizer=self.optimizer, clip_value=self.clip_value,
                    clip_norm=self.clip_norm)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())
        return f"Seq2Seq({self.encoder!r}, {self.decoder!r}, {args})"

    def __reduce__(self) -> Any:
        return (_rebuild_s2s, (self.encoder, self.decoder, self._kwargs(),
                               self._upd._snapshot()))

    def __deepcopy__(self, memo: Any) -> "Seq2Seq":
        import copy

        return _rebuild_s2s(copy.deepcopy(self.encoder, memo),
                            copy.deepcopy(self.decoder, memo), self._kwargs(),
                            self._upd._snapshot())

    # ------------------------------------------------------------------------ pieces
    def _tokens(self, tgt: np.ndarray) -> np.ndarray:
        """Teacher forcing inputs (T, O): start, then the targets shifted by one."""
        O, dt = self.out_size, self.decoder.dtype
        T = tgt.shape[0]
        tok = np.zeros((T, O), dtype=dt)
        if self.loss == "mse":
            if self.start is not None:
                tok[0] = self.start
            tok[1:] = tgt[:-1]
        else:
            if self.start is not None:
                tok[0, self.start] = 1
            tok[np.arange(1, T), tgt[:-1]] = 1
        return tok

    def _encode(self, Xs: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Encoder forward (cached): the context (L, H) h and c, summed over directions."""
        _, hT, cT = self._enc.forward(Xs, final=True)
        h = hT.sum(axis=1) if hT.shape[1] == 2 else hT[:, 0].copy()
        c = None
        if cT is not None:
            c = cT.sum(axis=1) if cT.shape[1] == 2 else cT[:, 0].copy()
        return h, c

    def _no_initial_state(self) -> None:
        """Seq2Seq runs both networks from zero states (or the decoder from the context):
        a network carrying an initial state is refused, not silently run from zeros."""
        for name in ("encoder", "decoder"):
            if getattr(self, name).initial_state is not None:
                raise ValueError(f"Seq2Seq runs the {name} from zero states, but this {name} "
                                 f"carries an initial state (set_initial_state or an "
                                 f"import): clear it with {name}.set_initial_state(None) or "
                                 f"train the network alone with SequenceTrainer")

    def _check(self, X: Any, Y: Any, xname: str, yname: str
               ) -> Tuple[np.ndarray, np.ndarray]:
        self._no_initial_state()
        Xs = _as_window(X, xname, self.encoder)
        if Y is None or isinstance(Y, (str, bytes)):
            raise TypeError(f"{yname} must be an array of targets, got {type(Y).__name__}")
        arr = np.asarray(Y)
        T = arr.shape[0] if arr.ndim >= 1 else 0
        if T < 1:
            raise ValueError(f"{yname} must hold at least one target step, got shape "
                             f"{arr.shape}")
        tgt, m2o, _ = _parse_target(arr, yname, T, self.out_size, self.loss,
                                    allow_missing=False)
        if m2o:
            raise ValueError(f"{yname} must hold one target per decoder step, got shape "
                             f"{arr.shape}")
        if self.loss == "mse":
            _fits(tgt, yname, self.decoder.dtype)   # the targets are also decoder inputs
        return Xs, tgt

    def _validate_all(self, windows: List[Any], targets: List[Any]) -> None:
        for i, (X, Y) in enumerate(zip(windows, targets)):
            self._check(X, Y, f"src[{i}]", f"tgt[{i}]")

    def _grad_of(self, Xs: np.ndarray, tgt: np.ndarray, scale: float) -> float:
        enc, dec = self.encoder, self.decoder
        h, c = self._encode(Xs)
        tok = self._tokens(tgt)
        T = tok.shape[0]
        h0: Optional[np.ndarray]
        c0: Optional[np.ndarray]
        if self.context == "init_state":
            Xd = tok
            h0 = np.ascontiguousarray(h[:, None, :])
            c0 = np.ascontiguousarray(c[:, None, :]) if c is not None else None
        else:
            Xd = np.concatenate([tok, np.repeat(h[-1][None, :], T, axis=0)], axis=1)
            h0 = c0 = None
        Yd = self._dec.forward(Xd, h0, c0)
        value, dY = _loss_grad(self.loss, Yd, tgt, False, scale)
        grad = self._upd.grad
        Pe = self._Pe
        want_dx = self.context == "input"
        dXd, dh0, dc0 = self._dec.backward(dY, grad[Pe:], want_dX=want_dx,
                                           want_d0=not want_dx)
        shape = (enc.num_layers, enc.num_directions, enc.hidden_size)
        dcT: Optional[np.ndarray]
        if want_dx:
            assert dXd is not None
            dhT = np.zeros(shape, dtype=enc.dtype)
            dhT[-1, :, :] = dXd[:, self.out_size:].sum(axis=0)
            dcT = None
        else:
            assert dh0 is not None
            dhT = np.ascontiguousarray(np.broadcast_to(dh0[:, 0:1, :], shape))
            dcT = (np.ascontiguousarray(np.broadcast_to(dc0[:, 0:1, :], shape))
                   if dc0 is not None else None)
        Ts = Xs.shape[0]
        dYe = np.zeros((Ts, enc.num_directions * enc.hidden_size), dtype=enc.dtype)
        self._enc.backward(dYe, grad[:Pe], dhT, dcT)
        return value

    def _batch(self, windows: Sequence[Any], targets: Sequence[Any],
               names: Optional[Tuple[str, str]] = None) -> List[float]:
        checked = [self._check(X, Y, *self._names(names, i, "src", "tgt"))
                   for i, (X, Y) in enumerate(zip(windows, targets))]
        n = len(checked)
        with _Locked([self.encoder, self.decoder]):
            self._upd.zero_grad()
            losses = [self._grad_of(Xs, tgt, 1.0 / n) for Xs, tgt in checked]
            self._upd.apply(float(np.mean(losses)))
        return losses

    # ------------------------------------------------------------------------ public
    def learn(self, X_src: Any, Y_tgt: Any) -> float:
        """One update from one (source, target) pair; returns its loss (before the update).

        Parameters
        ----------
        X_src : array (T_src, encoder input_size), finite
        Y_tgt : mse — array (T_tgt, O) of values; cross_entropy — (T_tgt,) class indices
            (every step needs a target: they are also the decoder's inputs)

        Returns
        -------
        float

        Raises
        ------
        TypeError, ValueError
            Bad shapes, dtypes or values; nothing changes.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> enc, dec = sr.GRU(1, 4, seed=0), sr.GRU(5, 4, output_size=1, seed=1)
        >>> s2s = sr.Seq2Seq(enc, dec, context="input")
        >>> s2s.learn(np.ones((3, 1), np.float32), [[0.5], [0.25]]) > 0
        True
        """
        return self._batch([X_src], [Y_tgt], ("X_src", "Y_tgt"))[0]

    def learn_batch(self, src: Sequence[Any], tgt: Sequence[Any]) -> float:
        """One update from the mean of the pairs' gradients.

        Parameters
        ----------
        src : sequence of arrays (T_src_i, encoder input_size)
        tgt : sequence of targets, one per source (as ``Y_tgt`` of :meth:`learn`)

        Returns
        -------
        float
            The mean of the pairs' losses (each before the update).

        Raises
        ------
        TypeError, ValueError
            A bad pair or different lengths: checked for every pair before anything changes.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> s2s = sr.Seq2Seq(sr.RNN(1, 4, seed=0), sr.RNN(1, 4, output_size=1, seed=1))
        >>> loss = s2s.learn_batch([np.ones((2, 1), np.float32)] * 2, [[[0.1]], [[0.2], [0.3]]])
        >>> s2s.updates
        1
        """
        src, tgt = self._pairs(src, tgt)
        return float(np.mean(self._batch(src, tgt)))

    def fit(self, src: Sequence[Any], tgt: Sequence[Any], epochs: int = 1,
            shuffle: bool = True, seed: Optional[int] = None, batch_size: int = 1, *,
            progress: Optional[bool] = None,
            callback: Optional[Callable[[int, float, float], Any]] = None) -> List[float]:
        """Train for ``epochs`` passes over the pairs in batches of ``batch_size``.

        Parameters
        ----------
        src, tgt : as :meth:`learn_batch`
        epochs : int >= 1
        shuffle : bool
            Shuffle the order each epoch with ``numpy.random.default_rng(seed)``.
        seed : int or None
        batch_size : int >= 1

        progress : None (a bar on stderr when it is a terminal, silent otherwise), True
            or False
        callback : callable or None
            Called after each epoch as ``callback(epoch, loss, seconds)``: the epoch index
            (from 0), its mean loss (as returned) and its wall time. An exception it raises
            stops training (the epochs done stay learned).

        Returns
        -------
        list of float
            Per epoch, the mean of the pairs' losses (each taken before its update).

        Raises
        ------
        TypeError, ValueError
            Bad settings or a bad pair (checked before the first update).

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> s2s = sr.Seq2Seq(sr.LSTM(1, 8, seed=0), sr.LSTM(3, 8, output_size=3, seed=1),
        ...                  loss="cross_entropy", start=0, optimizer=sr.Adam(lr=0.05))
        >>> src = [np.full((3, 1), v, np.float32) for v in (0.0, 1.0)]
        >>> hist = s2s.fit(src, [[1, 1], [2, 2]], epochs=20, seed=0)
        >>> hist[-1] < hist[0]
        True
        """
        return self._fit(src, tgt, epochs, shuffle, seed, batch_size, progress,
                         callback)

    def generate(self, X_src: Any, max_len: int,
                 stop: Union[None, int, Callable[[np.ndarray], bool]] = None) -> np.ndarray:
        """Greedy autoregressive decoding of up to ``max_len`` steps.

        cross_entropy: each step's token is the argmax of the decoder's output and is fed
        back one-hot; returns an int64 array of the tokens, stopping *before* the ``stop``
        token (which is not included). mse: each output is fed back as the next input;
        returns (n, O), stopping before the first output for which ``stop(y)`` is true (not
        included); ``stop=None`` runs ``max_len`` steps.

        Parameters
        ----------
        X_src : array (T_src, encoder input_size), finite
        max_len : int >= 0
        stop : None, a class index (cross_entropy) or a callable ``y -> bool`` (mse)

        Returns
        -------
        ndarray
            int64 (n,) tokens (cross_entropy) or (n, O) values (mse), n <= max_len.

        Raises
        ------
        TypeError, ValueError
            Bad X_src, max_len or stop.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> s2s = sr.Seq2Seq(sr.GRU(1, 4, seed=0), sr.GRU(2, 4, output_size=2, seed=1))
        >>> s2s.generate(np.zeros((3, 1), np.float32), max_len=5).shape
        (5, 2)
        """
        max_len = check_int(max_len, "max_len", 0)
        if self.loss == "cross_entropy":
            if stop is not None and (isinstance(stop, (bool, np.bool_))
                                     or not isinstance(stop, (int, np.integer))):
                raise TypeError(f"stop must be None or a class index for cross_entropy, got "
                                f"{type(stop).__name__}")
        elif stop is not None and not callable(stop):
            raise TypeError(f"stop must be None or a callable y -> bool for mse, got "
                            f"{type(stop).__name__}")
        self._no_initial_state()
        Xs = _as_window(X_src, "X_src", self.encoder)
        dec, O = self.decoder, self.out_size
        with _Locked([self.encoder]):
            h, c = self._encode(Xs)
        s = dec.new_state()
        if self.context == "init_state":
            s.h[...] = h
            if c is not None and s.c is not None:
                s.c[...] = c
        tok = np.zeros(O, dtype=dec.dtype)
        if self.start is not None:
            if self.loss == "mse":
                tok[...] = self.start
            else:
                tok[self.start] = 1
        ctx = h[-1] if self.context == "input" else None
        out: List[Any] = []
        for _ in range(max_len):
            x = tok if ctx is None else np.concatenate([tok, ctx])
            y = dec.step(x, s)
            if self.loss == "cross_entropy":
                k = int(np.argmax(y))
                if stop is not None and k == stop:
                    break
                out.append(k)
                tok = np.zeros(O, dtype=dec.dtype)
                tok[k] = 1
            else:
                if callable(stop) and stop(y):
                    break
                out.append(y.copy())
                tok = y.copy()
        if self.loss == "cross_entropy":
            return np.asarray(out, dtype=np.int64)
        return np.asarray(out, dtype=dec.dtype).reshape(len(out), O)
