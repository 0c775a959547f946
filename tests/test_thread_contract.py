"""The one thread contract (RELIABILITY.md, "One thread contract"): every operation on a
State, StateBatch, network, OnlineTrainer, SequenceTrainer or Forecaster is a reader or a
writer of the resources it touches; an operation that meets a conflicting one in flight in
another thread raises RuntimeError at once and changes nothing, any other one runs and
sees a consistent snapshot. Every pair (operation in flight x operation in another thread)
is driven deterministically: the first operation is held in flight by the BLAS test gate
(a real C call stopped inside BLAS without the GIL, ``_core._gate_arm``), by a generator
that stops ``Forecaster.learn_many`` between two values, or by ``_core._holding`` (the very
hold that copies, pickles, saves and load_state_dict take). No result depends on timing.
"""
from __future__ import annotations

import copy
import io
import os
import pickle
import re
import threading
import time

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import _core

from _figures import long_run, record
from conftest import require_file

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

# A gated network stops at the start of its next matrix product (own kernel or BLAS,
# srnn_blas.probe), whatever its size; these sizes are the ones the contract was written with.
D, H, HF = 8, 400, 300
_rng = np.random.default_rng(0)
X1 = _rng.standard_normal(D)
XA = _rng.standard_normal((4, D))
XB = _rng.standard_normal((8, D))
Y1 = _rng.standard_normal(2)
XT = _rng.standard_normal((3, D))
YT = _rng.standard_normal((3, 2))
XW = _rng.standard_normal((5, D))
YW = _rng.standard_normal((5, 2))
FVALS = [1.0, 2.0, 1.5, 3.0, 2.2, 2.9]


class World:
    """Every kind of object, sharing one network where they can: net (GRU with a head),
    states s, s2, a batch b, an OnlineTrainer and a SequenceTrainer on net, and a
    Forecaster with its own network. Deterministic (seeded), so two worlds are equal."""

    def __init__(self):
        self.net = sr.GRU(D, H, output_size=2, dtype="float64", seed=1)
        self.s = self.net.new_state()
        self.s2 = self.net.new_state()
        self.b = self.net.new_states(8)
        self.tr = sr.OnlineTrainer(self.net, optimizer=sr.SGD(0.01), k1=1, k2=3)
        self.seq = sr.SequenceTrainer(self.net, optimizer=sr.SGD(0.01))
        self.sd = {k: v * 0.5 for k, v in self.net.state_dict().items()}
        self.net.run(XA, self.s)
        self.net.step_many(XB, self.b)
        self.tr.learn_many(XT, YT)
        self.f = sr.Forecaster(hidden_size=HF, seed=2, dtype="float64")
        self.f.learn_many(FVALS[:4])

    def live(self):
        """The live arrays (captured before anything is in flight: reading them later
        goes around the guards, so the test can see whether anything changed)."""
        fs = self.f.trainer().state
        return [self.s.h, self.s2.h, self.b.h, self.net.parameters(), self.tr.state.h,
                self.f.net.parameters(), fs.h, fs.c]

    def fingerprint(self):
        """Everything every object holds, as bytes (after all calls have finished)."""
        st = self.f._streams[None]
        py = (st.sy.pack(), st.sd.pack(), st.sx.pack(), st.u, st.last_y, st.o, st.n_seen,
              st.n_obs, st.n_missing, self.f.keys())
        return [x.tobytes() for x in self.live()] + [
            pickle.dumps(self.tr._snapshot()), pickle.dumps(self.seq._upd._snapshot()),
            pickle.dumps(self.f.trainer()._snapshot()), pickle.dumps(py)]


def canon(r):
    """A comparable value of an operation's result."""
    if r is None or isinstance(r, (bytes, int, float, str)):
        return r
    if isinstance(r, np.ndarray):
        return (r.dtype.str, r.shape, r.tobytes())
    if isinstance(r, (sr.State, sr.StateBatch, sr.OnlineTrainer, sr.SequenceTrainer,
                      sr.LSTM, sr.GRU, sr.RNN, sr.Forecaster)):
        return (type(r).__name__, sr.dumps(r))
    if isinstance(r, dict):
        return sorted((k, canon(v)) for k, v in r.items())
    if isinstance(r, (list, tuple)):
        return [canon(v) for v in r]
    raise TypeError(type(r))


# ------------------------------------------------------------------ operations in flight
# (name, how, call, footprint): how is "gate" (net or f.net gated: the call stops inside
# its first BLAS call), "hold" (call returns a context holding the objects) or "between"
# (Forecaster.learn_many stopped between two values by its own input generator).
# Footprints: resource -> "R" (read, shared) or "W" (write, exclusive). Resources: s, s2,
# b (the batch and its views), net (the weights), trs (the trainer's state, ring, moments
# and counters), f (the forecaster's own fields), fs (its stream's trainer), fn (its net).
A_OPS = [
    ("net.run(X, s)", "gate", lambda w: w.net.run(XA, w.s), {"s": "W", "net": "R"}),
    ("net.step_many(X, b)", "gate", lambda w: w.net.step_many(XB, w.b), {"b": "W", "net": "R"}),
    ("tr.learn_one", "gate", lambda w: w.tr.learn_one(X1, Y1), {"trs": "W", "net": "W"}),
    ("tr.learn_many", "gate", lambda w: w.tr.learn_many(XT, YT), {"trs": "W", "net": "W"}),
    ("tr.predict_one", "gate", lambda w: w.tr.predict_one(X1), {"trs": "R", "net": "R"}),
    ("seq.learn_sequence", "gate", lambda w: w.seq.learn_sequence(XW, YW), {"net": "W"}),
    ("seq.predict", "gate", lambda w: w.seq.predict(XW), {"net": "W"}),
    ("f.learn_one", "gate", lambda w: w.f.learn_one(2.5), {"f": "W", "fs": "W", "fn": "W"}),
    ("f.forecast(3) (in its rollout)", "gate", lambda w: w.f.forecast(3),
     {"f": "R", "fn": "R"}),
    ("f.learn_many (between values)", "between", None, {"f": "W"}),
    ("load_state_dict", "hold", lambda w: _core._holding(w.net, write=True), {"net": "W"}),
    ("copy/pickle/save of s", "hold", lambda w: _core._holding(w.s), {"s": "R"}),
    ("copy/pickle/save of b", "hold", lambda w: _core._holding(w.b), {"b": "R"}),
    ("state_dict/copy/pickle/save of net", "hold", lambda w: _core._holding(w.net),
     {"net": "R"}),
    ("pickle/copy/save of tr", "hold", lambda w: _core._holding(w.tr), {"trs": "R", "net": "R"}),
    ("sr.save(f)", "hold", lambda w: w.f._reading(inner=True), {"f": "R", "fs": "R", "fn": "R"}),
]

# ------------------------------------------------------------------ concurrent operations
B_OPS = [
    ("net.step(x, s)", lambda w: w.net.step(X1, w.s), {"s": "W", "net": "R"}),
    ("net.run(X, s2)", lambda w: w.net.run(XA, w.s2), {"s2": "W", "net": "R"}),
    ("s.reset()", lambda w: w.s.reset(), {"s": "W"}),
    ("s.copy()", lambda w: w.s.copy(), {"s": "R"}),
    ("copy.copy(s)", lambda w: copy.copy(w.s), {"s": "R"}),
    ("copy.deepcopy(s)", lambda w: copy.deepcopy(w.s), {"s": "R"}),
    ("pickle.dumps(s)", lambda w: pickle.dumps(w.s), {"s": "R"}),
    ("s.h", lambda w: w.s.h.copy(), {"s": "R"}),
    ("sr.dumps(s)", lambda w: sr.dumps(w.s), {"s": "R"}),
    ("net.step_many(X, b)", lambda w: w.net.step_many(XB, w.b), {"b": "W", "net": "R"}),
    ("b.reset([1])", lambda w: w.b.reset([1]), {"b": "W"}),
    ("b.copy()", lambda w: w.b.copy(), {"b": "R"}),
    ("pickle.dumps(b)", lambda w: pickle.dumps(w.b), {"b": "R"}),
    ("b[0].copy()", lambda w: w.b[0].copy(), {"b": "R"}),
    ("net.step(x, b[1])", lambda w: w.net.step(X1, w.b[1]), {"b": "W", "net": "R"}),
    ("b.h", lambda w: w.b.h.copy(), {"b": "R"}),
    ("sr.dumps(b)", lambda w: sr.dumps(w.b), {"b": "R"}),
    ("net.state_dict()", lambda w: w.net.state_dict(), {"net": "R"}),
    ("copy.deepcopy(net)", lambda w: copy.deepcopy(w.net), {"net": "R"}),
    ("pickle.dumps(net)", lambda w: pickle.dumps(w.net), {"net": "R"}),
    ("sr.dumps(net)", lambda w: sr.dumps(w.net), {"net": "R"}),
    ("net.load_state_dict", lambda w: w.net.load_state_dict(w.sd), {"net": "W"}),
    ("tr.learn_one", lambda w: w.tr.learn_one(X1, Y1), {"trs": "W", "net": "W"}),
    ("tr.learn_many", lambda w: w.tr.learn_many(XT, YT), {"trs": "W", "net": "W"}),
    ("tr.advance+observe", lambda w: (w.tr.advance(X1), w.tr.observe(Y1)),
     {"trs": "W", "net": "W"}),
    ("tr.predict_one", lambda w: w.tr.predict_one(X1), {"trs": "R", "net": "R"}),
    ("tr.reset()", lambda w: w.tr.reset(), {"trs": "W"}),
    ("tr.stats()", lambda w: w.tr.stats(), {"trs": "R"}),
    ("tr.steps", lambda w: w.tr.steps, {"trs": "R"}),
    ("tr.state.copy()", lambda w: w.tr.state.copy(), {"trs": "R"}),
    ("pickle.dumps(tr)", lambda w: pickle.dumps(w.tr), {"trs": "R", "net": "R"}),
    ("copy.deepcopy(tr)", lambda w: copy.deepcopy(w.tr), {"trs": "R", "net": "R"}),
    ("sr.dumps(tr)", lambda w: sr.dumps(w.tr), {"trs": "R", "net": "R"}),
    ("seq.learn_sequence", lambda w: w.seq.learn_sequence(XW, YW), {"net": "W"}),
    ("seq.predict", lambda w: w.seq.predict(XW), {"net": "W"}),
    ("sr.dumps(seq)", lambda w: sr.dumps(w.seq), {"net": "R"}),
    ("f.learn_one", lambda w: w.f.learn_one(2.5), {"f": "W", "fs": "W", "fn": "W"}),
    ("f.forecast(3)", lambda w: w.f.forecast(3), {"f": "R", "fs": "R", "fn": "R"}),
    ("f.stats()", lambda w: w.f.stats(), {"f": "R", "fs": "R"}),
    ("f.keys()", lambda w: w.f.keys(), {"f": "R"}),
    ("sr.dumps(f)", lambda w: sr.dumps(w.f), {"f": "R", "fs": "R", "fn": "R"}),
    ("pickle.dumps(f)", lambda w: pickle.dumps(w.f), {"f": "R", "fs": "R", "fn": "R"}),
    ("copy.deepcopy(f)", lambda w: copy.deepcopy(w.f), {"f": "R", "fs": "R", "fn": "R"}),
    ("f.net.state_dict()", lambda w: w.f.net.state_dict(), {"fn": "R"}),
]


def conflict(fa, fb):
    """The rule: two operations conflict when they touch one resource and one writes it."""
    return any(r in fb and "W" in (fa[r], fb[r]) for r in fa)


class InFlight:
    """Starts operation A and returns once it is provably in flight; finish() completes it."""

    def __init__(self, w, name, how, call):
        self.w, self.how = w, how
        self.error = None
        self.value = None
        self.ctx = None
        if how == "hold":
            self.ctx = call(w)
            self.ctx.__enter__()
            return
        if how == "between":
            self.inside, self.go = threading.Event(), threading.Event()

            # learn_many checks every value before the first is learned, so the pause
            # comes from the per-value learning step: after the first of the two values
            f = w.f
            learned = f._learn_checked

            def pausing(*args, **kwargs):
                out = learned(*args, **kwargs)
                if not self.inside.is_set():
                    self.inside.set()      # learn_many is in flight between two values
                    assert self.go.wait(60)
                return out
            f._learn_checked = pausing     # type: ignore[method-assign]
            target = lambda: f.learn_many([FVALS[4], FVALS[5]])  # noqa: E731
        else:
            self.net = w.f.net if name.startswith("f.") else w.net
            self.net._gated(True)
            _core._gate_arm()
            target = lambda: call(w)  # noqa: E731

        def run():
            try:
                self.value = target()
            except BaseException as e:  # reported by finish()
                self.error = e
        self.t = threading.Thread(target=run)
        self.t.start()
        if how == "between":
            assert self.inside.wait(60)
        else:
            while _core._gate_state() != 2:          # until the call waits at the gate
                assert self.t.is_alive(), f"the call never reached the gate: {self.error!r}"
                time.sleep(0.0002)

    def finish(self):
        if self.how == "hold":
            self.ctx.__exit__(None, None, None)
            return
        if self.how == "between":
            self.go.set()
        else:
            _core._gate_release()
        self.t.join(60)
        assert not self.t.is_alive()
        if self.how == "between":
            del self.w.f._learn_checked    # the class's method again
        if self.how == "gate":
            assert _core._gate_state() == 3
            self.net._gated(False)
        assert self.error is None, self.error


def apply_a(w, name, how, call, part):
    """What A does to a world, for the reference: 'before' (what it had finished when B
    ran), 'rest' (the remainder)."""
    if how == "hold":
        return
    if how == "between":
        if part == "before":
            w.f.learn_many([FVALS[4]])
        else:
            w.f.learn_many([FVALS[5]])
        return
    if part == "rest":
        return call(w)


RESULTS = {}


@pytest.mark.parametrize("a", A_OPS, ids=[a[0] for a in A_OPS])
def test_every_pair(a):
    name, how, call, fa = a
    only_a = World()                      # the world after A alone
    apply_a(only_a, name, how, call, "before")
    a_value = canon(apply_a(only_a, name, how, call, "rest"))   # what A returns alone
    only_a = only_a.fingerprint()
    refused = ok = 0
    for bname, bcall, fb in B_OPS:
        w = World()
        live = w.live()
        flight = InFlight(w, name, how, call)
        try:
            before = [x.tobytes() for x in live]
            try:
                got = ("ok", canon(bcall(w)))
            except RuntimeError as e:
                got = ("refused", str(e))
            after = [x.tobytes() for x in live]
        finally:
            flight.finish()
        assert canon(flight.value) == a_value, f"{name} returned another value during {bname}"
        expect = "refused" if conflict(fa, fb) else "ok"
        RESULTS[(name, bname)] = got[0]
        assert got[0] == expect, (name, bname, got)
        if got[0] == "refused":
            refused += 1
            assert "thread" in got[1], got[1]
            assert before == after, f"{bname} changed something before refusing"
            # and once A finished, everything is as after A alone
            assert w.fingerprint() == only_a, (name, bname)
        else:
            ok += 1
            # B saw what it would see with A not started (A had changed nothing B
            # touches), and the world ends as after A's finished part, B, then A's rest
            ref = World()
            apply_a(ref, name, how, call, "before")
            assert got[1] == canon(bcall(ref)), f"{bname} during {name}: not consistent"
            apply_a(ref, name, how, call, "rest")
            assert w.fingerprint() == ref.fingerprint(), (name, bname)
    record(f"thread contract pairs with {name} in flight (refused/ran)", [refused, ok])


def _table_from_doc():
    """The operation table of RELIABILITY.md's "One thread contract" section."""
    path = os.path.join(os.path.dirname(__file__), "..", "RELIABILITY.md")
    require_file(path, "RELIABILITY.md")        # skips only in the installed-wheel run
    text = open(path, encoding="utf-8").read()
    sec = text.split("## One thread contract", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in sec.splitlines():
        m = re.match(r"\| `([^`]+)` \| (.+) \|$", line.strip())
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_documented_footprints_are_the_tested_ones():
    """RELIABILITY.md lists, per operation, what it reads (R) and writes (W); the pair test
    above derives every expected result from the same footprints."""
    doc = _table_from_doc()
    fps = {n: fp for n, _, _, fp in A_OPS}
    fps.update({n: fp for n, _, fp in B_OPS})
    for n, fp in fps.items():
        assert n in doc, f"{n} is not in RELIABILITY.md's table"
        cells = dict(re.findall(r"(\w+):([RW])", doc[n]))
        assert cells == fp, (n, doc[n], fp)


# ------------------------------------------------------------------ blocking mode
def test_threadsafe_forecaster_waits_instead_of_raising():
    """threadsafe=True: a forecast from another thread while learn_one is stopped inside C
    waits (no RuntimeError) and sees the forecaster after that learn_one."""
    f = sr.Forecaster(hidden_size=HF, seed=2, dtype="float64", threadsafe=True)
    f.learn_many(FVALS[:4])
    ref = sr.Forecaster(hidden_size=HF, seed=2, dtype="float64")
    ref.learn_many(FVALS[:4])
    ref.learn_one(2.5)
    f.net._gated(True)
    _core._gate_arm()
    errors = []
    out = {}
    started = threading.Event()

    def learner():
        try:
            f.learn_one(2.5)
        except BaseException as e:
            errors.append(e)

    def forecaster():
        started.set()
        try:
            out["y"] = f.forecast(3)
        except BaseException as e:
            errors.append(e)

    t1 = threading.Thread(target=learner)
    t1.start()
    while _core._gate_state() != 2:
        assert t1.is_alive()
        time.sleep(0.0002)
    t2 = threading.Thread(target=forecaster)
    t2.start()
    assert started.wait(60)
    _core._gate_release()
    t1.join(60)
    t2.join(60)
    f.net._gated(False)
    assert errors == []
    assert out["y"] == ref.forecast(3)      # it ran after the learn_one, not during it


def test_forecaster_pickle_and_deepcopy_continue_bit_for_bit():
    """A pickled or deep-copied Forecaster (taken in one read hold) continues exactly like
    the original, and gets a lock and guard of its own."""
    f = sr.Forecaster(hidden_size=8, seed=0, threadsafe=True)
    for v in (1.0, 2.0, 1.5, 3.0):
        f.learn_one(v, key="a")
        f.learn_one(-v, key=("tuple", 1))     # a key sr.save refuses: pickle keeps it
    for g in (pickle.loads(pickle.dumps(f)), copy.deepcopy(f)):
        assert g.lock is not f.lock and g._guard is not f._guard and g.threadsafe
        assert g.trainer("a").net is g.net and g.trainer(("tuple", 1)).net is g.net
        for k in ("a", ("tuple", 1)):
            g.learn_one(2.5, key=k)
        assert g.forecast(3, key="a") != f.forecast(3, key="a")
    h = pickle.loads(pickle.dumps(f))
    for k in ("a", ("tuple", 1)):
        f.learn_one(2.5, key=k)
        h.learn_one(2.5, key=k)
        assert f.forecast(3, key=k) == h.forecast(3, key=k)
    assert f.net.parameters().tobytes() == h.net.parameters().tobytes()


def test_raise_dont_wait_can_starve_but_the_lock_serves_everyone():
    """Without the lock a thread may find the other always in flight; with ``.lock``
    (network/trainer) or ``threadsafe=True`` (forecaster) every call runs: exact counts."""
    net = sr.LSTM(3, 16, output_size=1, dtype="float64", seed=3)
    tr = sr.OnlineTrainer(net, optimizer=sr.SGD(0.01), k1=1, k2=4)
    assert tr.lock is net.lock
    x, y = np.array([0.1, -0.2, 0.3]), np.array([0.5])
    n = 300
    barrier = threading.Barrier(3)
    errors = []

    def learner():
        try:
            barrier.wait()
            for _ in range(n):
                with tr.lock:
                    tr.learn_one(x, y)
        except BaseException as e:
            errors.append(e)

    snaps = []

    def saver():
        try:
            barrier.wait()
            for _ in range(n // 10):
                with tr.lock:
                    snaps.append(sr.dumps(tr))
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=learner), threading.Thread(target=learner),
          threading.Thread(target=saver)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert errors == [] and tr.steps == 2 * n and len(snaps) == n // 10
    ref_net = sr.LSTM(3, 16, output_size=1, dtype="float64", seed=3)
    ref = sr.OnlineTrainer(ref_net, optimizer=sr.SGD(0.01), k1=1, k2=4)
    for _ in range(2 * n):
        ref.learn_one(x, y)
    assert sr.dumps(ref) == sr.dumps(tr)

    f = sr.Forecaster(hidden_size=8, seed=0, threadsafe=True)
    vals = np.sin(np.arange(200) * 0.3)

    def feeder():
        try:
            for v in vals:
                f.learn_one(float(v))
        except BaseException as e:
            errors.append(e)

    fc = []

    def reader():
        try:
            for _ in range(100):
                fc.append(f.forecast(2))
                sr.dumps(f)
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=feeder), threading.Thread(target=reader)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert errors == [] and f.stats()["steps"] == 200 and len(fc) == 100


# ------------------------------------------------------------------ stress (no timing)
def test_snapshots_while_training_are_states_the_trainer_passed_through(tmp_path):
    """A trainer thread runs learn_many in small calls and records sr.dumps of the trainer
    after each call (keyed by its step count). Reader threads meanwhile take sr.dumps,
    pickle, copy.deepcopy, sr.save (to a file) and state copies; each that is not refused
    must be exactly the recorded trainer of its own step count (never a mixture), and every
    saved file loads."""
    net = sr.LSTM(4, 24, output_size=2, dtype="float64", seed=5)
    tr = sr.OnlineTrainer(net, optimizer=sr.Adam(1e-2), k1=2, k2=6)
    rng = np.random.default_rng(6)
    calls = 200 if long_run() else 60
    X = rng.standard_normal((calls, 5, 4))
    Y = rng.standard_normal((calls, 5, 2))
    recorded = {0: sr.dumps(tr)}
    done = threading.Event()
    got = {"dumps": [], "pickle": [], "deepcopy": [], "file": [], "state": []}
    counts = {"refused": 0}
    lock = threading.Lock()
    errors = []

    def trainer():
        try:
            for i in range(calls):
                while True:
                    try:
                        tr.learn_many(X[i], Y[i])
                        break
                    except RuntimeError:
                        with lock:
                            counts["refused"] += 1
                recorded[tr.steps] = sr.dumps(tr)      # this thread is the only writer
                time.sleep(0)        # a scheduling hint only: lets the readers in more often
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def reader(k):
        try:
            i = 0
            while not done.is_set():
                i += 1
                kind = ("dumps", "pickle", "deepcopy", "file", "state")[(i + k) % 5]
                try:
                    if kind == "dumps":
                        v = sr.dumps(tr)
                    elif kind == "pickle":
                        v = pickle.dumps(tr)
                    elif kind == "deepcopy":
                        v = copy.deepcopy(tr)
                    elif kind == "file":
                        p = tmp_path / f"r{k}-{i}.srnn"
                        sr.save(tr, p)
                        v = p
                    else:
                        v = (tr.state.copy(),)
                except RuntimeError:
                    with lock:
                        counts["refused"] += 1
                    continue
                with lock:
                    got[kind].append(v)
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=trainer)] + [threading.Thread(target=reader, args=(k,))
                                               for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    assert errors == []
    assert tr.steps == 5 * calls
    states = {}
    for steps, blob in recorded.items():
        states[steps] = sr.loads(blob).state.h.tobytes()
    n = 0
    for blob in got["dumps"]:
        loaded = sr.loads(blob)
        assert blob == recorded[loaded.steps]
        n += 1
    for blob in got["pickle"]:
        loaded = pickle.loads(blob)
        assert sr.dumps(loaded) == recorded[loaded.steps]
        n += 1
    for obj in got["deepcopy"]:
        assert sr.dumps(obj) == recorded[obj.steps]
        n += 1
    for p in got["file"]:
        loaded = sr.load(p)              # every file loads (its checksums hold)
        assert sr.dumps(loaded) == recorded[loaded.steps]
        n += 1
    for (st,) in got["state"]:
        assert st.h.tobytes() in states.values()
        n += 1
    record("snapshots taken while training, each a recorded trainer", n)
    record("calls refused in the snapshot stress test", counts["refused"])


def test_forecaster_saves_during_learn_many_all_load(tmp_path):
    """Saves of a Forecaster from another thread while learn_many runs: each one is refused
    or loads and equals the forecaster after exactly its own number of values (recorded
    from a sequential twin), never a mixture."""
    vals = [float(v) for v in np.sin(np.arange(400 if long_run() else 150) * 0.2) * 3]
    twin = sr.Forecaster(hidden_size=16, seed=1)
    recorded = {0: sr.dumps(twin)}
    for i, v in enumerate(vals):
        twin.learn_one(v)
        recorded[i + 1] = sr.dumps(twin)
    f = sr.Forecaster(hidden_size=16, seed=1)
    done = threading.Event()
    saved, errors = [], []
    refused = [0]

    def feeder():
        try:
            for k in range(0, len(vals), 2):     # learn_many and learn_one in turn
                for call in (lambda: f.learn_many(vals[k:k + 1]),
                             lambda: f.learn_one(vals[k + 1])):
                    while True:
                        try:
                            call()           # a refused call changed nothing: retry it
                            break
                        except RuntimeError:
                            refused[0] += 1
                time.sleep(0)        # a scheduling hint only: lets the saver in more often
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    def saver():
        i = 0
        try:
            while not done.is_set():
                i += 1
                p = tmp_path / f"f{i}.srnn"
                try:
                    sr.save(f, p)
                except RuntimeError:
                    refused[0] += 1
                    continue
                saved.append(p)
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=feeder), threading.Thread(target=saver)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    assert errors == []
    sr.save(f, tmp_path / "final.srnn")
    saved.append(tmp_path / "final.srnn")
    for p in saved:
        g = sr.load(p, sr.Forecaster)
        steps = g.stats()["steps"] if len(g) else 0
        assert sr.dumps(g) == recorded[steps]
    record("forecaster saves during learn_many, all loaded and whole", len(saved))
    record("forecaster calls refused in that test", refused[0])
