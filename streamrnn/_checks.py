"""Argument checks shared by the public classes and the NumPy reference (pure Python).

Every check raises TypeError for a wrong type and ValueError for a wrong value, with a message
naming the argument, what was expected and what was given.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from .optim import SGD, Adam, RMSprop

LOSSES = ("mse", "cross_entropy")
MAX_WINDOW = 1 << 20     # k1, k2 above this are absurd (and would overflow the C int)


def check_int(value: Any, name: str, minimum: int, maximum: Optional[int] = None) -> int:
    """An integer (not a bool) in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got "
                        f"{type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value}")
    return int(value)


def check_dtype(dtype: Any) -> np.dtype:
    """'float32' or 'float64' (any spelling NumPy accepts) as a NumPy dtype."""
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise TypeError("dtype must be 'float32' or 'float64', got None")
    try:
        dt: np.dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dt}")
    return dt


def check_clip(value: Any, name: str) -> Optional[float]:
    """None (off) or a finite number > 0."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be None or a finite number > 0, got "
                        f"{type(value).__name__} {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be None or a finite number > 0, got {v!r}")
    return v


def float_array(value: Any, name: str) -> np.ndarray:
    """value as an array of a real floating dtype (TypeError naming ``name`` otherwise)."""
    try:
        a = np.asarray(value)
    except Exception:
        raise TypeError(f"{name} must be an array, got {type(value).__name__}") from None
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a real floating array, got dtype {a.dtype}")
    return a


def fitted(a: np.ndarray, name: str, dtype: np.dtype) -> np.ndarray:
    """A finite floating array converted to dtype (a new array); ValueError naming ``name``
    for NaN/inf, or for values that overflow dtype."""
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    with np.errstate(over="ignore"):
        conv = a.astype(dtype)
    if not np.all(np.isfinite(conv)):
        raise ValueError(f"{name} holds values too large for {np.dtype(dtype).name} "
                         f"(max {np.finfo(dtype).max:.3g})")
    return conv


def check_trainer_settings(loss: Any, optimizer: Any, k1: Any, k2: Any, clip_value: Any,
                           clip_norm: Any, out_size: int
                           ) -> Tuple[str, Any, int, int, Optional[float], Optional[float]]:
    """The settings of an online trainer (OnlineTrainer and reference.Trainer alike).

    Returns (loss, optimizer (Adam() for None), k1, k2, clip_value, clip_norm).
    """
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if optimizer is None:
        optimizer = Adam()
    if not isinstance(optimizer, (SGD, Adam, RMSprop)):
        raise TypeError(f"optimizer must be streamrnn.SGD, Adam or RMSprop, got "
                        f"{type(optimizer).__name__}")
    k1 = check_int(k1, "k1", 1, MAX_WINDOW)
    k2 = check_int(k2, "k2", 1, MAX_WINDOW)
    if k2 < k1:
        raise ValueError(f"k2 must be >= k1 (= {k1}), got {k2}")
    if loss == "cross_entropy" and out_size < 2:
        raise ValueError(f"loss 'cross_entropy' needs at least 2 outputs (classes), got "
                         f"{out_size}")
    return (loss, optimizer, k1, k2, check_clip(clip_value, "clip_value"),
            check_clip(clip_norm, "clip_norm"))


# One rule for pandas inputs, everywhere: a pandas object is taken as its values
# (``.to_numpy()``), exactly as if that ndarray had been passed (same dtype rules, no
# silent casts where an ndarray would get none). Where one value per step is expected
# (a series), a DataFrame is refused with its column names; where one feature set per step
# is expected (``x``), a DataFrame is its rows as {column: value} dicts.

def is_pandas(value: Any) -> bool:
    """True for a pandas Series, DataFrame or Index (without importing pandas)."""
    return any(c.__module__.split(".")[0] == "pandas" for c in type(value).__mro__)


def pandas_series(value: Any, name: str) -> Any:
    """A pandas Series/Index as its values (ndarray); a DataFrame is a TypeError naming its
    columns; anything else is returned unchanged."""
    if not is_pandas(value):
        return value
    if getattr(value, "ndim", 1) != 1:
        cols = [str(c) for c in getattr(value, "columns", [])]
        numeric = [str(c) for c, t in getattr(value, "dtypes", {}).items()
                   if getattr(t, "kind", "") in "iuf"]
        pick = (numeric or cols or ["y"])[0]
        raise TypeError(f"{name} must be one column of numbers (a Series), got a "
                        f"{type(value).__name__} with columns {cols}; pass one column, "
                        f"e.g. df[{pick!r}]")
    return value.to_numpy()


def pandas_rows(value: Any, name: str) -> Any:
    """A pandas DataFrame as a list of its rows ({column: value} dicts, NaN for missing);
    a Series as a list of its values; anything else unchanged."""
    if not is_pandas(value):
        return value
    if getattr(value, "ndim", 1) == 2:
        cols = list(value.columns)
        return [dict(zip(cols, row)) for row in value.itertuples(index=False, name=None)]
    return list(value.to_numpy())


def pandas_values(value: Any) -> Any:
    """A pandas object as its ``.to_numpy()`` ndarray (for arrays of the network's
    dtype); anything else unchanged."""
    return value.to_numpy() if is_pandas(value) else value


class ReadOnlySettings:
    """Mixin: the attributes named in ``_read_only`` are set once at construction (through
    ``self.__dict__``) and refuse assignment and deletion afterwards (AttributeError), with a
    message that says why (``_read_only_why``, ``{cls}`` the class name) and what to do."""

    __slots__ = ()
    _read_only: "frozenset[str]" = frozenset()
    _read_only_why = "it is fixed at construction"

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._read_only:
            cls = type(self).__name__
            raise AttributeError(f"{cls}.{name} is read-only: "
                                 f"{self._read_only_why.format(cls=cls)}")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._read_only:
            raise AttributeError(f"{type(self).__name__}.{name} is read-only")
        super().__delattr__(name)

