"""Issue 18 points 8 and 9: one rule for pandas inputs, errors that say what to pass, and
``net.run(X)`` without a state running from zeros.

pandas is optional (``pip install streamrnn[pandas]``); the pandas tests skip without it.
"""
import math
import pickle

import numpy as np
import pytest

import streamrnn as sr


def _series(n=80):
    return [10 + 3 * math.sin(0.4 * t) for t in range(n)]


# ------------------------------------------------------------------ point 8, no pandas needed

def test_evaluate_with_class_says_pass_an_instance():
    with pytest.raises(TypeError, match=r"got the class Forecaster; pass Forecaster\(\)"):
        sr.evaluate(_series(), sr.Forecaster)


# ------------------------------------------------------------------ point 8, pandas

def test_evaluate_series_is_its_values():
    pd = pytest.importorskip("pandas")
    ys = _series()
    s = pd.Series(ys, index=pd.date_range("2024-01-01", periods=len(ys), freq="h"), name="y")
    a = sr.evaluate(s, sr.Forecaster(hidden_size=8, seed=0), horizon=2)
    b = sr.evaluate(ys, sr.Forecaster(hidden_size=8, seed=0), horizon=2)
    assert a.mae == b.mae and a.n == b.n


def test_evaluate_dataframe_names_its_columns():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"y": _series(), "temp": np.arange(80.0)})
    with pytest.raises(TypeError, match=r"series must be one column.*\['y', 'temp'\].*"
                                        r"df\['y'\]"):
        sr.evaluate(df, sr.Forecaster(seed=0))
    # the hint names a numeric column, not the timestamps
    df = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=80, freq="h"),
                       "load": _series()})
    with pytest.raises(TypeError, match=r"e\.g\. df\['load'\]"):
        sr.evaluate(df, sr.Forecaster(seed=0))


def test_evaluate_x_dataframe_is_its_rows():
    pd = pytest.importorskip("pandas")
    ys = _series()
    temp = [0.1 * t for t in range(80)]
    df = pd.DataFrame({"y": ys, "temp": temp})
    a = sr.evaluate(df["y"], sr.Forecaster(hidden_size=8, seed=0), x=df[["temp"]],
                    horizon=2)
    b = sr.evaluate(ys, sr.Forecaster(hidden_size=8, seed=0),
                    x=[{"temp": v} for v in temp], horizon=2)
    assert a.mae == b.mae and a.n == b.n


def test_run_pandas_follows_the_ndarray_rule():
    """A DataFrame is its .to_numpy(): float32 runs (same result as the ndarray), float64 is
    refused for a float32 network exactly as a float64 ndarray is, saying how to convert."""
    pd = pytest.importorskip("pandas")
    net = sr.LSTM(2, 4, output_size=1, seed=0)
    X = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_array_equal(net.run(pd.DataFrame(X.astype(np.float32)),
                                          net.new_state()),
                                  net.run(X.astype(np.float32), net.new_state()))
    s = net.new_state()
    before = pickle.dumps(s)
    for bad in (X, pd.DataFrame(X)):
        with pytest.raises(TypeError, match=r"X must be an array of dtype float32.*"
                                            r"got dtype float64.*astype\(np.float32\)"):
            net.run(bad, s)
    assert pickle.dumps(s) == before
    # step() follows the same rule
    with pytest.raises(TypeError, match="dtype float64"):
        net.step(pd.Series(X[0]), s)
    assert net.step(pd.Series(X[0].astype(np.float32)), s).shape == (1,)


def test_checks_pandas_rule_helpers():
    pd = pytest.importorskip("pandas")
    from streamrnn._checks import is_pandas, pandas_rows, pandas_series
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, np.nan]})
    assert is_pandas(df) and is_pandas(df["a"]) and not is_pandas(np.zeros(2))
    rows = pandas_rows(df, "x")
    assert rows[0] == {"a": 1.0, "b": 3.0} and math.isnan(rows[1]["b"])
    assert list(pandas_series(df["a"], "s")) == [1.0, 2.0]
    lst = [1.0, 2.0]
    assert pandas_series(lst, "s") is lst and pandas_rows(lst, "x") is lst


# ------------------------------------------------------------------ point 9: run(X) from zeros

@pytest.mark.parametrize("cls", [sr.LSTM, sr.GRU, sr.RNN])
def test_run_without_state_is_run_from_a_fresh_state(cls):
    net = cls(3, 5, num_layers=2, output_size=2, seed=4)
    X = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    expect = net.run(X, net.new_state())
    # a state that is not zero: run(X) must not use or change it, nor any kept state
    s = net.new_state()
    net.run(X[::-1].copy(), s)
    saved = pickle.dumps(s)
    np.testing.assert_array_equal(net.run(X), expect)
    np.testing.assert_array_equal(net.run(X), expect)       # nothing kept between calls
    assert pickle.dumps(s) == saved
    # step by step from a zero state gives the same rows
    z = net.new_state()
    np.testing.assert_array_equal(np.stack([net.step(x, z) for x in X]), expect)


def test_run_without_state_bad_x_still_raises():
    net = sr.LSTM(3, 4, seed=0)
    with pytest.raises(ValueError, match=r"X must have shape"):
        net.run(np.zeros((4, 2), np.float32))
