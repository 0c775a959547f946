"""Progress bars for long runs: tqdm when it is installed, a one-line fallback otherwise.

Both stay off when stderr is not a terminal (pipes, CI logs, tests), unless forced.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO


def stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class _Null:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Simple(_Null):
    """A minimal bar for when tqdm is missing: ``desc: 120/309 (39%) 1500 it/s``."""

    def __init__(self, total: Optional[int], desc: str, stream: TextIO) -> None:
        self.total = total
        self.desc = desc
        self.stream = stream
        self.n = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= 0.1 or (self.total is not None and self.n >= self.total):
            self.last = now
            self._draw(now)

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def _draw(self, now: float) -> None:
        rate = self.n / max(now - self.t0, 1e-9)
        if self.total:
            pos = f"{self.n}/{self.total} ({100 * self.n // self.total}%)"
        else:
            pos = f"{self.n}"
        extra = f", {self.postfix}" if self.postfix else ""
        self.stream.write(f"\r{self.desc}: {pos} {rate:.0f} it/s{extra}\033[K")
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()


def progress_bar(total: Optional[int] = None, desc: str = "", enabled: Optional[bool] = None
                 ) -> Any:
    """A progress bar on stderr with ``update(n)``, ``set_postfix_str(s)`` and ``close()``.

    ``enabled=None`` (default): on only when stderr is a terminal. tqdm is used when it is
    installed (``pip install streamrnn[progress]``).
    """
    if enabled is None:
        enabled = stderr_is_tty()
    if not enabled:
        return _Null()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Simple(total, desc, sys.stderr)
    return tqdm(total=total, desc=desc, file=sys.stderr, unit="step", dynamic_ncols=True,
                mininterval=0.1)
