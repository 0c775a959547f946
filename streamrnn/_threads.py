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
from typing import Any, Callable, TypeVar

from . import _core

_F = TypeVar("_F", bound=Callable[..., Any])


class _Use:
    """``with _Use(obj, write, inner):`` obj's lock (when threadsafe), then its guard, then
    (``inner``) read holds on everything ``obj._inner()`` returns (networks, trainers)."""

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
                    held = _core._holding(*obj._inner())
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
