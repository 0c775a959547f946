"""sr.Forecaster and sr.evaluate: learning, forecasting without side effects, scaling,
missing values, exogenous features, keyed streams, progressive validation."""
from __future__ import annotations

import math

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.datasets import load_sunspots


def sine(n, scale=1.0, offset=0.0, period=20.0):
    return [offset + scale * math.sin(2 * math.pi * t / period) for t in range(n)]


def snapshot(f, key=None):
    """Everything that forecast() must leave untouched."""
    s = f._streams[key]
    snap = s.trainer._snapshot()
    return (f.network(key).parameters().copy(), snap["h"], snap["c"], snap["ring"],
            snap["tags"], snap["m1"], snap["m2"], dict(snap["counters"]), s.u.copy(),
            s.last_y, s.sy.pack(), s.sd.pack(), s.sx.pack().copy(), s.n_seen)


def same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True)
        elif isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), k
        elif x is None:
            assert y is None
        else:
            assert x == y or (x != x and y != y)


# ---------------------------------------------------------------------- basics
def test_learns_a_sine_better_than_persistence():
    f = sr.Forecaster(hidden_size=16, seed=0)
    res = sr.evaluate(sine(600), f, horizon=3)
    assert res.n[0] == 599 and res.n[2] == 597
    for k in range(3):
        assert res.mae[k] < 0.5 * res.persistence_mae[k]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("differencing", [True, False])
def test_every_cell_and_mode_forecasts_finite(cell, differencing):
    f = sr.Forecaster(cell=cell, hidden_size=8, seed=1, differencing=differencing)
    for y in sine(120, 3.0, 50.0):
        f.learn_one(y)
    out = f.forecast(5)
    assert len(out) == 5 and all(math.isfinite(v) for v in out)
    assert all(isinstance(v, float) for v in out)
    assert max(abs(v - 50) for v in out) < 10


def test_forecast_before_any_value_is_nan():
    f = sr.Forecaster(seed=0)
    assert all(math.isnan(v) for v in f.forecast(3))
    f.learn_one(float("nan"))
    assert all(math.isnan(v) for v in f.forecast(2))
    f.learn_one(4.0)
    # untrained (one value seen): the persistence forecast, up to the untrained network's
    # near-zero scaled change (DESIGN 9: "Untrained, the forecaster gives persistence")
    assert f.forecast(1)[0] == pytest.approx(4.0, abs=1e-6)


def test_forecast_leaves_state_weights_and_scalers_untouched():
    f = sr.Forecaster(hidden_size=8, seed=3, n_features=1)
    for t, y in enumerate(sine(80, 2.0, 7.0)):
        f.learn_one(y, [t % 5])
    before = snapshot(f)
    a = f.forecast(1)
    b = f.forecast(7, xs=[[1.0]] * 7)
    c = f.forecast(7)
    same(before, snapshot(f))
    assert f.forecast(1) == a
    assert f.forecast(7, xs=[[1.0]] * 7) == b and f.forecast(7) == c


def test_forecast_one_is_the_prediction_learn_one_learns_from():
    # without features the step that predicts the next value runs in learn_one (advance);
    # forecast(1) is its kept output, the rollout starts from it, and the next learn_one
    # scores exactly that prediction
    f = sr.Forecaster(hidden_size=8, seed=3, dtype="float64")
    for y in sine(50):
        f.learn_one(y)
    one = f.expert_forecasts(1)["network"][0]
    assert f.expert_forecasts(4)["network"][0] == one
    tr = f.trainer()
    s = f._streams[None]
    assert tr._c_pending() == 1                 # the step waits for its target
    pending = s.o                               # scaled output of that step
    assert f._unscale(s, pending, s.last_y) == one
    count, total = tr._c_loss_count(), tr._c_loss_sum()
    y_new = 0.25
    target = f._target(s, y_new)
    f.learn_one(y_new)
    assert tr._c_loss_count() == count + 1
    assert tr._c_loss_sum() - total == pytest.approx((pending - target) ** 2, rel=1e-9)


def _count_calls(obj, names, calls):
    for name in names:
        fn = getattr(obj, name)

        def wrapped(*a, _fn=fn, _name=name, **k):
            calls[_name] = calls.get(_name, 0) + 1
            out = _fn(*a, **k)
            calls["last_" + _name] = out
            return out
        setattr(obj, name, wrapped)


def test_one_forward_step_per_value():
    # one forward step per observed value: learn_one advances the stream once (the step
    # that predicts the next value), forecast(1) runs none and changes nothing
    f = sr.Forecaster(hidden_size=8, seed=0)
    ys = sine(30)
    f.learn_one(ys[0])
    tr, net = f.trainer(), f.net
    calls = {}
    _count_calls(tr, ("advance", "observe", "learn_one", "predict_one"), calls)
    _count_calls(net, ("step",), calls)
    for n, y in enumerate(ys[1:], start=2):
        f.learn_one(y)
        assert tr.steps == n                   # one step per learn_one, the first included
        before = (tr._stats(), tr.state.h.copy(), tr.state.c.copy(), net.parameters().copy())
        out = f.forecast(1)
        after = (tr._stats(), tr.state.h, tr.state.c, net.parameters())
        assert before[0] == pytest.approx(after[0], nan_ok=True)
        for a, b in zip(before[1:], after[1:]):
            assert np.array_equal(a, b)
        s = f._streams[None]
        assert s.o == float(calls["last_advance"][0])
        own = f._unscale(s, s.o, s.last_y)
        assert f.expert_forecasts(1)["network"] == ([own] if n >= 3 else [pytest.approx(
            float("nan"), nan_ok=True)])
        w = f.expert_weights(1)
        if w["network"] > 0:
            assert out[0] == pytest.approx(sum(w[n] * v[0] for n, v in
                                               f.expert_forecasts(1).items()), rel=1e-12)
    assert calls["advance"] == calls["observe"] == len(ys) - 1
    assert "learn_one" not in calls and "predict_one" not in calls and "step" not in calls
    # a horizon of h runs h - 1 steps, on a copy of the state
    calls.pop("step", None)
    f.forecast(5)
    assert calls["step"] == 4 and tr.steps == len(ys)


def test_one_forward_step_per_value_with_missing_values_and_keys():
    f = sr.Forecaster(hidden_size=8, seed=0, k1=3, k2=6)
    n = {"a": 0, "b": 0}
    for t, y in enumerate(sine(40)):
        for k in n:
            f.learn_one(float("nan") if t % 7 == 3 else y, key=k)
            n[k] += 1
            f.forecast(1, key=k)
    for k in n:
        assert f.trainer(k).steps == n[k] == f.stats(k)["steps"]


def test_features_step_lazily_when_they_arrive():
    # with features the step that predicts y[t+1] needs x[t+1]: learn_one(y, x) runs it
    # (one live step per value), forecast(1, xs=[x]) computes it on a copy, and the two
    # agree with the prediction that learn_one scores
    f = sr.Forecaster(hidden_size=8, seed=1, dtype="float64")
    ys = sine(40)
    for t, y in enumerate(ys):
        f.learn_one(y, [t % 3])
    tr = f.trainer()
    assert tr.steps == len(ys) - 1 and tr._c_pending() == 0
    s = f._streams[None]
    assert s.o is None
    x = [2.0]
    one = f.expert_forecasts(1, xs=[x])["network"][0]
    assert f.expert_forecasts(3, xs=[x] * 3)["network"][0] == pytest.approx(one, rel=1e-12,
                                                                             abs=1e-12)
    assert f.forecast(3, xs=[x] * 3)[0] == f.forecast(1, xs=[x])[0]
    u = s.u.copy()
    f._fill_x(s, u, np.array(x))
    scaled = float(tr.predict_one(u)[0])
    assert f._unscale(s, scaled, s.last_y) == one
    calls = {}
    _count_calls(tr, ("advance",), calls)
    f.learn_one(0.1, x)
    assert calls["advance"] == 1 and tr.steps == len(ys)
    assert float(calls["last_advance"][0]) == pytest.approx(scaled, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------------- scaling
def test_raw_airline_scale_series_does_not_diverge():
    # AirlinePassengers-like magnitudes (a trend from 100 to 600 with seasonality), and the
    # same series times 1e6: scaling makes the runs nearly identical
    t = np.arange(144)
    y = 100 + 3.5 * t + (20 + 0.6 * t) * np.sin(2 * np.pi * t / 12)
    res = []
    for scale in (1.0, 1e6):
        f = sr.Forecaster(seed=0)
        r = sr.evaluate(y * scale, f, horizon=1)
        assert np.all(np.isfinite(f.net.parameters()))
        assert f.trainer().skipped_updates == 0
        res.append(r.mae[0] / scale)
        assert r.mae[0] < r.persistence_mae[0]
    assert res[1] == pytest.approx(res[0], rel=1e-2)


def test_constant_series_and_jump():
    f = sr.Forecaster(hidden_size=8, seed=0)
    for _ in range(50):
        f.learn_one(5.0)
    assert all(abs(v - 5.0) < 1.0 for v in f.forecast(3))
    f.learn_one(1e9)          # a huge jump after a constant: clipped, never NaN
    for _ in range(10):
        f.learn_one(5.0)
    assert all(math.isfinite(v) for v in f.forecast(3))
    assert np.all(np.isfinite(f.net.parameters()))


def test_scale_halflife_and_no_scaling():
    y = sine(600, 0.5)
    for kw in ({"scale_halflife": 30.0}, {"scale": False}, {"differencing": False},
               {"scale": False, "differencing": False}):
        f = sr.Forecaster(hidden_size=8, seed=0, **kw)
        r = sr.evaluate(y, f, grace_period=300)
        assert r.mae[0] < r.persistence_mae[0], kw


# ---------------------------------------------------------------------- missing values
@pytest.mark.parametrize("missing", [float("nan"), None, np.float32("nan")])
def test_missing_value_advances_without_learning(missing):
    f = sr.Forecaster(hidden_size=8, seed=0)
    for y in sine(40):
        f.learn_one(y)
    params = f.net.parameters().copy()
    updates = f.trainer().updates
    expected = f.expert_forecasts(2)["network"]
    f.learn_one(missing)
    assert np.array_equal(params, f.net.parameters())      # k1=1: no update from it
    assert f.trainer().updates == updates
    # the model's own forecast stood in for the missing value
    assert f._streams[None].last_y == pytest.approx(expected[0], rel=1e-6)
    assert f.expert_forecasts(1)["network"][0] == pytest.approx(expected[1], rel=1e-4,
                                                                abs=1e-4)
    assert f.stats()["missing"] == 1 and f.stats()["observations"] == 40


def test_long_gap_of_missing_values_never_poisons():
    f = sr.Forecaster(hidden_size=8, seed=0, k1=4, k2=8)
    ys = sine(300)
    for i in range(100, 200):
        ys[i] = float("nan")
    r = sr.evaluate(ys, f)
    assert np.all(np.isfinite(f.net.parameters()))
    assert r.n[0] == 199
    assert r.mae[0] < r.persistence_mae[0]


def test_bad_values_raise_and_change_nothing():
    f = sr.Forecaster(hidden_size=8, seed=0)
    for y in sine(20):
        f.learn_one(y)
    before = snapshot(f)
    with pytest.raises(ValueError, match="y must be finite"):
        f.learn_one(float("inf"))
    with pytest.raises(TypeError, match="y must be a number"):
        f.learn_one("3.0")
    with pytest.raises(TypeError, match="y must be a number"):
        f.learn_one(True)
    with pytest.raises(ValueError, match="x must have 0 features"):
        f.learn_one(1.0, [1.0])
    with pytest.raises(ValueError, match="horizon"):
        f.forecast(0)
    same(before, snapshot(f))


# ---------------------------------------------------------------------- features
def test_exogenous_features_help():
    # y follows a feature that is known one step ahead (a calendar-like signal)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=400).astype(float)
    y = 10 * x + rng.normal(0, 0.1, 400)
    plain = sr.evaluate(y, sr.Forecaster(hidden_size=8, seed=0))
    withx = sr.evaluate(y, sr.Forecaster(hidden_size=8, seed=0), x=[[v] for v in x])
    assert withx.mae[0] < 0.5 * plain.mae[0]


def test_feature_dicts():
    f = sr.Forecaster(hidden_size=8, seed=0)
    f.learn_one(1.0, {"a": 1, "b": 2})
    assert f.n_features == 2 and f.feature_names == ["a", "b"]
    f.learn_one(2.0, {"b": 1, "a": float("nan")})   # order free, NaN missing
    f.learn_one(3.0, {"a": 1})                       # absent key: missing
    with pytest.raises(ValueError, match="unknown feature 'c'"):
        f.learn_one(3.0, {"c": 1})
    with pytest.raises(ValueError, match="must not hold inf"):
        f.learn_one(3.0, [1.0, float("inf")])
    assert len(f.forecast(3, xs=[{"a": 1, "b": 2}, None, {"a": 0}])) == 3
    with pytest.raises(TypeError):
        f.forecast(2, xs="ab")
    with pytest.raises(ValueError, match="one feature set per forecast value"):
        f.forecast(2, xs=[None])


def test_features_fixed_by_first_call_only_on_success():
    f = sr.Forecaster(hidden_size=4)
    with pytest.raises(TypeError):
        f.learn_one(1.0, {"a": "x"})
    assert f.n_features is None and f.feature_names is None
    f.learn_one(1.0, [1, 2, 3])
    assert f.n_features == 3 and f.input_size == 5


# ---------------------------------------------------------------------- keyed streams
def test_keyed_streams_share_weights_but_not_state():
    f = sr.Forecaster(hidden_size=8, seed=0)
    for t in range(60):
        f.learn_one(math.sin(0.3 * t), key="a")
        f.learn_one(100 + 10 * math.cos(0.2 * t), key=7)
    assert f.keys() == ["a", 7] and len(f) == 2 and "a" in f
    assert f.network("a") is f.network(7) is f.net
    assert f.trainer("a") is not f.trainer(7)
    fa, f7 = f.forecast(1, key="a")[0], f.forecast(1, key=7)[0]
    assert abs(fa) < 2 and abs(f7 - 100) < 15
    assert math.isnan(f.forecast(1, key="unseen")[0])
    f.forget("a")
    assert f.keys() == [7]
    with pytest.raises(KeyError):
        f.forget("a")
    with pytest.raises(TypeError, match="hashable"):
        f.learn_one(1.0, key=[1])


def test_keyed_streams_per_key_weights():
    f = sr.Forecaster(hidden_size=8, seed=0, weights="per_key")
    for t in range(30):
        for k in range(3):
            f.learn_one(math.sin((0.1 + 0.1 * k) * t), key=k)
    nets = [f.network(k) for k in range(3)]
    assert len({id(n) for n in nets}) == 3 and f.net is None
    assert not np.array_equal(nets[0].parameters(), nets[1].parameters())


def test_per_key_equals_independent_forecasters():
    f = sr.Forecaster(hidden_size=8, seed=5, weights="per_key")
    singles = {k: sr.Forecaster(hidden_size=8, seed=5) for k in ("x", "y")}
    for t in range(40):
        for k, g in singles.items():
            v = math.sin(0.2 * t + (k == "y"))
            f.learn_one(v, key=k)
            g.learn_one(v)
    for k, g in singles.items():
        assert f.forecast(4, key=k) == g.forecast(4)


def test_memory_per_stream_reported():
    shared = sr.Forecaster(hidden_size=32, seed=0, n_features=0)
    per_key = sr.Forecaster(hidden_size=32, seed=0, n_features=0, weights="per_key")
    b_shared = shared.memory_per_stream()
    b_per_key = per_key.memory_per_stream()
    P = shared.net.parameters().nbytes
    assert 5 * P < b_shared < 50 * P        # gradient + moments + ring + scratch
    assert b_per_key > b_shared + P // 2
    with pytest.raises(RuntimeError):
        sr.Forecaster().memory_per_stream()


def test_many_streams():
    f = sr.Forecaster(hidden_size=4, k2=4, seed=0)
    for t in range(3):
        for k in range(1000):
            f.learn_one(float(k + t), key=k)
    assert len(f) == 1000
    assert all(math.isfinite(f.forecast(1, key=k)[0]) for k in (0, 500, 999))


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize("kw, exc", [
    ({"cell": "transformer"}, ValueError), ({"hidden_size": 0}, ValueError),
    ({"k1": 4, "k2": 2}, ValueError), ({"optimizer": "adam"}, TypeError),
    ({"clip_norm": -1.0}, ValueError), ({"seed": -1}, ValueError),
    ({"differencing": 1}, TypeError), ({"scale_halflife": 0}, ValueError),
    ({"scale_halflife": "x"}, TypeError), ({"n_features": -1}, ValueError),
    ({"dtype": "int8"}, TypeError), ({"weights": "global"}, ValueError),
])
def test_bad_settings(kw, exc):
    with pytest.raises(exc):
        sr.Forecaster(**kw)


def test_repr_and_float64():
    f = sr.Forecaster(dtype="float64", hidden_size=4, seed=0)
    assert "hidden_size=4" in repr(f)
    for y in sine(30):
        f.learn_one(np.float64(y))
    assert f.net.dtype == np.float64


# ---------------------------------------------------------------------- evaluate
def test_evaluate_persistence_is_exact():
    y = [1.0, 3.0, float("nan"), 2.0, 6.0, 5.0]
    res = sr.evaluate(y, sr.Forecaster(hidden_size=4, seed=0), horizon=2,
                      return_forecasts=True)
    # persistence at t (last observed before t) vs y[t], y[t+1], skipping missing values
    # (last observed, y): t=0 has no forecast; missing values are not scored
    pairs1 = [(1, 3), (3, 2), (2, 6), (6, 5)]
    pairs2 = [(3, 2), (3, 6), (2, 5)]
    assert res.n == [4, 3]
    assert res.persistence_mae[0] == pytest.approx(np.mean([abs(a - b) for a, b in pairs1]))
    assert res.persistence_mae[1] == pytest.approx(np.mean([abs(a - b) for a, b in pairs2]))
    assert res.persistence_rmse[1] == pytest.approx(
        math.sqrt(np.mean([(a - b) ** 2 for a, b in pairs2])))
    assert res.forecasts.shape == (6, 2) and np.isnan(res.forecasts[0]).all()
    assert np.array_equal(res.persistence, [np.nan, 1, 3, 3, 2, 6], equal_nan=True)
    assert "persist MAE" in str(res) and res.to_dict()["n"] == [4, 3]


def test_evaluate_grace_period_and_errors():
    y = sine(50)
    r = sr.evaluate(y, sr.Forecaster(hidden_size=4, seed=0), grace_period=10)
    assert r.n == [40]
    with pytest.raises(ValueError):
        sr.evaluate(y, sr.Forecaster(), horizon=0)
    with pytest.raises(ValueError):
        sr.evaluate(y, sr.Forecaster(), x=[[1.0]] * 3)
    with pytest.raises(ValueError):
        sr.evaluate([1.0, float("inf")], sr.Forecaster())


class MeanForecaster:
    """A river-style forecaster (learn_one(y, x=None), forecast(horizon, xs=None))."""

    def __init__(self):
        self.n, self.total = 0, 0.0

    def learn_one(self, y, x=None):
        self.n += 1
        self.total += y

    def forecast(self, horizon, xs=None):
        if not self.n:
            raise RuntimeError("no data")
        return [self.total / self.n] * horizon


def test_evaluate_foreign_forecaster():
    y = [1.0, 2.0, 3.0, 4.0]
    r = sr.evaluate(y, MeanForecaster(), horizon=1)
    assert r.n == [3]
    assert r.mae[0] == pytest.approx(np.mean([1.0, 1.5, 2.0]))
    # a missing value: the model learns its own forecast (default) or nothing
    m = MeanForecaster()
    sr.evaluate([2.0, float("nan"), 4.0], m)
    assert (m.n, m.total) == (3, 8.0)
    m = MeanForecaster()
    sr.evaluate([2.0, float("nan"), 4.0], m, impute_missing=False)
    assert (m.n, m.total) == (2, 6.0)


def test_sunspots_dataset_and_model_beats_persistence():
    years, values = load_sunspots()
    assert len(values) == len(years) == 309 and years[0] == 1700
    f = sr.Forecaster(seed=0)
    r = sr.evaluate(values, f)
    assert r.mae[0] < 0.85 * r.persistence_mae[0]


def test_real_airline_passengers_raw_values():
    # river's AirlinePassengers (raw values 104-622): must not diverge, and beats persistence
    datasets = pytest.importorskip("river.datasets")
    y = [v for _, v in datasets.AirlinePassengers()]
    f = sr.Forecaster(seed=0)
    r = sr.evaluate(y, f, horizon=3)
    assert np.all(np.isfinite(f.net.parameters())) and f.trainer().skipped_updates == 0
    assert r.mae[0] < r.persistence_mae[0] and r.mae[2] < r.persistence_mae[2]


# ---------------------------------------------------------------------- all or nothing
def _trained(n=30, **kw):
    kw.setdefault("hidden_size", 8)
    kw.setdefault("seed", 0)
    f = sr.Forecaster(**kw)
    for t, y in enumerate(sine(n, 2.0, 5.0)):
        if f.n_features:
            f.learn_one(y, [t % 3] * f.n_features)
        else:
            f.learn_one(y)
    return f


def _refuse(obj, name, after=0):
    """Make obj.name raise RuntimeError (as when another thread uses the trainer) on its
    call number ``after`` + 1, running the real call before raising when after < 0."""
    real = getattr(obj, name)
    calls = [0]

    def refused(*a, **k):
        calls[0] += 1
        if calls[0] > after:
            raise RuntimeError("this state is being stepped by another thread")
        return real(*a, **k)
    setattr(obj, name, refused)
    return lambda: setattr(obj, name, real)


@pytest.mark.parametrize("which", ["observe", "advance"])
@pytest.mark.parametrize("n_features", [0, 1])
@pytest.mark.parametrize("weights", ["shared", "per_key"])
def test_refused_learn_one_changes_nothing(which, n_features, weights):
    # the trainer refuses (another thread) after the other half of the step already ran:
    # the stream, weights, moments and pending prediction are exactly as before
    f = _trained(n_features=n_features, k1=1, weights=weights)
    twin = sr.loads(sr.dumps(f))
    before = sr.dumps(f)
    x = [1.0] * n_features if n_features else None
    undo = _refuse(f.trainer(), which)
    with pytest.raises(RuntimeError, match="another thread"):
        f.learn_one(0.5, x)
    assert sr.dumps(f) == before
    with pytest.raises(RuntimeError):
        f.learn_many([0.5, 0.7], None if x is None else [x, x])
    assert sr.dumps(f) == before
    undo()
    # and it continues exactly like a forecaster that never saw the refused calls
    for y in [0.5, 0.7, 0.1]:
        f.learn_one(y, x)
        twin.learn_one(y, x)
    assert sr.dumps(f) == sr.dumps(twin)
    assert f.forecast(3, None if x is None else [x] * 3) == \
        twin.forecast(3, None if x is None else [x] * 3)


def test_refused_learn_one_on_a_new_stream_adds_nothing():
    f = sr.Forecaster(hidden_size=4, seed=0)
    real = sr.OnlineTrainer.advance

    def refused(self, u):
        raise RuntimeError("refused")
    sr.OnlineTrainer.advance = refused
    try:
        with pytest.raises(RuntimeError):
            f.learn_one(1.0, key="a")
    finally:
        sr.OnlineTrainer.advance = real
    assert f.keys() == [] and f.n_features is None and f.net is None
    f.learn_one(1.0, [2.0, 3.0], key="a")
    assert f.n_features == 2


def test_learn_many_checks_every_value_first():
    f = _trained()
    before = sr.dumps(f)
    with pytest.raises(ValueError, match=r"ys\[2\] must be finite.*inf"):
        f.learn_many([1.0, 2.0, float("inf")])
    with pytest.raises(TypeError, match=r"ys\[1\] must be a number.*'a'"):
        f.learn_many([1.0, "a"])
    with pytest.raises(ValueError, match=r"ys\[0\] must have magnitude"):
        f.learn_many([1e200])
    with pytest.raises(ValueError, match=r"xs\[1\] must have 0 features"):
        f.learn_many([1.0, 2.0], [None, [1.0]])
    with pytest.raises(ValueError, match="one feature set per value"):
        f.learn_many([1.0, 2.0], [None])
    with pytest.raises(TypeError, match="ys must be a sequence"):
        f.learn_many(3.0)
    with pytest.raises(TypeError, match="key must be hashable"):
        f.learn_many([1.0], key=[1])
    assert sr.dumps(f) == before
    g = sr.Forecaster(hidden_size=4, seed=0)
    with pytest.raises(ValueError, match=r"xs\[2\] must have 2 features, got 3"):
        g.learn_many([1.0, 2.0, 3.0], [[1, 2], [1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"xs\[1\] has an unknown feature 'c'"):
        g.learn_many([1.0, 2.0], [{"a": 1, "b": 2}, {"c": 1}])
    assert g.keys() == [] and g.n_features is None and g.feature_names is None


def test_failing_first_learn_one_fixes_nothing():
    f = sr.Forecaster(hidden_size=4, seed=0)
    with pytest.raises(TypeError, match="key must be hashable"):
        f.learn_one(1.0, [1.0, 2.0], key={"a": 1})
    assert f.n_features is None and f.net is None and len(f) == 0
    # a network that cannot be built (absurd memory) leaves n_features open too
    g = sr.Forecaster(hidden_size=1024, seed=0)
    with pytest.raises(ValueError, match="GiB per stream"):
        g.learn_one(1.0, np.zeros(100_000))
    assert g.n_features is None and g.net is None and len(g) == 0
    g.learn_one(1.0, [1.0])
    assert g.n_features == 1


@pytest.mark.parametrize("kw", [{"hidden_size": 2**19}, {"num_layers": 2**20},
                                {"n_features": 10**7}, {"n_features": 2**21},
                                {"hidden_size": 2048, "k2": 2**17}])
def test_absurd_sizes_refused_at_construction(kw):
    with pytest.raises(ValueError, match="hidden_size|n_features|num_layers"):
        sr.Forecaster(**kw)


SETTINGS = ["cell", "hidden_size", "num_layers", "k1", "k2", "optimizer", "clip_norm", "seed",
            "differencing", "scale", "scale_halflife", "n_features", "feature_names", "dtype",
            "weights", "net"]


@pytest.mark.parametrize("name", SETTINGS)
def test_settings_are_read_only(name):
    f = _trained(10)
    before = sr.dumps(f)
    value = getattr(f, name)
    with pytest.raises(AttributeError):
        setattr(f, name, 64 if name != "optimizer" else sr.SGD(lr=1.0))
    assert getattr(f, name) is value or getattr(f, name) == value
    assert sr.dumps(f) == before
    assert sr.loads(before).forecast(2) == f.forecast(2)


BAD_CALLS = [
    ("learn_one", ("a",), {}, TypeError, "y must be a number"),
    ("learn_one", ([1.0],), {}, TypeError, "y must be a number"),
    ("learn_one", (True,), {}, TypeError, "y must be a number"),
    ("learn_one", (complex(1, 1),), {}, TypeError, "y must be a number"),
    ("learn_one", (float("inf"),), {}, ValueError, "y must be finite"),
    ("learn_one", (-1e200,), {}, ValueError, "y must have magnitude"),
    ("learn_one", (1.0, [1.0, 2.0]), {}, ValueError, "x must have 1 features, got 2"),
    ("learn_one", (1.0, [float("inf")]), {}, ValueError, "x must not hold inf"),
    ("learn_one", (1.0, [1e300]), {}, ValueError, "x must have magnitudes"),
    ("learn_one", (1.0, "ab"), {}, TypeError, "x must be None, a mapping"),
    ("learn_one", (1.0, [[1.0]]), {}, ValueError, "x must be 1-D"),
    ("learn_one", (1.0, [object()]), {}, TypeError, "x must be None, a mapping"),
    ("learn_one", (1.0, {"z": 1.0}), {}, TypeError, "came as sequences"),
    ("learn_one", (1.0, [1.0]), {"key": [1]}, TypeError, "key must be hashable"),
    ("learn_many", ([1.0, float("nan"), float("inf")],), {}, ValueError, r"ys\[2\]"),
    ("learn_many", ([1.0], [[1.0, 2.0]]), {}, ValueError, r"xs\[0\] must have 1"),
    ("forecast", (0,), {}, ValueError, "horizon must be an integer >= 1"),
    ("forecast", (1.5,), {}, TypeError, "horizon must be an integer"),
    ("forecast", (True,), {}, TypeError, "horizon must be an integer"),
    ("forecast", ("2",), {}, TypeError, "horizon must be an integer"),
    ("forecast", (2**40,), {}, ValueError, "horizon must be an integer <="),
    ("forecast", (2, [[1.0]]), {}, ValueError, "one feature set per forecast value"),
    ("forecast", (1, [[1.0, 2.0]]), {}, ValueError, r"xs\[0\] must have 1 features"),
    ("forecast", (1, [[float("inf")]]), {}, ValueError, r"xs\[0\] must not hold inf"),
    ("forecast", (1, "a"), {}, TypeError, "xs must be None or a sequence"),
    ("forecast", (1,), {"key": {}}, TypeError, "key must be hashable"),
    ("network", (), {"key": []}, TypeError, "key must be hashable"),
    ("trainer", (), {"key": []}, TypeError, "key must be hashable"),
    ("stats", (), {"key": []}, TypeError, "key must be hashable"),
    ("forget", (), {"key": []}, TypeError, "key must be hashable"),
]


@pytest.mark.parametrize("method, args, kw, exc, match", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_every_entry_point_refuses_bad_input_and_changes_nothing(method, args, kw, exc,
                                                                 match):
    f = _trained(20, n_features=1)
    before = sr.dumps(f)
    with pytest.raises(exc, match=match):
        getattr(f, method)(*args, **kw)
    assert sr.dumps(f) == before


# ---------------------------------------------------------------------- season, combination
def test_untrained_is_persistence_or_seasonal_naive():
    f = sr.Forecaster(seed=0)
    f.learn_one(10)
    f.learn_one(12)
    assert f.forecast(3) == [12.0, 12.0, 12.0]          # not the drift 14, 16, 18
    assert f.expert_weights(1) == {"network": 0.0, "persistence": 1.0, "ses": 0.0}
    g = sr.Forecaster(seed=0, season=4)
    for y in [5.0, 1.0, 2.0, 3.0]:
        g.learn_one(y)
    assert g.forecast(6) == [5.0, 1.0, 2.0, 3.0, 5.0, 1.0]
    assert g.expert_weights(4)["seasonal_naive"] == 1.0
    # before a full season: persistence
    h = sr.Forecaster(seed=0, season=4)
    h.learn_one(7.0)
    h.learn_one(9.0)
    assert h.forecast(2) == [9.0, 9.0]


def test_season_input_is_the_change_one_season_back():
    m = 5
    f = sr.Forecaster(hidden_size=4, seed=0, season=m, dtype="float64")
    rng = np.random.default_rng(0)
    ys = list(rng.normal(size=40))
    for y in ys:
        f.learn_one(y)
    assert f.input_size == 3 and f.net.input_size == 3
    s = f._streams[None]
    # the step predicting y[t+1] reads the change y[t+1-m] - y[t-m], scaled like changes
    d = ys[-m] - ys[-m - 1]
    diffs = np.diff(ys)
    assert s.sd.mean == pytest.approx(diffs.mean(), rel=1e-12)
    assert s.u[2] == pytest.approx((d - diffs.mean()) / diffs.std(), rel=1e-9)
    g = sr.Forecaster(hidden_size=4, seed=0, season=m, differencing=False, dtype="float64")
    for y in ys:
        g.learn_one(y)
    assert g.input_size == 2
    t = g._streams[None]
    assert t.u[1] == pytest.approx((ys[-m] - np.mean(ys)) / np.std(ys), rel=1e-9)


def test_season_helps_the_network():
    # a repeating pattern of period 7 with noise: the network with the season input
    # forecasts one step ahead better than without it
    rng = np.random.default_rng(1)
    pattern = rng.normal(0, 3, 7)
    ys = [pattern[t % 7] + rng.normal(0, 0.3) for t in range(700)]

    def net_mae(season):
        f = sr.Forecaster(hidden_size=16, seed=0, season=season, max_horizon=1)
        err = []
        for t, y in enumerate(ys):
            if t > 100:
                err.append(abs(f.expert_forecasts(1)["network"][0] - y))
            f.learn_one(y)
        return np.mean(err)
    assert net_mae(7) < 0.75 * net_mae(None)       # measured: 0.63


def test_ml_poly_weight_goes_to_the_exact_expert():
    from streamrnn import _experts
    rng = np.random.default_rng(0)
    # the forecaster's own path: combine, then score (one horizon, and the same stream
    # duplicated as two horizons through the vectorised path: identical numbers)
    W = _experts.WINDOW
    state1 = [np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, W)), np.zeros(1, np.int64),
              np.full(1, 0.1)]
    state2 = [np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, W)), np.zeros(2, np.int64),
              np.full(2, 0.1)]
    state3 = [np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, W)), np.zeros(1, np.int64),
              np.full(1, 0.1)]
    for t in range(2000):
        y = rng.normal()
        f = np.array([y + rng.normal(0, 1), y, y + 0.5 + rng.normal(0, 0.1)])
        rows = []
        for R, S, scores, n, alpha in (state1, state2):
            F = np.tile(f, (R.shape[0], 1))
            yhat = _experts.combine(R, S, F, 0)
            rad = _experts.radii(scores, n, alpha)
            row = np.column_stack([F, yhat, rad])
            rows.append(row)
            ok = np.ones(R.shape[0], dtype=bool)
            _experts.score(R, S, scores, n, alpha, row, ok, ok, y, 0.1)
        assert np.array_equal(rows[1], np.tile(rows[0], (2, 1)))
        # the forecaster's one-horizon fast path issues no radius (NaN): scoring then
        # tests the miss against the radius the row would have had, the same state
        row3 = rows[0].copy()
        row3[0, -1] = np.nan
        R, S, scores, n, alpha = state3
        _experts.score(R, S, scores, n, alpha, row3, ok[:1], ok[:1], y, 0.1)
        assert all(np.array_equal(a, b) for a, b in zip(state1, state3))
    for a, b in zip(state1, state2):
        assert np.array_equal(b, np.concatenate([a, a]))
    assert _experts.weights(state1[0][0], state1[1][0], 0)[1] > 0.99
    assert not np.array_equal(state1[4], np.full(1, 0.1))     # alpha did adapt


def test_outside_is_the_radius_test():
    from streamrnn import _experts
    rng = np.random.default_rng(5)
    W = _experts.WINDOW
    for _ in range(3000):
        scores = rng.exponential(1.0, W).round(rng.integers(0, 3))   # with ties
        n = int(rng.integers(0, 2 * W))
        alpha = float(rng.choice([-0.2, 0.0, 0.01, 0.1, 0.5, 0.99, 1.0, 1.5]))
        err = float(rng.choice([0.0, scores[rng.integers(0, W)], rng.exponential(1.0)]))
        assert _experts.outside(scores, n, alpha, err) == \
            (err > _experts.radius(scores, n, alpha))


def test_conformal_step_shrinks_beyond_gamma_horizon():
    # every horizon misses once: alpha of horizon k moves by GAMMA * (target - 1) up to
    # GAMMA_HORIZON and by GAMMA * GAMMA_HORIZON / k beyond (late feedback)
    from streamrnn import _experts
    K, E, W = 30, 2, _experts.WINDOW
    R, S = np.zeros((K, E)), np.zeros((K, E))
    scores, n = np.ones((K, W)), np.full(K, W, dtype=np.int64)
    alpha = np.full(K, 0.1)
    rows = np.zeros((K, E + 2))
    rows[:, E + 1] = 0.5                       # the issued radius; |y - 0| = 1 > 0.5
    ok = np.ones(K, dtype=bool)
    _experts.score(R, S, scores, n, alpha, rows, ok, ok, 1.0, 0.1)
    k = np.arange(1, K + 1)
    step = _experts.GAMMA * np.minimum(1.0, _experts.GAMMA_HORIZON / k)
    assert np.allclose(alpha, 0.1 + step * (0.1 - 1.0), rtol=0, atol=1e-15)
    assert alpha[0] == alpha[11] < alpha[12] < alpha[29]


def test_conformal_miscoverage_is_bounded_below():
    # anti-windup: a long run of misses takes the miscoverage of horizon k down to
    # -ALPHA_FLOOR * max(1, k / GAMMA_HORIZON)**2 and no further (not to -1, from where its
    # intervals would stay (-inf, inf) for hundreds of steps); the one-horizon path too
    from streamrnn import _experts
    K, E, W = 30, 2, _experts.WINDOW
    R, S = np.zeros((K, E)), np.zeros((K, E))
    scores, n = np.ones((K, W)), np.full(K, W, dtype=np.int64)
    alpha = np.full(K, 0.1)
    rows = np.zeros((K, E + 2))
    rows[:, E + 1] = 0.5                        # every issued radius is missed
    ok = np.ones(K, dtype=bool)
    for _ in range(500):
        _experts.score(R, S, scores, n, alpha, rows, ok, ok, 1.0, 0.1)
    k = np.arange(1, K + 1)
    floor = -_experts.ALPHA_FLOOR * np.maximum(1.0, k / _experts.GAMMA_HORIZON) ** 2
    assert np.allclose(alpha, floor, rtol=0, atol=1e-15)
    assert floor[0] == -0.05 and floor[29] == pytest.approx(-0.05 * 2.5 ** 2)
    a1 = np.array([0.1])
    for _ in range(500):
        _experts.score(R[:1], S[:1], scores[:1], n[:1], a1, rows[:1], ok[:1], ok[:1], 1.0,
                       0.1)
    assert a1[0] == -_experts.ALPHA_FLOOR
    # from the floor, 10 covered forecasts bring horizon 1 back above 0 (finite intervals)
    rows[:, E + 1] = 2.0
    for _ in range(11):
        _experts.score(R[:1], S[:1], scores[:1], n[:1], a1, rows[:1], ok[:1], ok[:1], 1.0,
                       0.1)
    assert a1[0] > 0.0
    assert math.isfinite(_experts.radius(scores[0], int(n[0]), float(a1[0])))


def test_combine_few_horizons_equals_the_array_path():
    from streamrnn import _experts
    rng = np.random.default_rng(6)
    for K in (1, 3, _experts.SMALL // 6):
        F = rng.normal(size=(K, 6))
        F[rng.random((K, 6)) < 0.2] = np.nan
        R = rng.normal(size=(K, 6))
        S = rng.exponential(size=(K, 6))
        R[0] = -1.0                                  # a row that falls back to the prior
        t = _experts.SMALL // 6 + 1                      # > SMALL forecasts: array path
        big = _experts.combine(np.tile(R, (t, 1)), np.tile(S, (t, 1)), np.tile(F, (t, 1)), 2)
        small = _experts.combine(R, S, F, 2)
        assert big.shape == (t * K,) and np.array_equal(big[:K], small, equal_nan=True)
        assert small[0] == F[0, 2] or (math.isnan(small[0]) and math.isnan(F[0, 2]))


def test_multiplicative_holt_winters_expert():
    # seasonal amplitude proportional to the level (airline-like): the multiplicative
    # Holt-Winters forecasts one step ahead better than both additive ones
    m = 12
    pat = [1.0 + 0.3 * math.sin(2 * math.pi * i / m) for i in range(m)]
    ys = [(100 + 2 * t) * pat[t % m] for t in range(240)]
    f = sr.Forecaster(hidden_size=4, seed=0, season=m, max_horizon=1)
    hw = ("holt_winters_0", "holt_winters_1", "holt_winters_2")
    assert f.expert_names[4:7] == hw
    err = {n: [] for n in hw}
    for t, y in enumerate(ys):
        if t >= 3 * m:
            fc = f.expert_forecasts(1)
            for n in err:
                err[n].append(abs(fc[n][0] - y))
        f.learn_one(y)
    mae = {n: float(np.mean(v)) for n, v in err.items()}
    assert mae["holt_winters_2"] < 0.5 * min(mae["holt_winters_0"], mae["holt_winters_1"]), mae


def test_multiplicative_holt_winters_sits_out_non_positive_values(tmp_path):
    # values <= 0: the multiplicative expert restarts and gives no forecast (NaN), the
    # others go on; nothing non-finite is stored, so the forecaster saves and resumes
    m = 4
    f = sr.Forecaster(hidden_size=4, seed=0, season=m)
    for t in range(40):
        f.learn_one([3.0, -1.0, 2.0, 0.5][t % m] + 0.01 * t)
    fc = f.expert_forecasts(m)
    assert all(math.isnan(v) for v in fc["holt_winters_2"])
    assert all(math.isfinite(v) for v in fc["holt_winters_1"])
    assert all(math.isfinite(v) for v in f.forecast(m))
    g = sr.loads(sr.dumps(f))
    for t in range(40, 60):
        f.learn_one(5.0 + t % m)         # positive again: it restarts and takes part
        g.learn_one(5.0 + t % m)
    assert sr.dumps(f) == sr.dumps(g)
    assert all(math.isfinite(v) for v in f.expert_forecasts(m)["holt_winters_2"])


def test_seasonal_naive_2_and_seasonal_drift_forecasts():
    # the two experts' formulas, recomputed from the raw values, at horizons 1..3 seasons
    # (beyond max_horizon the forecasts are made in forecast(), not kept)
    m = 4
    rng = np.random.default_rng(7)
    ys = [float(v) for v in rng.normal(size=23)]
    f = sr.Forecaster(hidden_size=4, seed=0, season=m)
    for y in ys:
        f.learn_one(y)
    fc = f.expert_forecasts(3 * m)
    T = len(ys)
    for k in range(1, 3 * m + 1):
        c = -(-k // m)                       # seasons back to the value of the same position
        one = ys[T - 1 + k - c * m]
        two = ys[T - 1 + k - c * m - m]
        assert fc["seasonal_naive"][k - 1] == one
        assert fc["seasonal_naive_2"][k - 1] == pytest.approx(0.5 * (one + two), abs=1e-15)
        drift = one + c * (ys[-1] - ys[-1 - m])
        assert fc["seasonal_drift"][k - 1] == pytest.approx(drift, abs=1e-15)


def test_new_seasonal_experts_wait_for_their_history():
    # an expert takes no part (NaN) at a horizon while a value it needs was not seen:
    # seasonal_drift needs the value one season before the newest, seasonal_naive_2 the
    # value two seasons before the target; the combination forecasts all along
    m = 4
    f = sr.Forecaster(hidden_size=4, seed=0, season=m)
    for t in range(m):
        f.learn_one(float(t % 3))
    assert all(math.isnan(v) for v in f.expert_forecasts(m)["seasonal_drift"])
    f.learn_one(5.0)                            # m + 1 values: y[0] is one season back
    fc = f.expert_forecasts(m)
    assert all(math.isfinite(v) for v in fc["seasonal_drift"])
    # the target of horizon k is y[m + k]; two seasons back, y[k - m]: seen only for k = m
    assert all(math.isnan(v) for v in fc["seasonal_naive_2"][:m - 1])
    assert math.isfinite(fc["seasonal_naive_2"][m - 1])
    assert all(math.isfinite(v) for v in f.forecast(m))
    for t in range(m + 1, 2 * m):
        f.learn_one(float(t % 3))
    assert all(math.isfinite(v) for v in f.expert_forecasts(m)["seasonal_naive_2"])


def test_seasonal_drift_takes_the_weight_on_a_trend_plus_season():
    # y = linear trend + a repeating pattern: the seasonal random walk with drift is exact
    # at every horizon, the seasonal naive forecasts lag by the trend; the combination
    # puts (almost) all weight on the exact experts and forecasts the next two seasons
    m = 5
    pat = [3.0, -1.0, 4.0, 1.0, -5.0]
    f = sr.Forecaster(hidden_size=4, seed=0, season=m)
    for t in range(400):
        f.learn_one(0.7 * t + pat[t % m])
    w = f.expert_weights(m)
    assert w["seasonal_drift"] > 0.99, w
    assert w["seasonal_naive"] + w["seasonal_naive_2"] + w["persistence"] < 1e-9, w
    future = [0.7 * t + pat[t % m] for t in range(400, 400 + 2 * m)]
    # exact experts (seasonal drift, additive Holt-Winters) make up the forecast; the
    # network may keep a weight of order 1e-5 at short horizons (its regret depends on its
    # own rounding: AVX-512, AVX2 or the sanitizer build's plain kernels), a network forecast
    # ~0.4 off then moves the combination by ~1e-5; a lagging expert with a real weight
    # moves it by ~0.7 * weight per season of lag
    assert f.forecast(2 * m) == pytest.approx(future, abs=1e-3)


def test_seasonal_naive_best_finds_a_longer_cycle():
    # season m = 4 given, but the values repeat every 3 seasons (like a week of days):
    # the expert forecasts the value 3 seasons back, exactly, and takes the weight
    m, cyc = 4, 12
    rng = np.random.default_rng(5)
    pattern = [float(v) for v in rng.normal(size=cyc) * 10]
    f = sr.Forecaster(hidden_size=4, seed=0, season=m)
    ys = [pattern[t % cyc] for t in range(400)]
    for y in ys:
        f.learn_one(y)
    fc = f.expert_forecasts(2 * m)
    assert fc["seasonal_naive_best"] == [pattern[t % cyc] for t in range(400, 400 + 2 * m)]
    assert f.expert_weights(m)["seasonal_naive_best"] > 0.99
    assert f.forecast(2 * m) == pytest.approx(fc["seasonal_naive_best"], abs=1e-9)


def test_best_multiple_is_its_definition():
    # _best_multiple (a strided view) against its definition, slice by slice: the c in
    # 1..7 with the smallest mean |y[s] - y[s - c m]| over the newest 7 seasons, taken
    # when below half the error of c = 1
    from streamrnn.forecast import _best_multiple
    rng = np.random.default_rng(11)
    chosen = set()
    for m in (2, 3, 5, 12):
        for rep in range(40):
            cyc = int(rng.integers(1, 8)) * m
            pat = rng.normal(size=cyc) * 10
            hist = np.array([pat[t % cyc] for t in range(14 * m + 1)])
            hist += rng.normal(size=hist.shape[0]) * rng.uniform(0, 3)
            n = 7 * m
            errs = [np.mean(np.abs(hist[-n:] - hist[len(hist) - n - c * m:len(hist) - c * m]))
                    for c in range(1, 8)]
            best = int(np.argmin(errs)) + 1
            want = best if best > 1 and errs[best - 1] < 0.5 * errs[0] else 0
            assert _best_multiple(hist, m) == want
            chosen.add(want)
            hist[3] = np.nan                  # a value not seen: no choice
            assert _best_multiple(hist, m) == 0
    assert 0 in chosen and len(chosen) >= 4


def test_seasonal_naive_best_sits_out_without_a_longer_cycle():
    # (a) before (7 + 7) seasons of values it takes no part; (b) on a stream that repeats
    # every season no multiple is better than one season back: it takes no part either;
    # (c) noise around a 2-season cycle: two seasons back is the better one
    m = 3
    f = sr.Forecaster(hidden_size=4, seed=0, season=m)
    for t in range(14 * m - 1):
        f.learn_one(float(t % m))
    assert all(math.isnan(v) for v in f.expert_forecasts(m)["seasonal_naive_best"])
    for t in range(14 * m - 1, 20 * m):
        f.learn_one(float(t % m))
    assert all(math.isnan(v) for v in f.expert_forecasts(m)["seasonal_naive_best"])
    rng = np.random.default_rng(1)
    g = sr.Forecaster(hidden_size=4, seed=0, season=m)
    ys = [(5.0 if (t // m) % 2 else -5.0) + 0.1 * rng.normal() for t in range(20 * m)]
    for y in ys:
        g.learn_one(y)
    assert g.expert_forecasts(m)["seasonal_naive_best"] == ys[-2 * m:-m]


def test_seasons_beyond_the_multiple_limit_keep_two_seasons_of_history():
    # a season longer than MULTIPLE_MAX_SEASON: the history holds two seasons + 1 values
    # (not 14), seasonal_naive_best takes no part, the other seasonal experts do
    from streamrnn import forecast as fmod
    m = fmod.MULTIPLE_MAX_SEASON + 1
    f = sr.Forecaster(hidden_size=4, seed=0, season=m, max_horizon=2)
    ys = [float(t % m) + 0.5 * (t // m) for t in range(2 * m + 5)]
    for y in ys:
        f.learn_one(y)
    assert f._streams[None].hist.shape == (2 * m + 1,)
    fc = f.expert_forecasts(2)
    assert all(math.isnan(v) for v in fc["seasonal_naive_best"])
    T = len(ys)
    assert fc["seasonal_naive_2"] == [0.5 * (ys[T - m + k] + ys[T - 2 * m + k])
                                      for k in range(2)]
    assert sr.dumps(sr.loads(sr.dumps(f))) == sr.dumps(f)
    small = sr.Forecaster(hidden_size=4, seed=0, season=fmod.MULTIPLE_MAX_SEASON)
    small.learn_one(1.0)
    assert small._streams[None].hist.shape == (14 * fmod.MULTIPLE_MAX_SEASON + 1,)


def test_combination_weights_on_an_exactly_seasonal_stream():
    # a pattern that repeats exactly: the seasonal experts (seasonal naive, Holt-Winters)
    # are exact, persistence, SES and the network are not: they lose all weight
    pattern = [3.0, -1.0, 4.0, 1.0, -5.0, 9.0]
    f = sr.Forecaster(hidden_size=8, seed=0, season=6)
    for t in range(600):
        f.learn_one(pattern[t % 6])
    for h in (1, 3, 6):
        w = f.expert_weights(h)
        assert w["persistence"] + w["ses"] + w["network"] < 1e-3, w
        assert sum(w.values()) == pytest.approx(1.0)
    assert f.forecast(6) == pytest.approx(pattern, abs=1e-6)
    # deterministic: the same seed gives the same weights
    g = sr.Forecaster(hidden_size=8, seed=0, season=6)
    for t in range(600):
        g.learn_one(pattern[t % 6])
    assert g.expert_weights(3) == f.expert_weights(3)


@pytest.mark.parametrize("level", [0.9, 0.8])
def test_interval_coverage_with_known_noise(level):
    # y = seasonal signal + iid N(0, 1): the conformal intervals cover close to the level
    # at every tracked horizon, and their width is near the Gaussian one for h=1
    rng = np.random.default_rng(3)
    m = 10
    ys = [5 * math.sin(2 * math.pi * t / m) + rng.normal() for t in range(3000)]
    f = sr.Forecaster(hidden_size=8, seed=0, season=m, interval_level=level)
    res = sr.evaluate(ys, f, horizon=m, grace_period=300, interval_level=level)
    for k in (0, m // 2 - 1, m - 1):
        assert abs(res.coverage[k] - level) < 0.03, (k, res.coverage)
    z = {0.9: 1.645, 0.8: 1.2816}[level]
    assert res.interval_width[0] == pytest.approx(2 * z, rel=0.25)


def test_intervals_before_enough_errors_are_infinite():
    f = sr.Forecaster(seed=0)
    assert all(math.isnan(a) and math.isnan(b) for a, b in f.forecast_interval(2))
    f.learn_one(1.0)
    f.learn_one(2.0)
    assert f.forecast_interval(1) == [(-math.inf, math.inf)]
    for t in range(60):
        f.learn_one(float(t % 3))
    (lo, hi), = f.forecast_interval(1)
    c = f.forecast(1)[0]
    assert lo < c < hi and math.isfinite(hi - lo)
    # a higher level is wider
    (lo2, hi2), = f.forecast_interval(1, level=0.95)
    assert hi2 - lo2 >= hi - lo


@pytest.mark.parametrize("weights", ["shared", "per_key"])
@pytest.mark.parametrize("n_features", [0, 1])
def test_seasonal_forecaster_resumes_bit_for_bit(weights, n_features, tmp_path):
    rng = np.random.default_rng(0)
    m = 6

    def feed(f, t0, t1):
        for t in range(t0, t1):
            for key in ("a", 7):
                y = 3 * math.sin(2 * math.pi * t / m) + rng.normal(0, 0.2) + (key == 7)
                x = [float(t % 3)] if n_features else None
                f.learn_one(y if t % 17 else None, x, key=key)

    f = sr.Forecaster(hidden_size=8, seed=1, season=m, weights=weights, dtype="float64")
    feed(f, 0, 150)
    sr.save(f, tmp_path / "f.srnn")
    g = sr.load(tmp_path / "f.srnn")
    assert g.season == m and g.max_horizon == m
    state = rng.bit_generator.state
    feed(f, 150, 200)
    rng.bit_generator.state = state
    feed(g, 150, 200)
    assert sr.dumps(f) == sr.dumps(g)
    xs = [[1.0]] * 9 if n_features else None
    for key in ("a", 7):
        assert f.forecast(9, xs, key=key) == g.forecast(9, xs, key=key)
        assert f.forecast_interval(9, 0.9, xs, key=key) == \
            g.forecast_interval(9, 0.9, xs, key=key)
        assert f.expert_weights(4, key=key) == g.expert_weights(4, key=key)
    # keys have their own combination weights
    assert f.expert_weights(1, key="a") != f.expert_weights(1, key=7)


@pytest.mark.parametrize("weights", ["shared", "per_key"])
def test_resumes_bit_for_bit_with_every_seasonal_expert_active(weights, tmp_path):
    # a 3-season cycle with noise: seasonal_naive_best forecasts (the value 3 seasons back)
    # before the save and after; the saved and the live forecaster continue identically
    m, cyc = 4, 12
    rng = np.random.default_rng(2)
    pattern = rng.normal(size=cyc) * 5 + 20

    def feed(f, t0, t1):
        for t in range(t0, t1):
            for key in ("a", "b"):
                f.learn_one(float(pattern[t % cyc] + rng.normal(0, 0.1)), key=key)

    f = sr.Forecaster(hidden_size=6, seed=2, season=m, weights=weights, dtype="float64")
    feed(f, 0, 120)
    for key in ("a", "b"):
        fc = f.expert_forecasts(m, key=key)
        assert all(math.isfinite(v) for n in f.expert_names for v in fc[n]), fc
    sr.save(f, tmp_path / "f.srnn")
    g = sr.load(tmp_path / "f.srnn")
    state = rng.bit_generator.state
    feed(f, 120, 160)
    rng.bit_generator.state = state
    feed(g, 120, 160)
    assert sr.dumps(f) == sr.dumps(g)
    for key in ("a", "b"):
        assert f.forecast(2 * m, key=key) == g.forecast(2 * m, key=key)
        assert f.forecast_interval(m, key=key) == g.forecast_interval(m, key=key)
        assert f.expert_weights(m, key=key) == g.expert_weights(m, key=key)
        assert f.expert_weights(m, key=key)["seasonal_naive_best"] > 0.5


def test_memory_per_stream_counts_the_season_state():
    plain = sr.Forecaster(hidden_size=8, n_features=0).memory_per_stream()
    seasonal = sr.Forecaster(hidden_size=8, n_features=0, season=24).memory_per_stream()
    # kept forecasts (24 x 24 x 8 float64) and conformal scores (24 x 200 float64) at least
    assert seasonal - plain >= 8 * (24 * 24 * 8 + 24 * 200)


@pytest.mark.parametrize("kw, exc, match", [
    ({"season": 1}, ValueError, "season must be an integer >= 2"),
    ({"season": 2.5}, TypeError, "season"),
    ({"season": 10**9}, ValueError, "season must be an integer <="),
    ({"max_horizon": 0}, ValueError, "max_horizon"),
    ({"max_horizon": 10**6}, ValueError, "max_horizon"),
    ({"interval_level": 1.0}, ValueError, "interval_level"),
    ({"interval_level": "0.9"}, TypeError, "interval_level"),
])
def test_bad_season_settings(kw, exc, match):
    with pytest.raises(exc, match=match):
        sr.Forecaster(**kw)


@pytest.mark.parametrize("call, exc, match", [
    (lambda f: f.forecast_interval(2, level=1.5), ValueError, "level must be in"),
    (lambda f: f.forecast_interval(2, level=True), TypeError, "level must be a number"),
    (lambda f: f.forecast_interval(0), ValueError, "horizon"),
    (lambda f: f.forecast_interval(1, key=[]), TypeError, "key must be hashable"),
    (lambda f: f.expert_weights(0), ValueError, "horizon"),
    (lambda f: f.expert_weights(1, key="nope"), KeyError, "no stream"),
    (lambda f: f.expert_forecasts(2, xs=[[1.0]]), ValueError, "one feature set"),
    (lambda f: f.expert_forecasts(1, key={}), TypeError, "key must be hashable"),
])
def test_new_entry_points_refuse_bad_input(call, exc, match):
    f = _trained(30, season=4)
    before = sr.dumps(f)
    with pytest.raises(exc, match=match):
        call(f)
    assert sr.dumps(f) == before


@pytest.mark.parametrize("which", ["observe", "advance"])
def test_refused_learn_one_with_season_changes_nothing(which):
    f = _trained(60, season=5)
    before = sr.dumps(f)
    undo = _refuse(f.trainer(), which)
    with pytest.raises(RuntimeError):
        f.learn_one(0.5)
    undo()
    assert sr.dumps(f) == before


def test_cli_season_option(tmp_path, capsys):
    from streamrnn.cli import main
    path = tmp_path / "s.csv"
    path.write_text("v\n" + "".join(f"{[1, 2, 3, 4][t % 4]}\n" for t in range(9)))
    assert main(["forecast", str(path), "--column", "v", "--season", "4", "-H", "3"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split(",")
    assert [float(v) for v in last[-3:]] == [2.0, 3.0, 4.0]     # the seasonal pattern
    assert main(["forecast", str(path), "--column", "v", "--season", "1"]) == 2


def test_evaluate_interval_level_checks():
    class Plain:
        def learn_one(self, y, x=None):
            pass

        def forecast(self, horizon, xs=None):
            return [0.0] * horizon
    with pytest.raises(TypeError, match="forecast_interval"):
        sr.evaluate([1.0, 2.0], Plain(), interval_level=0.9)
    with pytest.raises(ValueError, match="interval_level"):
        sr.evaluate([1.0, 2.0], sr.Forecaster(seed=0), interval_level=1.5)
    res = sr.evaluate([1.0, 2.0, 3.0], sr.Forecaster(seed=0))
    assert res.coverage is None and res.interval_width is None


@pytest.mark.parametrize("kw, obj, name", [
    ({"season": 4}, "net", "step"),                 # the kept rollout's steps
    ({"n_features": 1}, "trainer", "predict_one"),  # the kept forecasts with features
])
def test_refused_rollout_in_learn_one_changes_nothing(kw, obj, name):
    f = _trained(40, **kw)
    before = sr.dumps(f)
    target = f.net if obj == "net" else f.trainer()
    undo = _refuse(target, name)
    x = [1.0] if kw.get("n_features") else None
    with pytest.raises(RuntimeError):
        f.learn_one(0.5, x)
    undo()
    assert sr.dumps(f) == before
    f.learn_one(0.5, x)
    assert sr.dumps(f) != before
