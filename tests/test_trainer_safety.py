"""OnlineTrainer: the non-finite guard, pickling mid-stream, and bad input changing nothing."""
import copy
import pickle

import numpy as np
import pytest

import streamrnn as sr


def _trainer(k1=3, k2=7, opt=None, dtype="float64", loss="mse", out=2, **kw):
    net = sr.LSTM(2, 5, num_layers=2, output_size=out, dtype=dtype, seed=11)
    return sr.OnlineTrainer(net, loss=loss, optimizer=opt or sr.Adam(lr=0.02), k1=k1, k2=k2,
                            **kw)


def _snap(tr):
    return (tr.net.parameters().copy(), tr.state.h.copy(), tr.state.c.copy(), tr._snapshot())


def _same(a, b):
    for x, y in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(x, y)
    sa, sb = a[3], b[3]
    for k in ("ring", "tags", "m1", "m2"):
        np.testing.assert_array_equal(sa[k], sb[k])
    for k, v in sa["counters"].items():
        w = sb["counters"][k]
        assert (v == w) or (np.isnan(v) and np.isnan(w)), k


def test_overflowing_update_is_skipped_and_changes_nothing():
    tr = _trainer(k1=1, k2=2, opt=sr.SGD(lr=1e300))
    x = np.array([0.5, -0.5])
    # finite loss (~1e300) and gradient (~1e150), but lr * gradient overflows: skipped
    tr.learn_one(x, [1e150, -1.0])
    assert tr.skipped_updates == 1 and tr.updates == 0
    net0 = sr.LSTM(2, 5, num_layers=2, output_size=2, dtype="float64", seed=11)
    np.testing.assert_array_equal(tr.net.parameters(), net0.parameters())
    assert np.all(np.isfinite(tr.net.parameters()))
    assert np.isfinite(tr.last_grad_norm)


def test_huge_target_gives_non_finite_loss_and_is_skipped():
    tr = _trainer(k1=1, k2=3)
    tr.learn_one([0.1, 0.2], [0.0, 0.0])
    before = _snap(tr)
    tr.learn_one([0.1, 0.2], [1e300, 0.0])  # (y - t)^2 overflows: the loss is inf
    assert tr.skipped_updates == 1
    np.testing.assert_array_equal(tr.net.parameters(), before[0])
    np.testing.assert_array_equal(tr._snapshot()["m1"], before[3]["m1"])
    np.testing.assert_array_equal(tr._snapshot()["m2"], before[3]["m2"])
    assert not np.isfinite(tr.last_loss) or not np.isfinite(tr.last_grad_norm)


def test_no_targets_no_update():
    tr = _trainer(k1=2, k2=4)
    p0 = tr.net.parameters().copy()
    for _ in range(6):
        tr.learn_one([0.3, 0.1], None)
        tr.learn_one([0.3, 0.1], [np.nan, 1.0])  # any NaN: no target
    assert tr.updates == 0 and tr.skipped_updates == 0 and tr.steps == 12
    np.testing.assert_array_equal(tr.net.parameters(), p0)
    assert np.isnan(tr.running_loss)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_mid_stream_copy_continues_bit_for_bit(how):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    Y = rng.normal(size=(40, 2))
    a = _trainer(k1=3, k2=7)
    for t in range(17):  # mid-window: 17 % 3 != 0, ring partly refilled
        a.learn_one(X[t], Y[t])
    b = pickle.loads(pickle.dumps(a)) if how == "pickle" else copy.deepcopy(a)
    assert b.net is not a.net
    for t in range(17, 40):
        np.testing.assert_array_equal(a.learn_one(X[t], Y[t]), b.learn_one(X[t], Y[t]))
    _same(_snap(a), _snap(b))


BAD_CALLS = [
    ("x", lambda tr: tr.learn_one([np.nan, 0.0], [0.0, 0.0]), ValueError),
    ("x", lambda tr: tr.learn_one([1.0], [0.0, 0.0]), ValueError),
    ("x", lambda tr: tr.learn_one(np.zeros(2, np.float32), [0.0, 0.0]), TypeError),
    ("y", lambda tr: tr.learn_one([0.0, 0.0], [np.inf, 0.0]), ValueError),
    ("y", lambda tr: tr.learn_one([0.0, 0.0], [0.0, 0.0, 0.0]), ValueError),
    ("y", lambda tr: tr.learn_one([0.0, 0.0], "a"), TypeError),
    ("Y", lambda tr: tr.learn_many(np.zeros((3, 2)), np.zeros((4, 2))), ValueError),
    ("X", lambda tr: tr.learn_many(np.array([[0.0, 0.0], [np.inf, 0.0]]), np.zeros((2, 2))),
     ValueError),
]


@pytest.mark.parametrize("arg,call,exc", BAD_CALLS)
def test_bad_input_changes_nothing(arg, call, exc):
    rng = np.random.default_rng(1)
    tr = _trainer(k1=2, k2=5)
    for t in range(5):
        tr.learn_one(rng.normal(size=2), rng.normal(size=2))
    before = _snap(tr)
    with pytest.raises(exc, match=arg):
        call(tr)
    _same(before, _snap(tr))


@pytest.mark.parametrize("y", [3, -1, True, 1.5])
def test_bad_class_changes_nothing(y):
    tr = _trainer(loss="cross_entropy", out=3)
    tr.learn_one([0.0, 1.0], 1)
    before = _snap(tr)
    with pytest.raises((ValueError, TypeError), match="y"):
        tr.learn_one([0.0, 1.0], y)
    _same(before, _snap(tr))


@pytest.mark.parametrize("kw,exc", [
    (dict(k1=0), ValueError), (dict(k1=4, k2=3), ValueError), (dict(k1=1.5), TypeError),
    (dict(loss="hinge"), ValueError), (dict(clip_norm=-1.0), ValueError),
    (dict(clip_value=float("nan")), ValueError), (dict(optimizer="adam"), TypeError),
    (dict(loss="cross_entropy", out=1), ValueError),
])
def test_bad_settings(kw, exc):
    kw = dict(kw)
    out = kw.pop("out", 2)
    net = sr.LSTM(2, 5, output_size=out, seed=0)
    p0 = net.parameters().copy()
    with pytest.raises(exc):
        sr.OnlineTrainer(net, **kw)
    np.testing.assert_array_equal(net.parameters(), p0)


def test_negative_learning_rate_is_refused():
    with pytest.raises(ValueError, match="lr"):
        sr.Adam(lr=-1e-3)
