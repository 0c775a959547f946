"""Forecaster.export_stream / import_stream: one stream's complete state, in streamrnn's file
format, resumes bit for bit; bad or foreign bytes are refused with nothing changed."""
import math

import numpy as np
import pytest

import streamrnn as sr

KEYS = ("a", 7, None)


def _settings(weights, season):
    return dict(hidden_size=5, seed=3, k1=2, k2=4, weights=weights, season=season,
                optimizer=sr.Adam(lr=1e-2))


def _value(t, i):
    return 10 + 3 * math.sin(0.4 * t + i) + (0.5 * t if i == 1 else 0.0)


def _x(t, i, nf):
    return None if nf == 0 else [math.cos(0.3 * t + j + i) for j in range(nf)]


def _feed(f, ts, nf, out):
    for t in ts:
        for i, k in enumerate(KEYS):
            y = float("nan") if t % 11 == 5 and i == 0 else _value(t, i)
            f.learn_one(y, _x(t, i, nf), key=k)
            xs = None if nf == 0 else [_x(t + 1 + h, i, nf) for h in range(3)]
            out.append((k, f.forecast(3, xs, key=k), f.forecast_interval(2, key=k)))


@pytest.mark.parametrize("weights", ["shared", "per_key"])
@pytest.mark.parametrize("season", [None, 4])
@pytest.mark.parametrize("nf", [0, 2])
def test_export_import_resumes_bit_for_bit(weights, season, nf):
    a = sr.Forecaster(**_settings(weights, season))
    b = sr.Forecaster(**_settings(weights, season))
    ref, got = [], []
    _feed(a, range(30), nf, ref)
    _feed(b, range(30), nf, got)
    blobs = {k: b.export_stream(k) for k in KEYS}
    if weights == "per_key":
        c = sr.Forecaster(**_settings(weights, season))    # a fresh forecaster
    else:
        # the shared network belongs to the forecaster, not to a stream
        c = sr.loads(sr.dumps(b))
        for k in KEYS:
            c.forget(k)
    for k in KEYS:
        c.import_stream(k, blobs[k])
    assert c.n_features == nf
    for k in KEYS:
        assert c.export_stream(k) == blobs[k]
    _feed(a, range(30, 60), nf, ref)
    _feed(c, range(30, 60), nf, got)
    assert got == ref                      # forecasts and intervals, exactly
    assert sr.dumps(c) == sr.dumps(a)      # weights, moments, every stream: bit for bit


def test_import_replaces_a_stream_and_keeps_the_others():
    f = sr.Forecaster(**_settings("shared", None))
    for t in range(20):
        f.learn_one(_value(t, 0), key="a")
        f.learn_one(_value(t, 1), key="b")
    blob, other = f.export_stream("a"), f.export_stream("b")
    for t in range(20, 25):
        f.learn_one(_value(t, 0), key="a")
    assert f.export_stream("a") != blob
    f.import_stream("a", blob)             # back to where it was
    assert f.export_stream("a") == blob and f.export_stream("b") == other
    assert f.keys() == ["a", "b"]


def _target():
    f = sr.Forecaster(**_settings("per_key", 4))
    for t in range(12):
        f.learn_one(_value(t, 0), key="a")
    return f


def _stream_bytes(**over):
    s = {**_settings("per_key", 4), **over}
    g = sr.Forecaster(**s)
    for t in range(12):
        g.learn_one(_value(t, 2), key="z")
    return g.export_stream("z")


def test_refuses_corrupt_and_foreign_bytes_changing_nothing():
    f = _target()
    before = sr.dumps(f)
    good = _stream_bytes()
    flipped = bytearray(good)
    flipped[-9] ^= 0x10
    cases = [good[:-1], bytes(flipped), b"", b"not a stream", good + b"\0",
             sr.dumps(f),                                     # a whole forecaster
             sr.dumps(sr.LSTM(1, 2, seed=0)),                 # another object
             _stream_bytes(hidden_size=6),                    # other configurations
             _stream_bytes(seed=4), _stream_bytes(season=5),
             _stream_bytes(optimizer=sr.Adam(lr=2e-2)),
             _stream_bytes(weights="shared")]
    for data in cases:
        for key in ("a", "new"):
            with pytest.raises(sr.FileFormatError):
                f.import_stream(key, data)
            assert sr.dumps(f) == before
    with pytest.raises(TypeError, match="data must be bytes"):
        f.import_stream("a", "text")
    with pytest.raises(TypeError, match="key must be hashable"):
        f.import_stream([1], good)
    assert sr.dumps(f) == before
    f.import_stream("new", good)           # the good bytes themselves are accepted
    assert f.keys() == ["a", "new"]


def test_refuses_other_n_features_and_fixes_unset_ones():
    g = sr.Forecaster(hidden_size=3, seed=0)
    for t in range(5):
        g.learn_one(float(t), {"p": 1.0 * t, "q": 2.0}, key="k")
    blob = g.export_stream("k")
    fresh = sr.Forecaster(hidden_size=3, seed=0)
    fresh.import_stream("k", blob)
    assert fresh.n_features == 2 and fresh.feature_names == ["p", "q"]
    other = sr.Forecaster(hidden_size=3, seed=0, n_features=1)
    before = sr.dumps(other)
    with pytest.raises(sr.FileFormatError, match="another configuration"):
        other.import_stream("k", blob)
    assert sr.dumps(other) == before and other.net is None


def test_export_unknown_key_and_nonfinite_state():
    f = _target()
    with pytest.raises(KeyError):
        f.export_stream("nope")
    f.trainer("a").state.h[...] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        f.export_stream("a")


@pytest.mark.parametrize("weights", ["shared", "per_key"])
def test_written_header_is_the_canonical_json_of_its_content(weights):
    # the encoder writes the header's arrays table as text (io._encode): it must be exactly
    # json.dumps(header, separators=(",", ":")), the header files were written with before,
    # for the stream bytes and for a whole forecaster, trainer and network
    import json
    import struct

    f = sr.Forecaster(**_settings(weights, 4))
    _feed(f, range(9), 2, [])
    blobs = [f.export_stream(k) for k in KEYS] + [sr.dumps(f)]
    net = sr.GRU(2, 3, seed=1)
    blobs += [sr.dumps(net, metadata={"é\"x": [1, 2.5]}),
              sr.dumps(sr.OnlineTrainer(net, k1=2, k2=3))]
    for raw in blobs:
        (hlen,) = struct.unpack_from("<Q", raw, 16)
        text = raw[56:56 + hlen]
        header = json.loads(text.decode("utf-8"))
        assert len(header["arrays"]) > 0
        assert text == json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
