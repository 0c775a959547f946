"""Seasonal forecasters saved, and streams exported, by the release before the three newest
seasonal experts (commit dcacb26: 7 experts, a season history of one season + 1 values)
load and continue.

The fixtures in tests/data were written by the code of commit dcacb26 (built in a scratch
worktree, `git worktree add /tmp/rel-dcacb26 dcacb26`, run with PYTHONPATH pointing there):
``sr.Forecaster(hidden_size=8, seed=3, season=12, k2=6, weights=w)`` for w = "shared"
(v1_forecaster_season.srnn) and "per_key" (v1_forecaster_season_per_key.srnn), keys "a" and
"b" each learning 65 values of ``50 + 0.3 t + 8 sin(2 pi (t + phase) / 12) + N(0, 0.7)``
(phase 0 and 3; every expert active, the multiplicative Holt-Winters too); each
forecaster's ``export_stream("a")`` (v1_stream_season*.srnn). v1_season_expected.npz holds
what that release computed: after loading each file and learning 30 more values per key
(``<w>_values``), the network parameters, states, step counts and every expert's 12
forecasts (``<w>_experts`` names them); and after importing the exported stream as
"moved" into ``sr.loads(sr.dumps(f))`` with its streams forgotten and learning key a's 30
values, the same for that stream (``<w>_stream_*``).
"""
import pathlib

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import io as srio

from conftest import close_to_old

DATA = pathlib.Path(__file__).parent / "data"
EXP = np.load(DATA / "v1_season_expected.npz")
WEIGHTS = {"shared": "", "per_key": "_per_key"}
NEW = ("seasonal_naive_2", "seasonal_drift", "seasonal_naive_best")
OLD_E = 7


def _raw(path):
    """Every array of a file, and its type and meta, read without the Forecaster."""
    r = srio._Reader(path)
    try:
        return r.type, r.meta, {n: r.array(n) for n in r.header["arrays"]}
    finally:
        r.close()


def _file(w):
    return DATA / f"v1_forecaster_season{WEIGHTS[w]}.srnn"


def _stream(w):
    return DATA / f"v1_stream_season{WEIGHTS[w]}.srnn"


def _check_holds_file(f, arrays, keys):
    """Every field of the old file is exactly where the loaded forecaster keeps it."""
    assert f.expert_names[:OLD_E] == tuple(EXP["shared_experts"][:OLD_E])
    assert f.expert_names[OLD_E:] == NEW
    E = len(f.expert_names)
    for i, k in enumerate(keys):
        s = f._streams[k]
        tr = s.trainer
        if "streams.parameters" in arrays:
            assert tr.net.parameters().tobytes() == arrays["streams.parameters"][i].tobytes()
        elif "net.parameters" in arrays:     # (an exported shared stream holds no network)
            assert tr.net.parameters().tobytes() == arrays["net.parameters"].tobytes()
        assert tr.state.h.tobytes() == arrays["streams.h"][i].tobytes()
        assert tr.state.c.tobytes() == arrays["streams.c"][i].tobytes()
        hist = arrays["streams.hist"][i]
        assert hist.shape == (13,) and np.isfinite(hist).all()
        assert s.hist.shape == (14 * 12 + 1,)
        assert s.hist[-13:].tobytes() == hist.tobytes()
        assert np.isnan(s.hist[:-13]).all()
        pend = arrays["streams.pend"][i]
        assert pend.shape[-1] == OLD_E + 2 and s.pend.shape[-1] == E + 2
        assert s.pend[..., :OLD_E].tobytes() == pend[..., :OLD_E].tobytes()
        assert s.pend[..., E:].tobytes() == pend[..., OLD_E:].tobytes()
        assert np.isnan(s.pend[..., OLD_E:E]).all()
        for name in ("agg_r", "agg_s"):
            a = getattr(s, name)
            assert a[..., :OLD_E].tobytes() == arrays["streams." + name][i].tobytes()
            assert not a[..., OLD_E:].any()
        assert (arrays["streams.agg_r"][i] != 0).any()     # the old weights had learned
        for name in ("porig", "scores", "nscores", "alpha", "hw", "hw_season"):
            assert getattr(s, name).tobytes() == arrays["streams." + name][i].tobytes(), name
        assert arrays["streams.nscores"][i].min() > 0       # intervals tracked
        assert s.ses == arrays["streams.ses"][i]
        assert s.last_y == arrays["streams.last_y"][i]
        assert [s.n_seen, s.n_obs, s.n_missing] == arrays["streams.counts"][i].tolist()


def _same_experts(ef, names, old, net_dtype="float32"):
    """The old experts' forecasts against the release's: the network's within its dtype's
    rounding (the C kernels reorder sums since that release: conftest.close_to_old), every
    other expert, which reads only the values, bit for bit."""
    for n, v in zip(names, old):
        if n == "network":
            close_to_old(np.array(ef[n]), v, computed_in=net_dtype)
        else:
            assert np.array(ef[n]).tobytes() == v.tobytes(), n


def _check_continues(f, w, key, pre, name_map=None):
    """After learning the expected values, the networks, states and the old experts'
    forecasts are what the release computed; the new experts that the history allows
    forecast."""
    tr = f.trainer(key)
    close_to_old(tr.net.parameters(), EXP[f"{w}_{pre}params" + name_map])
    close_to_old(tr.state.h, EXP[f"{w}_{pre}h" + name_map])
    ef = f.expert_forecasts(12, key=key)
    old = EXP[f"{w}_{pre}ef" + name_map]
    assert len(old) == OLD_E
    _same_experts(ef, EXP[f"{w}_experts"], old)
    # one season + 1 of history (the old file's) and 30 values since: two seasons back is
    # known, 14 seasons are not
    assert np.isfinite(ef["seasonal_naive_2"]).all() and np.isfinite(ef["seasonal_drift"]).all()
    assert np.isnan(ef["seasonal_naive_best"]).all()
    assert np.isfinite(f.forecast(12, key=key)).all()
    assert all(np.isfinite(lh).all() for lh in f.forecast_interval(3, key=key))
    w_ = f.expert_weights(12, key=key)
    assert sum(w_.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("w", list(WEIGHTS))
def test_old_seasonal_file_loads_with_every_field(w):
    f = sr.load(_file(w), sr.Forecaster)
    _, _, arrays = _raw(_file(w))
    assert f.weights == w and f.season == 12 and list(f.keys()) == ["a", "b"]
    _check_holds_file(f, arrays, ["a", "b"])
    # the new experts forecast what the old history (one season + 1) allows: the drift
    # everywhere, the mean two seasons back one season ahead only, the longer cycle nowhere
    for k in "ab":
        ef = f.expert_forecasts(12, key=k)
        assert np.isfinite(ef["seasonal_drift"]).all()
        assert np.isfinite(ef["seasonal_naive_2"]).tolist() == [False] * 11 + [True]
        assert np.isnan(ef["seasonal_naive_best"]).all()
        assert all(np.isfinite(ef[n]).all() for n in f.expert_names[:OLD_E])


@pytest.mark.parametrize("w", list(WEIGHTS))
def test_old_seasonal_file_resumes_to_the_old_numbers(w):
    f = sr.load(_file(w), sr.Forecaster)
    for a, b in EXP[f"{w}_values"]:
        f.learn_one(float(a), key="a")
        f.learn_one(float(b), key="b")
    for k in "ab":
        assert f.stats(k)["steps"] == int(EXP[f"{w}_steps_{k}"])
        close_to_old(f.trainer(k).state.c, EXP[f"{w}_c_{k}"])
        _check_continues(f, w, k, "", f"_{k}")


@pytest.mark.parametrize("w", list(WEIGHTS))
def test_old_seasonal_file_resaved_round_trips_bit_for_bit(w):
    f = sr.load(_file(w), sr.Forecaster)
    raw = sr.dumps(f)
    g = sr.loads(raw, sr.Forecaster)
    assert sr.dumps(g) == raw
    _, _, arrays = _raw(_file(w))
    _check_holds_file(g, arrays, ["a", "b"])
    for a, b in EXP[f"{w}_values"][:13]:
        for x in (f, g):
            x.learn_one(float(a), key="a")
            x.learn_one(float(b), key="b")
    assert sr.dumps(g) == sr.dumps(f)
    assert sr.loads(sr.dumps(g), sr.Forecaster).forecast(12, key="b") == f.forecast(12, key="b")


@pytest.mark.parametrize("w", list(WEIGHTS))
def test_old_exported_stream_imports_and_resumes_bit_for_bit(w):
    blob = _stream(w).read_bytes()
    _, _, arrays = _raw(_stream(w))
    h = sr.loads(sr.dumps(sr.load(_file(w), sr.Forecaster)), sr.Forecaster)
    h.forget("a")
    h.forget("b")
    h.import_stream("moved", blob)
    _check_holds_file(h, arrays, ["moved"])
    again = h.export_stream("moved")
    g = sr.loads(sr.dumps(h), sr.Forecaster)
    g.forget("moved")
    g.import_stream("moved", again)
    assert g.export_stream("moved") == again
    for a, _ in EXP[f"{w}_values"]:
        h.learn_one(float(a), key="moved")
    _check_continues(h, w, "moved", "stream_", "")


def _rebuild(path, edit):
    """The file at path with its arrays edited by edit(arrays) (valid checksums)."""
    t, meta, arrays = _raw(path)
    edit(arrays)
    return srio._join(*srio._encode(t, meta, arrays))


def _set(name, value):
    def edit(arrays):
        arrays[name] = value(arrays[name])
    return edit


CORRUPT = {
    "hist_inf": _set("streams.hist", lambda a: np.where(np.arange(a.size).reshape(a.shape)
                                                         == 3, np.inf, a)),
    "hist_huge": _set("streams.hist", lambda a: a + 1e300),
    "hist_a_season_short": _set("streams.hist", lambda a: a[:, 1:]),
    "pend_new_width": _set("streams.pend", lambda a: np.concatenate(
        [a[..., :OLD_E], np.full(a.shape[:-1] + (3,), np.nan), a[..., OLD_E:]], axis=-1)),
    "agg_r_new_width": _set("streams.agg_r", lambda a: np.concatenate(
        [a, np.zeros(a.shape[:-1] + (3,))], axis=-1)),
    "agg_s_negative": _set("streams.agg_s", lambda a: -a - 1),
    "agg_r_nan": _set("streams.agg_r", lambda a: a * np.nan),
    "alpha_out_of_range": _set("streams.alpha", lambda a: a + 5),
    "hw_season_short": _set("streams.hw_season", lambda a: a[..., 1:]),
    "scores_negative": _set("streams.scores", lambda a: -a - 1),
}


@pytest.mark.parametrize("w", list(WEIGHTS))
@pytest.mark.parametrize("how", list(CORRUPT))
def test_corrupted_old_seasonal_files_raise(w, how):
    bad = _rebuild(_file(w), CORRUPT[how])
    with pytest.raises(sr.FileFormatError):
        sr.loads(bad, sr.Forecaster)
    bad_stream = _rebuild(_stream(w), CORRUPT[how])
    f = sr.load(_file(w), sr.Forecaster)
    before = sr.dumps(f)
    with pytest.raises(sr.FileFormatError):
        f.import_stream("moved", bad_stream)
    assert sr.dumps(f) == before


@pytest.mark.parametrize("w", list(WEIGHTS))
def test_damaged_old_seasonal_bytes_raise(w):
    for path in (_file(w), _stream(w)):
        raw = path.read_bytes()
        hdr_end = raw.index(b'"arrays"')
        # a flipped byte in the data (checksum) and a truncated file
        for bad in (raw[:-9] + bytes([raw[-9] ^ 1]) + raw[-8:], raw[:len(raw) // 2],
                    raw[:hdr_end] + raw[hdr_end:].replace(b'"streams.hist"', b'"streams.hisT"')):
            with pytest.raises(sr.FileFormatError):
                if path == _file(w):
                    sr.loads(bad, sr.Forecaster)
                else:
                    sr.load(_file(w), sr.Forecaster).import_stream("x", bad)


def test_unedited_rebuild_loads():
    # the corruption tests' rebuild alone gives a loadable file (so they test the edits)
    for w in WEIGHTS:
        f = sr.loads(_rebuild(_file(w), lambda a: None), sr.Forecaster)
        assert f.forecast(12, key="a") == sr.load(_file(w), sr.Forecaster).forecast(12, key="a")
        g = sr.load(_file(w), sr.Forecaster)
        g.import_stream("moved", _rebuild(_stream(w), lambda a: None))


def test_old_file_of_a_season_above_1024_loads_and_resumes():
    # v1_forecaster_season_long.srnn, also written by dcacb26: sr.Forecaster(hidden_size=4,
    # seed=5, season=1030, k2=2, max_horizon=2) after 1070 values of
    # 20 + 3 sin(2 pi t / 1030) + 0.01 (t % 7); v1_season_long_expected.npz: what that
    # release computed after loading it and learning 20 more values (`values`). The current
    # code keeps two seasons + 1 of history for such a season.
    exp = np.load(DATA / "v1_season_long_expected.npz")
    path = DATA / "v1_forecaster_season_long.srnn"
    _, _, arrays = _raw(path)
    f = sr.load(path, sr.Forecaster)
    s = f._streams[None]
    assert arrays["streams.hist"].shape == (1, 1031) and s.hist.shape == (2 * 1030 + 1,)
    assert s.hist[-1031:].tobytes() == arrays["streams.hist"][0].tobytes()
    assert np.isnan(s.hist[:-1031]).all()
    E = len(f.expert_names)
    assert s.pend[..., :OLD_E].tobytes() == arrays["streams.pend"][0][..., :OLD_E].tobytes()
    assert s.pend[..., E:].tobytes() == arrays["streams.pend"][0][..., OLD_E:].tobytes()
    assert s.agg_r[:, :OLD_E].tobytes() == arrays["streams.agg_r"][0].tobytes()
    assert s.hw_season.tobytes() == arrays["streams.hw_season"][0].tobytes()
    raw = sr.dumps(f)
    assert sr.dumps(sr.loads(raw, sr.Forecaster)) == raw
    for y in exp["values"]:
        f.learn_one(float(y))
    close_to_old(f.net.parameters(), exp["params"])
    close_to_old(f.trainer().state.h, exp["h"])
    ef = f.expert_forecasts(2)
    _same_experts(ef, exp["experts"], exp["ef"])
    assert np.isfinite(ef["seasonal_drift"]).all()
    assert np.isnan(ef["seasonal_naive_best"]).all()
    assert np.isfinite(f.forecast(2)).all()
