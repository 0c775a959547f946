"""The Flink job's record validator (streamrnn._records, no pyflink needed): every kind of bad
record gives a reason instead of raising (a raise in process_element fails the Flink job),
and good records parse exactly. The job itself (side output, equivalence) is
tests/test_flink.py, run in its own venv by .ci/flink."""
from __future__ import annotations

import decimal
import fractions
import math

import numpy as np
import pytest

from streamrnn._records import describe, parse_record, raw_key


class Hostile:
    def __float__(self):
        raise RuntimeError("no")

    def __repr__(self):
        raise RuntimeError("no repr either")


class HostileReal(float):
    def __float__(self):
        raise ZeroDivisionError("boom")


GOOD = [
    (("k", 1, 2.5), ("k", 1, 2.5)),
    (["k", "7", "3"], ("k", 7, 3.0)),
    ("k, 7 , 3.25", ("k", 7, 3.25)),
    ((5, 1, 2), ("5", 1, 2.0)),                          # an int key is named by its digits
    ((np.int64(5), np.int32(2), np.float32(0.5)), ("5", 2, 0.5)),
    (("k", 2.0, decimal.Decimal("1.5")), ("k", 2, 1.5)),  # an integral float timestamp
    (("k", -(1 << 63), fractions.Fraction(1, 4)), ("k", -(1 << 63), 0.25)),
    (("k", (1 << 63) - 1, 10 ** 300), ("k", (1 << 63) - 1, 1e300)),
    (("k", 1, 1.7976931348623157e308), ("k", 1, 1.7976931348623157e308)),
]


@pytest.mark.parametrize("record, expected", GOOD, ids=[repr(r[0]) for r in GOOD])
def test_good_records(record, expected):
    rec, why = parse_record(record)
    assert why is None and rec == expected
    assert all(type(a) is type(b) for a, b in zip(rec, expected))
    assert raw_key(record) == expected[0]


@pytest.mark.parametrize("record", [("k", 1, None), ("k", 1, ""), "k,1,", ("k", 1, "nan"),
                                    ("k", 1, math.nan), ("k", 1, np.nan)])
def test_missing_values_are_good_records(record):
    rec, why = parse_record(record)
    assert why is None and rec[:2] == ("k", 1) and math.isnan(rec[2])


BAD = [
    # not a record
    (None, "not a (key, timestamp, value) record"),
    (42, "not a (key, timestamp, value) record"),
    ("1,1.0", "not a (key, timestamp, value) record"),
    (("k", 1), "not a (key, timestamp, value) record"),
    (("k", 1, 2, 3), "not a (key, timestamp, value) record"),
    ({"a": 1, "b": 2, "c": 3}, "not a (key, timestamp, value) record"),
    (b"k,1,2", "not a (key, timestamp, value) record"),
    (Hostile(), "not a (key, timestamp, value) record"),
    # keys
    ((None, 1, 2.0), "missing key"),
    (("", 1, 2.0), "missing key"),
    ((" ", 1, 2.0), "missing key"),
    (",3,2", "missing key"),
    ((math.nan, 1, 2.0), "NaN key"),
    ((np.float64("nan"), 1, 2.0), "NaN key"),
    ((1.5, 1, 2.0), "key must be a str or int, got float"),
    ((True, 1, 2.0), "key must be a str or int"),
    ((b"k", 1, 2.0), "key must be a str or int, got bytes"),
    ((("a",), 1, 2.0), "key must be a str or int, got tuple"),
    # timestamps
    (("k", math.inf, 2.0), "timestamp must be a finite integer"),
    (("k", -math.inf, 2.0), "timestamp must be a finite integer"),
    (("k", math.nan, 2.0), "timestamp must be a finite integer"),
    (("k", 1.5, 2.0), "timestamp must be a finite integer"),
    (("k", 1 << 63, 2.0), "timestamp out of the 64-bit range"),
    (("k", -(1 << 63) - 1, 2.0), "timestamp out of the 64-bit range"),
    (("k", 10 ** 400, 2.0), "timestamp out of the 64-bit range"),
    (("k", 1e300, 2.0), "timestamp out of the 64-bit range"),
    (("k", fractions.Fraction(10 ** 400, 3), 2.0), "timestamp out of range"),
    (("k", "inf", 2.0), "non-integer timestamp"),
    (("k", "1e3", 2.0), "non-integer timestamp"),
    ("k,inf,2", "non-integer timestamp"),
    (("k", None, 2.0), "timestamp must be an integer"),
    (("k", True, 2.0), "timestamp must be an integer"),
    (("k", [1], 2.0), "timestamp must be an integer, got list"),
    (("k", 1 + 0j, 2.0), "timestamp must be an integer, got complex"),
    # values
    (("k", 1, math.inf), "infinite value"),
    (("k", 1, -np.inf), "infinite value"),
    (("k", 1, "inf"), "infinite value"),
    (("k", 1, "1e400"), "infinite value"),
    ("k,1,1e400", "infinite value"),
    (("k", 1, decimal.Decimal("1e400")), "infinite value"),
    (("k", 1, 10 ** 400), "value out of the float range"),
    (("k", 1, -10 ** 400), "value out of the float range"),
    (("k", 1, fractions.Fraction(10 ** 400, 3)), "value out of the float range"),
    (("k", 1, "abc"), "non-numeric value 'abc'"),
    ("kx,2,abc", "non-numeric value 'abc'"),
    (("k", 1, True), "non-numeric value bool"),
    (("k", 1, b"1.0"), "non-numeric value bytes"),
    (("k", 1, 1 + 2j), "non-numeric value complex"),
    (("k", 1, [1.0]), "non-numeric value list"),
    (("k", 1, Hostile()), "non-numeric value Hostile"),
    (("k", 1, HostileReal(1.0)), "unreadable record: ZeroDivisionError"),
]


@pytest.mark.parametrize("record, reason", BAD, ids=[str(i) for i in range(len(BAD))])
def test_every_bad_record_gives_a_reason_and_never_raises(record, reason):
    rec, why = parse_record(record)
    assert rec is None and why is not None and why.startswith(reason), why
    assert len(why) < 200                 # a huge int is not spelled out
    assert isinstance(raw_key(record), str)
    assert isinstance(describe(record), str) and len(describe(record)) <= 200
