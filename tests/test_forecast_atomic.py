"""Forecaster.learn_one (and learn_many's per-value step) is all or nothing, including the
state that changes after its last network call: combination regrets, conformal scores and
miscoverage, kept forecasts, simple exponential smoothing, Holt-Winters.

An exception there is possible (a MemoryError, or a KeyboardInterrupt raised by a program's
own SIGINT handler, which streamrnn's critical section does not defer). Each case wraps one
function of that tail so that its Nth call runs and then raises (the change it made is in
place, as when a signal handler raises on its return), learns values until it raises, and
checks that the forecaster is byte for byte (sr.dumps) what it was before the call, and that
the next learn_one gives what it gives on an untouched copy.
"""
from __future__ import annotations

import math

import pytest

import streamrnn as sr
from streamrnn import _experts
from streamrnn import forecast as _forecast

CONFIGS = {
    "h1": dict(),
    "h1_season": dict(season=4, max_horizon=1),
    "h3": dict(max_horizon=3),
    "h3_season": dict(max_horizon=3, season=4),
    "h1_per_key": dict(weights="per_key"),
    "h3_season_per_key": dict(max_horizon=3, season=4, weights="per_key"),
    # with features the network's kept one-step forecast is replaced when scored
    "h1_feat": dict(n_features=1),
    "h3_season_feat": dict(max_horizon=3, season=4, n_features=1),
}

# (module, function, configurations whose tail calls it)
TAIL = [
    (_experts, "_score1", ("h1", "h1_season", "h1_per_key", "h1_feat")),
    (_experts, "outside", ("h1", "h1_per_key", "h1_feat")),
    (_experts, "score", ("h3", "h3_season", "h3_season_per_key", "h3_season_feat")),
    (_experts, "combine", ("h1_season", "h3", "h3_season", "h3_season_per_key", "h1_feat",
                           "h3_season_feat")),
    (_experts, "radii", ("h1_season", "h3", "h3_season", "h3_season_per_key",
                         "h3_season_feat")),
    (_forecast, "_hw_update", ("h1_season", "h3_season", "h3_season_per_key",
                               "h3_season_feat")),
]

CASES = [(cfg, mod, name, n, exc)
         for mod, name, cfgs in TAIL for cfg in cfgs for n in (1, 2, 7)
         for exc in (KeyboardInterrupt, MemoryError)]


def series(i: int) -> float:
    return 10.0 + 3.0 * math.sin(i * math.pi / 2) + 0.1 * i + 0.5 * math.cos(1.7 * i)


def feat(cfg: str, i: int):
    return [series(i + 7)] if "n_features" in CONFIGS[cfg] else None


def make(cfg: str) -> sr.Forecaster:
    f = sr.Forecaster(hidden_size=4, k2=4, seed=3, **CONFIGS[cfg])
    for i in range(30):
        f.learn_one(series(i), feat(cfg, i), key="a")
    return f


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("cfg,mod,name,n,exc", CASES,
                         ids=[f"{c}-{nm}-{n}-{e.__name__}" for c, _, nm, n, e in CASES])
def test_learn_one_all_or_nothing(monkeypatch, cfg, mod, name, n, exc, many):
    f = make(cfg)
    real = getattr(mod, name)
    calls = [0]

    def failing(*a, **k):
        r = real(*a, **k)
        calls[0] += 1
        if calls[0] == n:
            raise exc("injected")
        return r

    monkeypatch.setattr(mod, name, failing)
    raised = None
    for i in range(30, 60):
        before = sr.dumps(f)
        try:
            if many:
                x = feat(cfg, i)
                f.learn_many([series(i)], None if x is None else [x], key="a")
            else:
                f.learn_one(series(i), feat(cfg, i), key="a")
        except exc:
            raised = i
            break
    assert raised is not None, f"{name} was not called {n} times"
    after = sr.dumps(f)
    monkeypatch.undo()
    assert after == before
    # the next value is learned as on an untouched copy
    g = sr.loads(before, sr.Forecaster)
    y = series(raised)
    f.learn_one(y, feat(cfg, raised), key="a")
    g.learn_one(y, feat(cfg, raised), key="a")
    assert sr.dumps(f) == sr.dumps(g)
    H = CONFIGS[cfg].get("max_horizon", 1)
    xs = None if feat(cfg, 0) is None else [feat(cfg, raised + 1 + j) for j in range(H)]
    assert f.forecast(H, xs, key="a") == g.forecast(H, xs, key="a")
    assert f.forecast_interval(H, xs=xs, key="a") == g.forecast_interval(H, xs=xs, key="a")
