"""Ctrl-C: a real SIGINT (sent with os.kill by a thread as soon as the call has made a random
amount of progress: a row of ``out`` written, a step or update counted, a value consumed —
an event, never a clock, so no result depends on the machine's speed) during a long ``net.run``,
``trainer.learn_many``, ``Forecaster.learn_many`` or a Python loop of
``Forecaster.learn_one`` raises KeyboardInterrupt and leaves every state, counter and the
weights exactly as after a whole number n of sequential steps. n is read from the object
(the trainer's and forecaster's step counters; the rows ``run`` wrote to ``out``) and the
object is compared bit for bit with an uninterrupted replay of n steps on a fresh copy.

STREAMRNN_LONG=1 runs more trials."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import streamrnn as sr

from _figures import record

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX only")

TRIALS = 12 if os.environ.get("STREAMRNN_LONG") else 3
RESULTS = {"interrupted": 0, "completed": 0}


def interrupt_during(call, progressed):
    """Run call() while a thread sends SIGINT to this process as soon as ``progressed()`` is
    true (the call has done a random part of its work; the trigger points are in the first
    half of each call, so there is always work left to interrupt).

    Returns True when the call raised KeyboardInterrupt. A SIGINT that arrives after the call
    returned is absorbed here (the caller checks the object's state either way)."""
    done = threading.Event()

    def fire():
        while not done.is_set():
            if progressed():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.0002)      # polling; the moment is set by progress, not by time

    t = threading.Thread(target=fire)
    t.start()
    result = None
    try:
        try:
            call()
            result = False
        except KeyboardInterrupt:
            result = True
        done.set()
        t.join()
        for _ in range(50):     # a late signal's handler runs during these sleeps
            time.sleep(0.001)
    except KeyboardInterrupt:
        pass
    RESULTS["interrupted" if result else "completed"] += 1
    return result


def points(seed, lo, hi):
    """TRIALS random trigger points in [lo, hi) (units of the call's own progress)."""
    return np.random.default_rng(seed).integers(lo, hi, TRIALS)


def test_run_interrupted_at_a_step_boundary():
    net = sr.LSTM(4, 32, output_size=2, dtype="float64", seed=1)
    T = 200000
    X = np.random.default_rng(0).standard_normal((T, 4))
    hits = 0
    for k in points(1, T // 20, T // 2):
        s = net.new_state()
        out = np.full((T, 2), np.nan)
        interrupt_during(lambda: net.run(X, s, out=out), lambda: np.isfinite(out[k, 0]))
        n = int(np.isfinite(out[:, 0]).sum())
        # the finished steps are a prefix, whole: rows [0, n) written, nothing after
        assert np.isfinite(out[:n]).all() and np.isnan(out[n:]).all()
        ref = net.new_state()
        Y = net.run(X[:n], ref)
        assert np.array_equal(s.h, ref.h) and np.array_equal(s.c, ref.c)
        assert np.array_equal(out[:n], Y)
        hits += n < T      # (a SIGINT just after the last chunk interrupts nothing)
        # the state is free again: no guard left set
        net.step(X[0], s)
    assert hits >= 1, "no run was interrupted"
    record("net.run interrupted mid-way by SIGINT, state whole", hits)


def test_chunked_run_equals_single_steps():
    """The chunked loop computes exactly what one step at a time computes."""
    net = sr.GRU(2, 3, output_size=1, dtype="float64", seed=2)
    T = 4_200_000 // net.parameters().size + 1000      # more than one chunk
    X = np.random.default_rng(1).standard_normal((T, 2))
    s = net.new_state()
    Y = net.run(X, s)
    ref = net.new_state()
    for t in range(T):
        assert np.array_equal(net.step(X[t], ref), Y[t])
    assert np.array_equal(ref.h, s.h)


def trainer_pair(seed=3):
    net = sr.LSTM(3, 24, output_size=1, dtype="float64", seed=seed)
    return sr.OnlineTrainer(net, optimizer=sr.Adam(1e-3), k1=4, k2=8)


def same_trainer(a, b):
    sa, sb = a._snapshot(), b._snapshot()
    assert sa["counters"] == sb["counters"]
    for k in ("h", "c", "ring", "tags", "m1", "m2"):
        assert sa[k].tobytes() == sb[k].tobytes(), k
    assert a.net.parameters().tobytes() == b.net.parameters().tobytes()


def test_learn_many_interrupted_at_a_step_boundary():
    T = 80000
    rng = np.random.default_rng(2)
    X = rng.standard_normal((T, 3))
    Y = np.sin(X[:, :1])
    Y[::7] = np.nan
    hits = 0
    for k in points(2, 1, 6):
        tr = trainer_pair()
        # progress seen from outside without reading the trainer (its counters refuse while
        # learn_many runs: the one thread contract): the weights, read through a view
        # taken before, have changed k times (each update changes them)
        w = tr.net.parameters()
        seen = {"last": w.copy(), "changes": 0}

        def progressed():
            if not np.array_equal(w, seen["last"]):
                seen["last"] = w.copy()
                seen["changes"] += 1
            return seen["changes"] >= k
        interrupt_during(lambda: tr.learn_many(X, Y), progressed)
        n = tr.steps
        ref = trainer_pair()
        ref.learn_many(X[:n], Y[:n])
        same_trainer(tr, ref)
        hits += n < T
        tr.learn_one(X[0], Y[0])       # the trainer works on
    assert hits >= 1
    record("learn_many interrupted mid-way by SIGINT, trainer whole", hits)


def series(n):
    t = np.arange(n)
    return np.sin(0.07 * t) + 0.1 * np.cos(0.31 * t)


def fc_bytes(f, tmp_path, name):
    p = tmp_path / name
    sr.save(f, p)
    return p.read_bytes()


@pytest.mark.parametrize("how", ["learn_many", "learn_one loop"])
def test_forecaster_interrupted_between_values(tmp_path, how):
    ys = series(20000)
    hits = 0
    for k in points(3, len(ys) // 20, len(ys) // 2):
        f = sr.Forecaster(hidden_size=8, seed=0)
        seen = [0]      # values handed to the forecaster so far (set by the main thread)

        def counted():
            for i, y in enumerate(ys):
                seen[0] = i
                yield y
        if how == "learn_many":
            # learn_many checks every value before the first is learned, so the progress
            # that triggers the signal is counted per value learned, not per value read
            learned = f._learn_checked

            def counting(*args, **kwargs):
                out = learned(*args, **kwargs)
                seen[0] += 1
                return out
            f._learn_checked = counting                  # type: ignore[method-assign]
            call = lambda: f.learn_many(ys)              # noqa: E731
        else:
            def call():
                for y in counted():
                    f.learn_one(y)
        interrupt_during(call, lambda: seen[0] >= k)
        n = f.stats()["steps"] if len(f) else 0
        ref = sr.Forecaster(hidden_size=8, seed=0)
        ref.learn_many(ys[:n])
        # everything the forecaster is (weights, state, ring, moments, scalers, counters,
        # the pending prediction) equals the replay of n values
        assert fc_bytes(f, tmp_path, "a") == fc_bytes(ref, tmp_path, "b")
        assert f.forecast(3) == ref.forecast(3)
        hits += n < len(ys)
    assert hits >= 1
    record(f"Forecaster {how} interrupted mid-way by SIGINT, forecaster whole", hits)


def test_sequence_fit_interrupted_between_whole_updates():
    """SequenceTrainer.fit: each window's forward, backward and update is one C call with
    the GIL released, so SIGINT lands between updates: after n applied updates the weights
    and the optimizer's moments are bit-for-bit those of n uninterrupted updates."""
    rng = np.random.default_rng(4)
    windows = [rng.standard_normal((30, 3)) for _ in range(3000)]
    targets = [rng.standard_normal((30, 2)) for _ in range(3000)]

    def fresh():
        net = sr.GRU(3, 32, output_size=2, bidirectional=True, dtype="float64", seed=5)
        return sr.SequenceTrainer(net, optimizer=sr.Adam(1e-3), clip_norm=1.0)

    hits = 0
    for k in points(5, 100, 1500):
        tr = fresh()
        interrupt_during(lambda: tr.fit(windows, targets, shuffle=False),
                         lambda: tr.updates >= k)
        n = tr.updates
        ref = fresh()
        for x, y in zip(windows[:n], targets[:n]):
            ref.learn_sequence(x, y)
        assert tr.net.parameters().tobytes() == ref.net.parameters().tobytes()
        sa, sb = tr._upd._snapshot(), ref._upd._snapshot()
        assert repr(sa["counters"]) == repr(sb["counters"])    # (NaN before any update)
        assert sa["m1"].tobytes() == sb["m1"].tobytes()
        assert sa["m2"].tobytes() == sb["m2"].tobytes()
        hits += 0 < n < len(windows)
        tr.learn_sequence(windows[0], targets[0])     # nothing left locked
    assert hits >= 1, "no fit was interrupted"
    record("SequenceTrainer.fit interrupted by SIGINT, weights whole", hits)
