"""The record validator of :mod:`streamrnn.flink`, kept free of pyflink so that it is tested
(and usable) without the extra.

A record is ``(key, timestamp, value)`` (a tuple, list or anything indexable of length 3
such as a pyflink ``Row``) or a CSV line ``"key,timestamp,value"``. Good records give
``(str key, int timestamp, float value)``; every bad record gives a reason, and nothing
here raises, whatever the record holds:

- key: a non-empty str, or an int (not a bool); None, empty, NaN, floats and other types are
  refused (a float key would name a stream by its printed digits);
- timestamp: an int in the signed 64-bit range (Flink's LONG), an integral finite float, or
  the text of such an int; inf, NaN, fractions, huge ints and other types are refused;
- value: a number (int, float, NumPy scalar, Decimal, Fraction, or its text) whose float is
  finite, or NaN/None/empty text (a missing value: the stream advances on its own forecast);
  bools, bytes, complex numbers, infinities and ints beyond the float range are refused.
"""
from __future__ import annotations

import decimal
import math
import numbers
from typing import Any, Optional, Tuple

__all__ = ["parse_record", "raw_key"]

_INT64 = (-(1 << 63), (1 << 63) - 1)


def _key(k: Any) -> Tuple[Optional[str], Optional[str]]:
    if isinstance(k, str):
        if not k.strip():
            return None, "missing key"
        return k, None
    if isinstance(k, bool) or k is None:
        return None, "missing key" if k is None else f"key must be a str or int, got {k!r}"
    if isinstance(k, numbers.Integral):
        return str(int(k)), None
    if isinstance(k, float) and k != k:
        return None, "NaN key"
    return None, f"key must be a str or int, got {type(k).__name__} {_short(k)}"


def _timestamp(ts: Any) -> Tuple[Optional[int], Optional[str]]:
    t: Optional[int] = None
    if isinstance(ts, bool) or ts is None:
        return None, f"timestamp must be an integer, got {ts!r}"
    if isinstance(ts, numbers.Integral):
        t = int(ts)
    elif isinstance(ts, numbers.Real):
        try:
            f = float(ts)
        except (OverflowError, ValueError, TypeError):
            return None, f"timestamp out of range: {_short(ts)}"
        if not math.isfinite(f) or f != math.floor(f):
            return None, f"timestamp must be a finite integer, got {_short(ts)}"
        t = int(f)
    elif isinstance(ts, str):
        try:
            t = int(ts.strip())
        except ValueError:
            return None, f"non-integer timestamp {_short(ts)}"
    else:
        return None, f"timestamp must be an integer, got {type(ts).__name__} {_short(ts)}"
    if not _INT64[0] <= t <= _INT64[1]:
        return None, f"timestamp out of the 64-bit range: {_short(ts)}"
    return t, None


def _value(y: Any) -> Tuple[Optional[float], Optional[str]]:
    if y is None or (isinstance(y, str) and not y.strip()):
        return math.nan, None
    if isinstance(y, bool) or not isinstance(y, (numbers.Real, str, decimal.Decimal)):
        return None, f"non-numeric value {type(y).__name__} {_short(y)}"
    try:
        v = float(y)
    except OverflowError:
        return None, f"value out of the float range: {_short(y)}"
    except (TypeError, ValueError):
        return None, f"non-numeric value {_short(y)}"
    if math.isinf(v):
        return None, f"infinite value {_short(y)}"
    return v, None


def _short(v: Any) -> str:
    """repr, cut to 60 characters (a huge int's repr is long, and slow past 4300 digits)."""
    try:
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 200:
            return f"<int of {v.bit_length()} bits>"
        r = repr(v)
    except Exception:           # noqa: BLE001 - a hostile __repr__
        return f"<{type(v).__name__}>"
    return r if len(r) <= 60 else r[:57] + "..."


def parse_record(value: Any) -> Tuple[Optional[Tuple[str, int, float]], Optional[str]]:
    """``((key, timestamp, value), None)`` for a good record, ``(None, reason)`` for a bad
    one; never raises."""
    try:
        if isinstance(value, str):            # a CSV line "key,timestamp,value"
            value = tuple(v.strip() for v in value.split(","))
        if isinstance(value, (bytes, bytearray, dict, set, frozenset)):
            return None, "not a (key, timestamp, value) record"
        key, ts, y = value
    except Exception:           # noqa: BLE001 - anything that is not a 3-item record
        return None, "not a (key, timestamp, value) record"
    try:
        k, why = _key(key)
        if why is not None:
            return None, why
        t, why = _timestamp(ts)
        if why is not None:
            return None, why
        v, why = _value(y)
        if why is not None:
            return None, why
    except Exception as e:      # noqa: BLE001 - a hostile __float__/__int__/__index__
        return None, f"unreadable record: {type(e).__name__}"
    assert k is not None and t is not None and v is not None
    return (k, t, v), None


def raw_key(value: Any) -> str:
    """The stream key of a raw record, as ``parse_record`` names it ('' when it has none or
    it is bad: such records all go to one key, where they are refused). Never raises."""
    try:
        if isinstance(value, str):
            return value.split(",", 1)[0].strip()
        if isinstance(value, (bytes, bytearray, dict, set, frozenset)):
            return ""
        k, _ = _key(value[0])
    except Exception:           # noqa: BLE001
        return ""
    return "" if k is None else k


def describe(value: Any) -> str:
    """A bounded, never-raising repr of a record for the side output."""
    return _short(value) if not isinstance(value, str) else (
        value if len(value) <= 200 else value[:197] + "...")
