"""Online training: OnlineTrainer, truncated BPTT(k1, k2) on one live stream."""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

from . import _core
from ._checks import ReadOnlySettings, check_trainer_settings
from .network import _Recurrent
from .optim import SGD, Adam, RMSprop, check_in_dtype

__all__ = ["OnlineTrainer"]

_SETTINGS = frozenset({"net", "loss", "optimizer", "k1", "k2", "clip_value", "clip_norm"})


def _rebuild(net: _Recurrent, kwargs: Dict[str, Any], snap: Dict[str, Any],
             params: Any = None) -> "OnlineTrainer":
    if params is not None:
        # the weights read together with snap (one moment; the net may have been pickled
        # at another moment of the same dump)
        net.parameters()[...] = params
    tr = OnlineTrainer(net, **kwargs)
    tr._restore(snap)
    return tr


class OnlineTrainer(ReadOnlySettings, _core._Trainer):
    """Learn from a live stream one sample at a time with truncated BPTT(k1, k2).

    The trainer owns one stream state. ``learn_one(x, y)`` steps it with x, returns the
    prediction made before learning (so progressive validation is honest), records y as that
    step's target and, every ``k1`` steps, backpropagates the mean loss of the targeted steps
    among the k1 newest through the last ``k2`` steps, using the activations recorded when
    those steps ran (no forward recompute) and the current weights. Then gradient clipping
    (by value, then by norm) and the optimizer update the network's weights in place.

    Parameters
    ----------
    net : LSTM, GRU or RNN
        The network to train (its weights are updated in place).
    loss : {'mse', 'cross_entropy'}
        'mse': mean over output components of the squared error. 'cross_entropy': softmax
        over the output vector, the target a class index.
    optimizer : SGD, Adam or RMSprop, default ``Adam()``
        Update formulas of torch.optim (see :class:`SGD`, :class:`Adam`, :class:`RMSprop`).
    k1 : int >= 1
        Update every k1 steps.
    k2 : int >= k1
        Backpropagate through the last k2 steps (the ring buffer's length).
    clip_value : float > 0 or None
        Clamp every gradient component to [-clip_value, clip_value].
    clip_norm : float > 0 or None
        Scale the gradient to L2 norm <= clip_norm (``torch.nn.utils.clip_grad_norm_``).

    Notes
    -----
    The settings (``net``, ``loss``, ``optimizer``, ``k1``, ``k2``, ``clip_value``,
    ``clip_norm``) are read-only attributes (setting one raises AttributeError), and the
    optimizer objects are immutable: to train on with other settings, e.g. another learning
    rate, create a new trainer. Every nonzero optimizer or clipping setting must be a normal
    number of the network's dtype (a float32 network refuses ``Adam(eps=1e-50)``, which
    would round to 0).

    A non-finite loss or gradient, or an update whose result would not be finite, is
    skipped: weights and optimizer moments are unchanged, and ``skipped`` counts it.
    With ``k1 == k2 == K`` the trainer equals the loop "run K steps from a detached state,
    mean loss, backward, clip, optimizer step" written with PyTorch.

    Threads: a trainer call (``learn_one``, ``learn_many``, ``advance``, ``observe``,
    ``reset``) takes the trainer's state and the network's weights exclusively; a call
    from another thread that meets it (another trainer call, a step of the network, a read
    of the counters, a pickle, copy or ``sr.save`` of the trainer or its network) raises
    RuntimeError at once and changes nothing. To share a trainer between threads, take
    ``tr.lock`` (the network's lock) around every call in every thread.

    Raises
    ------
    TypeError, ValueError
        Bad settings (including settings that vanish or overflow in the network's dtype);
        in learn_one / learn_many, bad x or y (nothing is changed then).

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.LSTM(1, 16, output_size=1, seed=0)
    >>> tr = sr.OnlineTrainer(net, optimizer=sr.Adam(lr=1e-2), k1=1, k2=16, clip_norm=1.0)
    >>> for t in range(100):
    ...     y_pred = tr.learn_one([np.sin(0.1 * t)], [np.sin(0.1 * (t + 1))])
    >>> tr.steps, tr.updates
    (100, 100)
    """

    net: _Recurrent
    loss: str
    optimizer: Union[SGD, Adam, RMSprop]
    k1: int
    k2: int
    clip_value: Optional[float]
    clip_norm: Optional[float]

    def __init__(self, net: _Recurrent, loss: str = "mse",
                 optimizer: Optional[Union[SGD, Adam, RMSprop]] = None, k1: int = 1,
                 k2: int = 32, clip_value: Optional[float] = None,
                 clip_norm: Optional[float] = None) -> None:
        if not isinstance(net, _Recurrent):
            raise TypeError(f"net must be a streamrnn LSTM, GRU or RNN, got {type(net).__name__}")
        loss, optimizer, k1, k2, cv, cn = check_trainer_settings(
            loss, optimizer, k1, k2, clip_value, clip_norm, net.output_size or net.hidden_size)
        check_in_dtype(optimizer, cv, cn, net.dtype)
        self._init_trainer(net, _core.LOSSES[loss], optimizer, k1, k2, cv or 0.0, cn or 0.0)
        # the settings: read-only from here on (see __setattr__)
        self.__dict__.update(net=net, loss=loss, optimizer=optimizer, k1=k1, k2=k2,
                             clip_value=clip_value, clip_norm=clip_norm)

    _read_only = _SETTINGS
    _read_only_why = ("the C trainer, its buffers and its checkpoints are built from it at "
                      "construction (setting it would be ignored by training but written by "
                      "sr.save); create a new OnlineTrainer(net, ...) with the new settings "
                      "instead")

    # statistics -----------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Steps (learn_one calls) since creation or reset()."""
        return int(self._c_steps())

    @property
    def updates(self) -> int:
        """Applied weight updates since creation."""
        return int(self._c_updates())

    @property
    def skipped_updates(self) -> int:
        """Updates skipped for a non-finite loss, gradient or result."""
        return int(self._c_skipped())

    @property
    def last_grad_norm(self) -> float:
        """Pre-clip L2 norm of the last attempted update's gradient (NaN before any)."""
        return float(self._c_last_grad_norm())

    @property
    def last_loss(self) -> float:
        """Loss of the last attempted update (NaN before any)."""
        return float(self._c_last_loss())

    @property
    def running_loss(self) -> float:
        """Mean per-step loss of the predictions over all targeted steps since reset."""
        n = self._c_loss_count()
        return float(self._c_loss_sum()) / n if n else float("nan")

    def stats(self) -> Dict[str, float]:
        """All statistics in one dict."""
        return {"steps": self.steps, "updates": self.updates,
                "skipped_updates": self.skipped_updates, "last_grad_norm": self.last_grad_norm,
                "last_loss": self.last_loss, "running_loss": self.running_loss}

    def reset(self) -> None:
        """Set the stream state to the network's initial state (zeros unless
        ``net.set_initial_state`` set one), empty the ring buffer, clear the since-reset
        counters. The weights and the optimizer's moments and step count are kept."""
        super().reset()
        if self.net._initial is not None:
            self.net.reset_state(self.state)

    def _kwargs(self) -> Dict[str, Any]:
        return dict(loss=self.loss, optimizer=self.optimizer, k1=self.k1, k2=self.k2,
                    clip_value=self.clip_value, clip_norm=self.clip_norm)

    @property
    def lock(self) -> Any:
        """The network's ``threading.RLock`` (``net.lock``): to share this trainer (or its
        network) between threads, take it around every call in every thread; calls then
        wait for each other instead of raising RuntimeError."""
        return self.net.lock

    def _consistent(self) -> Any:
        """The trainer's snapshot and the weights, read at one moment (RuntimeError while
        another thread trains, steps the trainer's state or writes the weights)."""
        with _core._holding(self):
            return self._snapshot(), self.net.parameters().copy()

    def __reduce__(self) -> Any:
        snap, params = self._consistent()
        return (_rebuild, (self.net, self._kwargs(), snap, params))

    def __deepcopy__(self, memo: Any) -> "OnlineTrainer":
        import copy

        snap, params = self._consistent()
        net = copy.deepcopy(self.net, memo)
        return _rebuild(net, self._kwargs(), snap, params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())
        return f"OnlineTrainer({self.net!r}, {args})"
