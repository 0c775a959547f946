"""`python -m streamrnn forecast --interval`: the low/high columns, their level, resume."""
from __future__ import annotations

import csv
import io
import math

import pytest

import streamrnn as sr
from streamrnn import cli


def _write(path, values):
    with open(path, "w") as fh:
        fh.write("t,v\n")
        for t, v in enumerate(values):
            fh.write(f"{t},{v!r}\n")


def _values(n):
    return [10 + 3 * math.sin(2 * math.pi * t / 6) + 0.5 * ((t * 7919) % 11) / 11
            for t in range(n)]


def _table(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def test_interval_columns_are_the_forecasters_intervals(tmp_path, capsys):
    # the CLI's rows against a Forecaster built as documented (season 6, interval level
    # 0.8: a new model tracks that level), fed the same values
    vals = _values(120)
    src = tmp_path / "in.csv"
    _write(src, vals)
    assert cli.main(["forecast", str(src), "-c", "v", "-H", "3", "--season", "6",
                     "--hidden", "8", "--interval", "0.8", "--quiet"]) == 0
    head, rows = _table(capsys.readouterr().out)
    assert head == ["line", "value", "forecast_1", "forecast_2", "forecast_3", "low_1",
                    "high_1", "low_2", "high_2", "low_3", "high_3"]
    f = sr.Forecaster(hidden_size=8, seed=0, season=6, n_features=0, interval_level=0.8)
    finite = 0
    for v, r in zip(vals, rows):
        f.learn_one(v)
        fc = f.forecast(3)
        iv = f.forecast_interval(3, 0.8)
        assert [float(x) for x in r[2:5]] == fc
        assert [float(x) for x in r[5:]] == [b for lo_hi in iv for b in lo_hi]
        for k in range(3):
            lo, hi = float(r[5 + 2 * k]), float(r[6 + 2 * k])
            assert lo <= fc[k] <= hi
            finite += math.isfinite(hi - lo)
    assert finite > 100          # finite once errors were seen (not all (-inf, inf))


def test_interval_resume_equals_one_run(tmp_path, capsys):
    vals = _values(100)
    whole, p1, p2 = (tmp_path / n for n in ("all.csv", "p1.csv", "p2.csv"))
    _write(whole, vals)
    _write(p1, vals[:60])
    with open(p2, "w") as fh:
        fh.write("t,v\n")
        for t in range(60, 100):
            fh.write(f"{t},{vals[t]!r}\n")
    ck = tmp_path / "ck.srnn"
    common = ["-H", "2", "--season", "6", "--hidden", "8", "--interval", "0.9", "--quiet"]
    assert cli.main(["forecast", str(whole), "-c", "v"] + common) == 0
    _, ra = _table(capsys.readouterr().out)
    assert cli.main(["forecast", str(p1), "-c", "v", "--save", str(ck)] + common) == 0
    _, rb = _table(capsys.readouterr().out)
    assert cli.main(["forecast", str(p2), "--load", str(ck), "--interval", "0.9",
                     "--quiet"]) == 0
    _, rc = _table(capsys.readouterr().out)
    assert [r[1:] for r in ra] == [r[1:] for r in rb + rc]      # bit for bit (same text)
    assert len(ra[0]) == 2 + 2 + 4


@pytest.mark.parametrize("level", ["0", "1", "1.5", "-0.1", "abc"])
def test_interval_level_outside_0_1_is_a_usage_error(level, tmp_path, capsys):
    src = tmp_path / "in.csv"
    _write(src, _values(5))
    assert cli.main(["forecast", str(src), "-c", "v", f"--interval={level}"]) == 2
    err = capsys.readouterr().err
    assert "--interval" in err and "(0, 1)" in err
