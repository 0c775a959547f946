"""advance(x) + observe(y): learn_one in two halves (the forecaster's one-step-per-value path)."""
import pickle

import numpy as np
import pytest

import streamrnn as sr


def _pair(loss="mse", k1=2, k2=5, dtype="float64", out=2):
    made = []
    for _ in range(2):
        net = sr.GRU(3, 6, num_layers=2, output_size=out, dtype=dtype, seed=4)
        made.append(sr.OnlineTrainer(net, loss=loss, optimizer=sr.Adam(lr=0.05), k1=k1, k2=k2,
                                     clip_norm=1.0))
    return made


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k1,k2", [(1, 1), (1, 4), (3, 3), (2, 7)])
def test_advance_observe_equals_learn_one_bit_for_bit(dtype, k1, k2):
    a, b = _pair(k1=k1, k2=k2, dtype=dtype)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(dtype)
    Y = rng.normal(size=(40, 2)).astype(dtype)
    Y[[3, 17, 18]] = np.nan
    for t in range(40):
        p1 = a.learn_one(X[t], Y[t])
        p2 = b.advance(X[t])
        b.observe(Y[t])
        np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(a.net.parameters(), b.net.parameters())
    np.testing.assert_array_equal(a.state.h, b.state.h)
    assert (a.steps, a.updates, a.skipped_updates) == (b.steps, b.updates, b.skipped_updates)
    np.testing.assert_array_equal([a.last_loss, a.last_grad_norm, a.running_loss],
                                  [b.last_loss, b.last_grad_norm, b.running_loss])


def test_cross_entropy_and_missing_class():
    a, b = _pair(loss="cross_entropy", out=3)
    rng = np.random.default_rng(1)
    for t in range(30):
        x = rng.normal(size=3)
        cls = None if t % 4 == 0 else int(rng.integers(3))
        a.learn_one(x, cls)
        b.advance(x)
        b.observe(cls)
    np.testing.assert_array_equal(a.net.parameters(), b.net.parameters())


def test_advance_twice_closes_the_pending_step_without_target():
    a, b = _pair(k1=1, k2=4)
    rng = np.random.default_rng(2)
    x0, x1 = rng.normal(size=3), rng.normal(size=3)
    y1 = rng.normal(size=2)
    a.learn_one(x0, None)
    a.learn_one(x1, y1)
    b.advance(x0)  # no observe: the step is closed without a target by the next advance
    b.advance(x1)
    b.observe(y1)
    np.testing.assert_array_equal(a.net.parameters(), b.net.parameters())
    assert a.updates == b.updates == 1


def test_observe_without_pending_raises_and_changes_nothing():
    (tr, _) = _pair()
    with pytest.raises(ValueError, match="advance"):
        tr.observe([1.0, 2.0])
    tr.advance(np.zeros(3))
    tr.observe([1.0, 2.0])
    before = (tr.net.parameters().copy(), tr.state.h.copy(), tr.stats())
    with pytest.raises(ValueError, match="advance"):
        tr.observe([1.0, 2.0])
    np.testing.assert_array_equal(before[0], tr.net.parameters())
    np.testing.assert_array_equal(before[1], tr.state.h)
    assert before[2]["steps"] == tr.steps


def test_bad_target_in_observe_keeps_the_step_pending():
    (tr, _) = _pair()
    tr.advance(np.zeros(3))
    with pytest.raises(ValueError, match="inf"):
        tr.observe([np.inf, 0.0])
    with pytest.raises(ValueError, match="shape"):
        tr.observe([1.0, 2.0, 3.0])
    tr.observe([0.5, 0.5])  # still pending, now accepted
    with pytest.raises(ValueError):
        tr.observe([0.5, 0.5])


def test_pending_survives_pickle():
    a, _ = _pair(k1=2, k2=5)
    rng = np.random.default_rng(3)
    for t in range(7):
        a.learn_one(rng.normal(size=3), rng.normal(size=2))
    a.advance(rng.normal(size=3))
    b = pickle.loads(pickle.dumps(a))
    y = rng.normal(size=2)
    a.observe(y)
    b.observe(y)
    np.testing.assert_array_equal(a.net.parameters(), b.net.parameters())
