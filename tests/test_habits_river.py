"""Issue 18 point 7: a streamrnn Forecaster where river expects one, and calendar encoding.

river is optional (``pip install streamrnn[river]``); the river tests skip without it, the
calendar and adapter tests that need no river always run.
"""
import math
from datetime import date, datetime, timedelta

import numpy as np
import pytest

import streamrnn as sr
from streamrnn.river import CalendarFeatures, RiverForecaster, calendar_features


# ------------------------------------------------------------------ calendar (no river)

def test_calendar_positions_known_values():
    # 06:00 is a quarter of the day: sin = 1, cos = 0; 18:00 three quarters: sin = -1
    f = calendar_features(datetime(2024, 3, 5, 6, 0), parts=("hour",))
    assert f == pytest.approx({"hour_sin": 1.0, "hour_cos": 0.0}, abs=1e-12)
    f = calendar_features(datetime(2024, 3, 5, 18, 0), parts=("hour",))
    assert f == pytest.approx({"hour_sin": -1.0, "hour_cos": 0.0}, abs=1e-12)
    # Monday is weekday 0; Thursday 3 -> angle 2 pi 3/7
    f = calendar_features(date(2024, 1, 4), parts=("weekday",))      # a Thursday
    assert f["weekday_sin"] == pytest.approx(math.sin(2 * math.pi * 3 / 7), abs=1e-12)
    # July: month index 6 of 12 -> half a cycle
    f = calendar_features(date(2023, 7, 20), parts=("month",))
    assert f == pytest.approx({"month_sin": 0.0, "month_cos": -1.0}, abs=1e-12)
    # day of year in a leap year: 1 July 2024 is day 183 -> (183-1)/366
    f = calendar_features(date(2024, 7, 1), parts=("dayofyear",))
    assert f["dayofyear_cos"] == pytest.approx(math.cos(2 * math.pi * 182 / 366), abs=1e-12)


def test_calendar_cycles_wrap():
    # 23:30 sits next to 00:30 (same distance as 00:30 to 01:30)
    a = calendar_features(datetime(2024, 1, 1, 23, 30), parts=("hour",))
    b = calendar_features(datetime(2024, 1, 2, 0, 30), parts=("hour",))
    c = calendar_features(datetime(2024, 1, 2, 1, 30), parts=("hour",))
    d_ab = math.hypot(a["hour_sin"] - b["hour_sin"], a["hour_cos"] - b["hour_cos"])
    d_bc = math.hypot(b["hour_sin"] - c["hour_sin"], b["hour_cos"] - c["hour_cos"])
    assert d_ab == pytest.approx(d_bc, rel=1e-12)


def test_calendar_accepts_datetime64_and_plain_date_has_no_hour():
    f64 = calendar_features(np.datetime64("2024-03-05T06:00"))
    assert f64 == calendar_features(datetime(2024, 3, 5, 6, 0))
    assert "hour_sin" not in calendar_features(date(2024, 3, 5))


@pytest.mark.parametrize("when, parts, exc, words", [
    ("2024-01-01", ("hour",), TypeError, "when must be a datetime"),
    (1.5, ("hour",), TypeError, "got float"),
    (datetime(2024, 1, 1), ("minute",), ValueError, "'minute'"),
    (datetime(2024, 1, 1), "hour", TypeError, "parts must be"),
    (np.datetime64("NaT"), ("hour",), ValueError, "NaT"),
])
def test_calendar_bad_input(when, parts, exc, words):
    with pytest.raises(exc, match=words):
        calendar_features(when, parts=parts)


def test_calendar_transformer_keeps_numbers_refuses_strings():
    t = CalendarFeatures(parts=("weekday",))
    out = t.transform_one({"when": datetime(2024, 1, 1), "temp": 3.5, "gap": None})
    assert out["temp"] == 3.5 and out["gap"] is None
    assert out["when_weekday_sin"] == pytest.approx(0.0) and out["when_weekday_cos"] == 1.0
    with pytest.raises(TypeError, match=r"x\['city'\]"):
        t.transform_one({"city": "Oslo"})


# ------------------------------------------------------------------ adapter (no river)

def _hourly(n, t0=datetime(2024, 1, 1)):
    return [(10 + math.sin(2 * math.pi * t / 24), {"t": t0 + timedelta(hours=t)})
            for t in range(n)]


def test_adapter_equals_forecaster_fed_calendar_features():
    """The adapter is exactly a Forecaster given calendar_features(x) (same forecasts)."""
    a = RiverForecaster(sr.Forecaster(hidden_size=8, seed=3))
    b = sr.Forecaster(hidden_size=8, seed=3)
    data = _hourly(60)
    for y, x in data:
        a.learn_one(y, x)
        b.learn_one(y, calendar_features(x["t"], prefix="t_"))
    xs = [{"t": datetime(2024, 1, 3, 12) + timedelta(hours=k)} for k in range(3)]
    assert a.forecast(3, xs) == b.forecast(3, [calendar_features(x["t"], prefix="t_")
                                               for x in xs])


def test_adapter_clone_is_fresh_with_same_settings():
    m = RiverForecaster(sr.Forecaster(hidden_size=8, seed=1, k2=16), calendar=("hour",))
    for y, x in _hourly(30):
        m.learn_one(y, x)
    c = m.clone()
    assert c is not m and c.forecaster is not m.forecaster
    assert c.forecaster._settings() == m.forecaster._settings()
    assert c.calendar == ("hour",)
    assert c.forecaster.net is None and m.forecaster.net is not None
    # the clone learns exactly like a fresh model with the same settings
    ref = RiverForecaster(sr.Forecaster(hidden_size=8, seed=1, k2=16), calendar=("hour",))
    for y, x in _hourly(30):
        c.learn_one(y, x)
        ref.learn_one(y, x)
    xs = [{"t": datetime(2024, 1, 2, 6)}]
    assert c.forecast(1, xs) == ref.forecast(1, xs)


def test_adapter_errors_name_what_to_pass():
    with pytest.raises(TypeError, match=r"an instance: streamrnn.Forecaster\(\)"):
        RiverForecaster(sr.Forecaster)
    m = RiverForecaster(calendar=None)
    with pytest.raises(TypeError, match="datetime and calendar=None"):
        m.learn_one(1.0, {"t": datetime(2024, 1, 1)})
    with pytest.raises(TypeError, match="xs must be None or a list"):
        RiverForecaster().forecast(1, {"t": 1.0})


# ------------------------------------------------------------------ with river

def test_river_protocol_pipeline_evaluate():
    river = pytest.importorskip("river")
    from river import compose, datasets, metrics, preprocessing
    from river.time_series import base as ts_base

    m = RiverForecaster(sr.Forecaster(hidden_size=8, seed=0))
    assert isinstance(m, ts_base.Forecaster) and m._supervised is True
    assert isinstance(CalendarFeatures(), river.base.Transformer)
    # the pipeline: a scaler in front of the forecaster
    p = compose.Pipeline(CalendarFeatures(), preprocessing.StandardScaler(),
                         RiverForecaster(sr.Forecaster(hidden_size=8, seed=0)))
    data = list(datasets.AirlinePassengers())
    assert isinstance(data[0][0]["month"], datetime)   # what river's streams carry
    for x, y in data[:40]:
        p.learn_one(x, y)
    f = p.forecast(3, [x for x, _ in data[40:43]])
    assert len(f) == 3 and all(math.isfinite(v) for v in f)
    assert isinstance(p.clone(), compose.Pipeline)
    # river's own evaluation loop on river's dataset, x (datetimes) as it comes
    from river import time_series
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        metric = time_series.evaluate(datasets.AirlinePassengers(),
                                      RiverForecaster(sr.Forecaster(hidden_size=8, seed=0)),
                                      metrics.MAE(), horizon=2)
    maes = [m.get() for m in metric.metrics]
    assert len(maes) == 2 and all(math.isfinite(v) and v > 0 for v in maes)


def test_river_clone_through_base_class_signature():
    pytest.importorskip("river")
    m = RiverForecaster(sr.Forecaster(hidden_size=4, seed=0))
    c = m.clone({"calendar": ("month",)})
    assert c.calendar == ("month",) and c.forecaster.hidden_size == 4
