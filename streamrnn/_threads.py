"""The one thread contract for pure-Python objects (the Forecaster): see RELIABILITY.md.

Every public method of a guarded object is a *reader* (forecast, stats, save) or a
*writer* (learn_one, learn_many, forget). A readers/writer counter without waiting
(``_core._Guard``, the same one as a State's) refuses at once with RuntimeError a call that
meets a conflicting one in another thread, so no call ever sees a half-done update.
With ``obj.threadsafe`` true, every such call first takes ``obj.lock`` (a
``threading.RLock``), so calls from several threads wait for each other instead.
"""
from __future__ import annotations

import functools
import pickle
import threading
from typing import Any, Callable, Dict, List, TypeVar

import numpy as np

from . import _core

_F = TypeVar("_F", bound=Callable[..., Any])


class _Use:
    """``with _Use(obj, write, inner):`` obj's lock (when threadsafe), then its guard, then
    (``inner``) read holds on its networks and trainers."""

    __slots__ = ("obj", "write", "inner", "lock", "held")

    def __init__(self, obj: Any, write: bool, inner: bool = False) -> None:
        self.obj = obj
        self.write = write
        self.inner = inner
        self.lock: Any = None
        self.held: Any = None

    def __enter__(self) -> "_Use":
        obj = self.obj
        lock = obj.lock if obj.threadsafe else None
        if lock is not None:
            lock.acquire()
        try:
            obj._guard._enter(self.write, f"this {type(obj).__name__}")
            try:
                if self.inner:
                    held = _core._holding(*_inner(obj))
                    held.__enter__()
                    self.held = held
            except BaseException:
                obj._guard._exit(self.write)
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self.lock = lock
        return self

    def __exit__(self, *exc: Any) -> None:
        held, self.held = self.held, None
        if held is not None:
            held.__exit__(None, None, None)
        self.obj._guard._exit(self.write)
        lock, self.lock = self.lock, None
        if lock is not None:
            lock.release()


def _wrap(method: _F, write: bool) -> _F:
    what = "this " + method.__qualname__.split(".")[0]   # for the error message

    def guarded(self: Any, args: Any, kwargs: Any) -> Any:
        g = self._guard
        g._enter(write, what)
        try:
            return method(self, *args, **kwargs)
        finally:
            g._exit(write)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.threadsafe:
            with self.lock:
                return guarded(self, args, kwargs)
        return guarded(self, args, kwargs)
    return call  # type: ignore[return-value]


def reads(method: _F) -> _F:
    """Decorator: the method is a reader of its object (shared with other readers)."""
    return _wrap(method, False)


def writes(method: _F) -> _F:
    """Decorator: the method is the writer of its object (exclusive)."""
    return _wrap(method, True)


# ---------------------------------------------------------------------- Forecaster parts
# (an object with .net and ._streams whose values have .trainer)

def setup(obj: Any, threadsafe: Any) -> None:
    """Give ``obj`` its ``threadsafe`` flag, its ``lock`` and its guard."""
    if not isinstance(threadsafe, (bool, np.bool_)):
        raise TypeError(f"threadsafe must be a bool, got {type(threadsafe).__name__}")
    obj.threadsafe = bool(threadsafe)
    obj.lock = threading.RLock()
    obj._guard = _core._Guard()


def _inner(obj: Any) -> List[Any]:
    """What a whole-object read also holds: the networks and every stream's trainer."""
    return [obj.net] + [s.trainer for s in obj._streams.values()]


def reading(obj: Any, inner: bool = False) -> _Use:
    """``with obj._reading(inner=True):`` hold obj as a reader, and (inner) its networks
    and trainers: sr.save uses it so that nothing moves while it is copied."""
    return _Use(obj, False, inner)


def getstate(obj: Any) -> Dict[str, Any]:
    """Pickle/deepcopy: the networks and streams are serialised inside one read hold (one
    moment; RuntimeError while another thread learns). Lock and guard are not kept."""
    with reading(obj, inner=True):
        d = {k: v for k, v in obj.__dict__.items()
             if k not in ("lock", "_guard", "_net", "_streams")}
        d["_nets_streams"] = pickle.dumps((obj._net, obj._streams))
    return d


def setstate(obj: Any, d: Dict[str, Any]) -> None:
    d = dict(d)
    obj._net, obj._streams = pickle.loads(d.pop("_nets_streams"))
    obj.__dict__.update(d)
    obj.lock = threading.RLock()
    obj._guard = _core._Guard()
