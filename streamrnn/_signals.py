"""Ctrl-C at whole-step boundaries for Python loops that make several calls per step.

Forecaster.learn_one makes several calls per value (the trainer's observe, the scalers, the
next advance); a KeyboardInterrupt raised between two of them would leave the stream
half-way. ``with critical:`` holds SIGINT back: inside, a SIGINT only marks itself pending,
and the KeyboardInterrupt is raised when the outermost section ends (or at a step boundary
with ``critical.check()``), so the interrupted object is exactly as after a whole number of
steps.

How: the first time a section is entered in the main thread while Python's default SIGINT
handler (``signal.default_int_handler``) is installed, it is replaced, once, by
:func:`_handler`, which behaves exactly like the default (raises KeyboardInterrupt) outside
sections. Entering and leaving a section then costs two attribute updates, not two
``signal.signal`` calls (which would add ~50 % to a Forecaster.learn_one). A program that
installs its own SIGINT handler keeps it (sections then defer nothing: the handler is the
program's). Only the main thread ever receives Python signal handlers, so sections in other
threads need nothing.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Optional

__all__ = ["critical"]

_get_ident = threading.get_ident
_main = threading.main_thread


class _Critical:
    __slots__ = ("depth", "pending", "installed")

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False
        self.installed = False

    def _install(self) -> None:
        self.installed = True       # tried once, whatever the outcome
        try:
            if (threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
                signal.signal(signal.SIGINT, _handler)
        except (ValueError, OSError):   # pragma: no cover - embedded interpreters
            pass

    def __enter__(self) -> "_Critical":
        if _get_ident() != _main().ident:   # only the main thread receives signals
            return self
        if not self.installed:
            self._install()
        self.depth += 1
        return self

    def check(self) -> None:
        """Raise the pending KeyboardInterrupt now (call at a step boundary)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, typ: Optional[type], value: Any, tb: Any) -> None:
        if _get_ident() != _main().ident:
            return
        self.depth -= 1
        if self.depth == 0 and self.pending:     # Ctrl-C wins over an error in the section
            self.pending = False
            raise KeyboardInterrupt


critical = _Critical()


def _handler(signum: int, frame: Any) -> None:
    """SIGINT: KeyboardInterrupt, as Python's default, but held back inside a section."""
    if critical.depth > 0:
        critical.pending = True
        return
    raise KeyboardInterrupt
