"""Threads: different states step in parallel (GIL released) with exactly the sequential
results; one state used by two threads at once raises RuntimeError instead of racing and
stays consistent; parameters cannot be replaced while a step is in flight."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import _core

from conftest import make_net
from _figures import record

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def run_threads(targets):
    """Start one thread per callable, released together by a barrier; return exceptions."""
    barrier = threading.Barrier(len(targets))
    errors = [None] * len(targets)

    def wrap(i, fn):
        try:
            barrier.wait()
            fn()
        except BaseException as e:  # reported to the main thread
            errors[i] = e

    threads = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    return errors


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_separate_states_in_parallel_equal_sequential(cell):
    N, D, H, L, T = 4, 8, 256, 2, 40
    net = make_net(cell, D, H, L, output_size=3, dtype="float64", seed=3)
    rng = np.random.default_rng(0)
    Xs = [rng.standard_normal((T, D)) for _ in range(N)]
    # sequential results first
    expect = []
    for i in range(N):
        s = net.new_state()
        ys = [net.step(Xs[i][t], s) for t in range(T)]
        Y2 = net.run(Xs[i][::-1].copy(), s)
        expect.append((np.stack(ys), Y2, s))
    for _ in range(3):
        states = [net.new_state() for _ in range(N)]
        got = [None] * N

        def work(i):
            ys = [net.step(Xs[i][t], states[i]) for t in range(T)]
            Y2 = net.run(Xs[i][::-1].copy(), states[i])
            got[i] = (np.stack(ys), Y2)

        errors = run_threads([lambda i=i: work(i) for i in range(N)])
        assert errors == [None] * N
        for i in range(N):
            assert np.array_equal(got[i][0], expect[i][0])
            assert np.array_equal(got[i][1], expect[i][1])
            assert np.array_equal(states[i].h, expect[i][2].h)
            if cell == "lstm":
                assert np.array_equal(states[i].c, expect[i][2].c)


def test_separate_batches_in_parallel_equal_sequential():
    N, D, H, n = 3, 4, 256, 6
    net = sr.LSTM(D, H, 2, dtype="float64", seed=4)
    rng = np.random.default_rng(1)
    Xs = [rng.standard_normal((10, n, D)) for _ in range(N)]

    def go(b, X):
        ys = []
        for t in range(X.shape[0]):
            ys.append(net.step_many(X[t], b) if t % 2 == 0 else
                      net.step_many(X[t][:3], b, index=[5, 0, 2]))
        return ys

    expect = []
    for i in range(N):
        b = net.new_states(n)
        expect.append((go(b, Xs[i]), b))
    batches = [net.new_states(n) for _ in range(N)]
    got = [None] * N

    def work(i):
        got[i] = go(batches[i], Xs[i])

    errors = run_threads([lambda i=i: work(i) for i in range(N)])
    assert errors == [None] * N
    for i in range(N):
        for a, b in zip(got[i], expect[i][0]):
            assert np.array_equal(a, b)
        assert np.array_equal(batches[i].h, expect[i][1].h)
        assert np.array_equal(batches[i].c, expect[i][1].c)


class Gated:
    """``fn()`` in a thread, stopped inside its first BLAS call of ``net`` (the C core's
    test gate: the thread waits there without the GIL until ``finish()``). So a C call is
    provably in flight for as long as the test needs: no timing, no retry-until-seen.
    The gate is at the start of every matrix product (own kernel or BLAS, srnn_blas.probe),
    so any size stops there."""

    def __init__(self, net, fn):
        self.net = net
        self.result = {}
        net._gated(True)
        _core._gate_arm()

        def run():
            try:
                self.result["value"] = fn()
            except BaseException as e:   # reported by finish()
                self.result["error"] = e
        self.t = threading.Thread(target=run)
        self.t.start()
        while _core._gate_state() != 2:
            assert self.t.is_alive(), f"the call never reached the gate: {self.result}"
            time.sleep(0.0002)           # waiting for an event; nothing depends on its length

    def finish(self):
        _core._gate_release()
        self.t.join(60)
        assert not self.t.is_alive()
        self.net._gated(False)
        assert _core._gate_state() == 3, "the gated call gave up waiting"
        if "error" in self.result:
            raise self.result["error"]
        return self.result["value"]


def test_gil_released_during_run():
    """While one thread is inside net.run (stopped in C at the gate), this thread executes
    Python: impossible if the run held the GIL (the gate would never be seen)."""
    net = sr.LSTM(16, 512, 3, dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((5, 16))
    expect = net.run(X, net.new_state())
    s = net.new_state()
    g = Gated(net, lambda: net.run(X, s))
    work = sum(i * i for i in range(10000))      # Python runs while the run is in C
    assert _core._gate_state() == 2                # ... and the run is still inside
    assert work == 333283335000
    assert np.array_equal(g.finish(), expect)


def _replay(net, X, s0, k):
    """k sequential runs of X from a copy of s0."""
    s = s0.copy()
    for _ in range(k):
        net.run(X, s)
    return s


def test_same_state_two_threads_raises_and_stays_consistent():
    net = sr.LSTM(16, 512, 3, dtype="float64", seed=5)
    X = np.random.default_rng(2).standard_normal((20, 16)) * 0.5
    s = net.new_state()
    s0 = s.copy()
    # deterministic meeting: a run of s in flight, a second run of s from this thread
    g = Gated(net, lambda: net.run(X, s))
    with pytest.raises(RuntimeError, match="thread"):
        net.run(X, s)
    with pytest.raises(RuntimeError, match="thread"):
        net.step(X[0], s)
    g.finish()
    ref = _replay(net, X, s0, 1)
    assert np.array_equal(s.h, ref.h) and np.array_equal(s.c, ref.c)
    # free-running: whatever the interleaving, the state is k whole runs
    ok = [0, 0]
    busy_errors = [0]
    lock = threading.Lock()

    def hammer(i):
        try:
            net.run(X, s)
        except RuntimeError as e:
            assert "thread" in str(e)
            with lock:
                busy_errors[0] += 1
            return
        with lock:
            ok[i] += 1

    tries = 5
    for _ in range(tries):
        errors = run_threads([lambda: hammer(0), lambda: hammer(1)])
        assert errors == [None, None]
    k = sum(ok)
    assert k >= tries  # a refusal means the other call of that try was running: it succeeded
    assert k + busy_errors[0] == 2 * tries
    ref = _replay(net, X, s0, 1 + k)
    assert np.array_equal(s.h, ref.h) and np.array_equal(s.c, ref.c)


@pytest.mark.parametrize("locked", [False, True])
def test_same_state_many_small_steps_stays_consistent(locked):
    """Two threads stepping one state with the same x: the final state is exactly as many
    whole steps as calls succeeded, whatever the interleaving. Taking the network's lock
    around each step (the blocking way) makes every call succeed."""
    net = sr.GRU(8, 256, 2, dtype="float64", seed=6)
    x = np.linspace(-1, 1, 8)
    s = net.new_state()
    s0 = s.copy()
    counts = [0, 0]
    fails = [0, 0]
    steps = 300

    def worker(i):
        for _ in range(steps):
            try:
                if locked:
                    with net.lock:
                        net.step(x, s)
                else:
                    net.step(x, s)
                counts[i] += 1
            except RuntimeError:
                fails[i] += 1

    errors = run_threads([lambda: worker(0), lambda: worker(1)])
    assert errors == [None, None]
    k = sum(counts)
    assert k + sum(fails) == 2 * steps and k >= 1
    if locked:
        assert k == 2 * steps
    ref = s0.copy()
    for _ in range(k):
        net.step(x, ref)
    assert np.array_equal(s.h, ref.h)


def test_batch_view_shares_the_guard():
    """batch[i] in one thread while the batch itself is stepped in another (either way
    round): the second raises, and both end as the one call that ran."""
    net = sr.LSTM(8, 512, 3, dtype="float64", seed=7)
    n = 64
    X = np.random.default_rng(3).standard_normal((n, 8))
    b = net.new_states(n)
    view = b[0]
    g = Gated(net, lambda: net.step_many(X, b))
    with pytest.raises(RuntimeError, match="thread"):
        net.run(X[:10], view)
    with pytest.raises(RuntimeError, match="thread"):
        view.h
    Y = g.finish()
    ref = net.new_states(n)
    assert np.array_equal(Y, net.step_many(X, ref))
    assert np.array_equal(b.h, ref.h) and np.array_equal(b.c, ref.c)
    # the other way round: the view's run in flight, the batch refused
    g = Gated(net, lambda: net.run(X[:10], view))
    with pytest.raises(RuntimeError, match="thread"):
        net.step_many(X, b)
    with pytest.raises(RuntimeError, match="thread"):
        b.copy()
    g.finish()
    net.run(X[:10], ref[0])
    assert np.array_equal(b.h, ref.h) and np.array_equal(b.c, ref.c)


def test_reset_while_running_raises():
    net = sr.LSTM(16, 512, 3, dtype="float64", seed=8)
    X = np.random.default_rng(4).standard_normal((30, 16))
    s = net.new_state()
    g = Gated(net, lambda: net.run(X, s))
    with pytest.raises(RuntimeError, match="thread"):
        s.reset()
    g.finish()
    # the run completed undisturbed: the state is one whole run from zeros
    ref = net.new_state()
    net.run(X, ref)
    assert np.array_equal(s.h, ref.h) and np.array_equal(s.c, ref.c)


@pytest.mark.parametrize("mode", ["run", "step_many"])
def test_load_state_dict_during_run_raises(mode):
    net = sr.LSTM(16, 512, 3, output_size=2, dtype="float64", seed=9)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 16))
    sd_same = net.state_dict()
    sd_new = {k: v * 0.5 for k, v in sd_same.items()}
    params0 = net.parameters().copy()
    # what the call must compute: the old parameters throughout
    if mode == "run":
        expect = net.run(X, net.new_state())
        call = lambda: net.run(X, net.new_state())  # noqa: E731
    else:
        Xm = rng.standard_normal((40, 16))
        expect = net.step_many(Xm, net.new_states(40))
        call = lambda: net.step_many(Xm, net.new_states(40))  # noqa: E731
    g = Gated(net, call)
    for sd in (sd_same, sd_new):
        with pytest.raises(RuntimeError, match="thread"):
            net.load_state_dict(sd)
        assert net.parameters().tobytes() == params0.tobytes()
    assert np.array_equal(g.finish(), expect)  # computed with the old parameters only
    net.load_state_dict(sd_new)  # works once nothing is in flight
    assert np.array_equal(net.layers[0].weight_ih, sd_new["weight_ih_l0"])


# ---------------------------------------------------------------------- trainers
# Rule (documented in RELIABILITY.md): a trainer call (learn_one, learn_many, advance, observe)
# takes its network exclusively, steps are shared readers; whoever finds the other side
# in flight raises RuntimeError at once (no waiting), so no step ever reads half-updated
# weights. Two threads on one trainer share its state's guard: the second raises.
THREADS_USED = {"max": 0}


def test_trainer_update_and_step_refuse_each_other():
    """Deterministic meetings: a trainer call stopped inside C refuses a run of its network
    (and a run stopped inside C refuses a trainer call); nothing changes for the refused
    side, and the call in flight ends exactly as it would alone."""
    net = sr.LSTM(16, 512, output_size=2, dtype="float64", seed=13)
    tr = sr.OnlineTrainer(net, optimizer=sr.SGD(0.05), k1=1, k2=4)
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((3, 16)), rng.standard_normal((3, 2))
    twin_net = sr.LSTM(16, 512, output_size=2, dtype="float64", seed=13)
    twin = sr.OnlineTrainer(twin_net, optimizer=sr.SGD(0.05), k1=1, k2=4)
    s = net.new_state()
    g = Gated(net, lambda: tr.learn_many(X, Y))
    with pytest.raises(RuntimeError, match="updated by a trainer"):
        net.run(X, s)
    assert not s.h.any()
    assert np.array_equal(g.finish(), twin.learn_many(X, Y))
    g = Gated(net, lambda: net.run(X, s))
    with pytest.raises(RuntimeError, match="stepping the network"):
        tr.learn_many(X, Y)
    g.finish()
    assert sr.dumps(tr) == sr.dumps(twin)


def test_trainer_updates_never_meet_steps_on_the_same_network():
    """A trainer thread makes 15 learn_many calls (retrying refused ones) while 6 threads
    make 25 runs each of the same network (refused ones are counted, not retried). Every
    finished run equals a run with one of the recorded weight versions (never a mixture),
    and the trainer equals a replay of its 15 calls. Counts, not time, end every loop."""
    net = sr.LSTM(6, 128, output_size=2, dtype="float64", seed=10)
    tr = sr.OnlineTrainer(net, optimizer=sr.SGD(0.05), k1=1, k2=4)
    rng = np.random.default_rng(7)
    Xt = rng.standard_normal((40, 6))
    Yt = rng.standard_normal((40, 2))
    Xr = rng.standard_normal((30, 6))
    versions = [net.parameters().copy()]      # every weight version, in order
    results = []                              # output of every finished reader run
    counts = {"learn_ok": 0, "learn_refused": 0, "run_ok": 0, "run_refused": 0}
    lock = threading.Lock()
    n_learn, n_runs = 15, 25

    def trainer_thread():
        while counts["learn_ok"] < n_learn:
            try:
                tr.learn_many(Xt, Yt)
            except RuntimeError as e:
                assert "stepping the network" in str(e)
                with lock:
                    counts["learn_refused"] += 1
                continue
            versions.append(net.parameters().copy())   # only this thread writes
            with lock:
                counts["learn_ok"] += 1

    def reader_thread():
        for _ in range(n_runs):
            s = net.new_state()
            try:
                Y = net.run(Xr, s)
            except RuntimeError as e:
                assert "updated by a trainer" in str(e)
                with lock:
                    counts["run_refused"] += 1
                continue
            with lock:
                counts["run_ok"] += 1
                results.append(Y)

    n_readers = 6
    THREADS_USED["max"] = max(THREADS_USED["max"], n_readers + 1)
    errors = run_threads([trainer_thread] + [reader_thread] * n_readers)
    assert errors == [None] * (n_readers + 1)
    assert counts["learn_ok"] == n_learn
    assert counts["run_ok"] + counts["run_refused"] == n_readers * n_runs
    # every finished run saw one whole weight version, never a mixture
    refs = []
    for p in versions:
        ref_net = sr.LSTM(6, 128, output_size=2, dtype="float64")
        ref_net.parameters()[...] = p
        refs.append(ref_net.run(Xr, ref_net.new_state()))
    for Y in results:
        assert any(np.array_equal(Y, R) for R in refs)
    # and the trainer did exactly learn_ok whole calls
    ref_net = sr.LSTM(6, 128, output_size=2, dtype="float64", seed=10)
    ref_tr = sr.OnlineTrainer(ref_net, optimizer=sr.SGD(0.05), k1=1, k2=4)
    for _ in range(n_learn):
        ref_tr.learn_many(Xt, Yt)
    assert ref_net.parameters().tobytes() == net.parameters().tobytes()
    assert tr.steps == 40 * n_learn
    record("weight versions / reader runs refused / trainer calls refused (stress)",
           [len(versions), counts["run_refused"], counts["learn_refused"]])


@pytest.mark.parametrize("locked", [False, True])
def test_two_threads_on_one_trainer_raise_and_stay_whole(locked):
    """Four threads share one trainer through learn_many and learn_one. Every step gets the
    same (x, y), so any order of whole steps gives the same numbers: the trainer must equal
    a replay of exactly ``tr.steps`` learn_one calls (a torn or lost step would differ).
    With ``tr.lock`` taken around each call (the blocking way) every call runs."""
    net = sr.GRU(4, 96, output_size=1, dtype="float64", seed=11)
    tr = sr.OnlineTrainer(net, optimizer=sr.Adam(1e-3), k1=3, k2=6)
    x0, y0 = np.array([0.3, -0.2, 0.9, 0.1]), np.array([0.4])
    X, Y = np.tile(x0, (50, 1)), np.tile(y0, (50, 1))
    ok, refused = [0], [0]
    lock = threading.Lock()

    def one_call(i, r):
        if (i + r) % 2:
            tr.learn_many(X, Y)
        else:
            for _ in range(25):
                tr.learn_one(x0, y0)

    def hammer(i):
        for r in range(20):
            try:
                if locked:
                    with tr.lock:
                        one_call(i, r)
                else:
                    one_call(i, r)
            except RuntimeError as e:
                assert "thread" in str(e)
                with lock:
                    refused[0] += 1
                continue
            with lock:
                ok[0] += 1

    THREADS_USED["max"] = max(THREADS_USED["max"], 4)
    assert run_threads([lambda i=i: hammer(i) for i in range(4)]) == [None] * 4
    assert ok[0] + refused[0] == 80 and tr.steps >= 1
    if locked:
        assert ok[0] == 80 and tr.steps == 40 * 50 + 40 * 25
    ref_net = sr.GRU(4, 96, output_size=1, dtype="float64", seed=11)
    ref = sr.OnlineTrainer(ref_net, optimizer=sr.Adam(1e-3), k1=3, k2=6)
    for _ in range(tr.steps):
        ref.learn_one(x0, y0)
    assert ref_net.parameters().tobytes() == net.parameters().tobytes()
    sa, sb = tr._snapshot(), ref._snapshot()
    assert sa["counters"] == sb["counters"]
    for k in ("h", "ring", "tags", "m1", "m2"):
        assert sa[k].tobytes() == sb[k].tobytes(), k


def test_many_threads_separate_states_small_steps():
    """16 threads stepping their own states one small step at a time (heavy GIL switching)
    give exactly the sequential numbers."""
    net = sr.LSTM(3, 16, output_size=1, dtype="float64", seed=12)
    N, T = 16, 400
    Xs = np.random.default_rng(9).standard_normal((N, T, 3))
    expect = []
    for i in range(N):
        s = net.new_state()
        expect.append(np.stack([net.step(Xs[i, t], s) for t in range(T)]))
    got = [None] * N

    def work(i):
        s = net.new_state()
        got[i] = np.stack([net.step(Xs[i, t], s) for t in range(T)])

    THREADS_USED["max"] = max(THREADS_USED["max"], N)
    assert run_threads([lambda i=i: work(i) for i in range(N)]) == [None] * N
    for i in range(N):
        assert np.array_equal(got[i], expect[i])
    record("threads at once in the thread tests (max)", THREADS_USED["max"])
