"""States, batches and trainers as a state machine against the NumPy reference.

1. Deterministic cases of step_many's matrix-matrix (gemm) path, which hypothesis draws reach
   only by chance: 16 or more streams, an unsorted index, 2 layers, every cell, both dtypes.
2. A hypothesis RuleBasedStateMachine: any interleaving of step, run, step_many (with and
   without index, through batch views too), reset, copy, pickle round trips and
   OnlineTrainer.learn_one keeps every object equal to a model kept with streamrnn.reference,
   checked after every rule.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize,
                                 invariant, rule)

import streamrnn as sr
from streamrnn import reference
from conftest import CELLS, DTYPES, assert_close, make_net, tol


def _ref_of(net):
    """The reference network with the same weights, computing in float64."""
    return reference.Net(net.cell, net.input_size, net.hidden_size, net.num_layers,
                         net.output_size, net.parameters().astype(np.float64))


def _ref_step_rows(ref, X, H, C, rows):
    """Reference of step_many: for each i, stream rows[i] steps with X[i] (in place on the
    float64 model arrays H, C (n, L, H)); returns Y (m, O|H)."""
    Y = np.empty((len(rows), ref.out_size))
    for i, s in enumerate(rows):
        y, h, c = ref.step(X[i], H[s], None if C is None else C[s])
        H[s] = h
        if C is not None:
            C[s] = c
        Y[i] = y
    return Y


# ------------------------------------------------------------------------ gemm path cases

@pytest.mark.parametrize("output_size", [None, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_step_many_gemm_path_with_unsorted_index(cell, dtype, output_size):
    """16 of 24 streams, in an unsorted order, 2 layers: the indexed gemm path (>= 8 streams)
    against per-stream reference steps, over three steps (the untouched streams too)."""
    net = make_net(cell, 3, 6, num_layers=2, output_size=output_size, dtype=dtype, seed=7)
    ref = _ref_of(net)
    n = 24
    rng = np.random.default_rng(1)
    b = net.new_states(n)
    b.h[...] = rng.uniform(-0.5, 0.5, b.h.shape)
    H = b.h.astype(np.float64)
    C = None
    if b.c is not None:
        b.c[...] = rng.uniform(-0.5, 0.5, b.c.shape)
        C = b.c.astype(np.float64)
    for step in range(3):
        idx = rng.permutation(n)[:16]
        assert not np.all(np.diff(idx) > 0)             # unsorted
        X = rng.normal(size=(16, 3)).astype(dtype)
        Y = net.step_many(X, b, index=idx)
        Yr = _ref_step_rows(ref, X.astype(np.float64), H, C, idx)
        assert_close(Y, Yr, dtype, f"step {step} outputs")
        assert_close(b.h, H, dtype, f"step {step} h")
        if C is not None:
            assert_close(b.c, C, dtype, f"step {step} c")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_step_many_gemm_path_all_streams(cell, dtype):
    """All of 17 streams without an index (gemm in place on the (n, L, H) arrays)."""
    net = make_net(cell, 2, 5, num_layers=2, output_size=2, dtype=dtype, seed=3)
    ref = _ref_of(net)
    n = 17
    rng = np.random.default_rng(2)
    b = net.new_states(n)
    H = b.h.astype(np.float64)
    C = None if b.c is None else b.c.astype(np.float64)
    for step in range(3):
        X = rng.normal(size=(n, 2)).astype(dtype)
        Y = net.step_many(X, b)
        Yr = _ref_step_rows(ref, X.astype(np.float64), H, C, range(n))
        assert_close(Y, Yr, dtype, f"step {step} outputs")
        assert_close(b.h, H, dtype, f"step {step} h")
        if C is not None:
            assert_close(b.c, C, dtype, f"step {step} c")


# ------------------------------------------------------------------------ state machine

# the same bound as tests/test_trainer_vs_reference.py before it measures amplification
TRAINER_RTOL = 1e-10


class StreamsMachine(RuleBasedStateMachine):
    """Objects of one network, each paired with its float64 reference model."""

    states = Bundle("states")
    batches = Bundle("batches")

    @initialize(cell=st.sampled_from(CELLS), dtype=st.sampled_from(DTYPES),
                layers=st.integers(1, 2), hidden=st.sampled_from([3, 5]),
                head=st.sampled_from([None, 2]), seed=st.integers(0, 2**16))
    def setup(self, cell, dtype, layers, hidden, head, seed):
        self.dtype = np.dtype(dtype)
        self.net = make_net(cell, 2, hidden, num_layers=layers, output_size=head, dtype=dtype,
                            seed=seed)
        self.ref = _ref_of(self.net)
        self.lstm = cell.startswith("lstm")
        self.objs = []          # (kind, obj, H, C): every live state/batch and its model
        self.rng = np.random.default_rng(seed)
        # an OnlineTrainer on its own copy of the network, in float64 (exactness), with the
        # reference trainer started from the same weights
        tnet = make_net(cell, 2, hidden, num_layers=layers, output_size=head,
                        dtype="float64", seed=seed + 1)
        kw = dict(loss="mse", optimizer=sr.SGD(lr=0.05), k1=2, k2=3)
        self.trainer = sr.OnlineTrainer(tnet, **kw)
        self.ref_tnet = reference.Net(cell, 2, hidden, layers, head,
                                      tnet.parameters().copy())
        self.ref_trainer = reference.Trainer(self.ref_tnet, **kw)

    # -- helpers
    def _x(self, *shape):
        return self.rng.uniform(-1, 1, shape).astype(self.dtype)

    def _model(self, obj):
        for kind, o, H, C in self.objs:
            if o is obj:
                return H, C
        raise AssertionError("object without a model")

    def _add(self, kind, obj, H, C):
        self.objs.append((kind, obj, H, C))
        return obj

    # -- rules: creation
    @rule(target=states)
    def new_state(self):
        s = self.net.new_state()
        h, c = self.ref.zero_state()
        return self._add("state", s, h.astype(np.float64), None if c is None else
                         c.astype(np.float64))

    @rule(target=batches, n=st.integers(1, 20))
    def new_batch(self, n):
        b = self.net.new_states(n)
        shape = (n, self.net.num_layers, self.net.hidden_size)
        return self._add("batch", b, np.zeros(shape), np.zeros(shape) if self.lstm else None)

    # -- rules: stepping
    @rule(s=states)
    def step(self, s):
        H, C = self._model(s)
        x = self._x(2)
        y = self.net.step(x, s)
        yr, h, c = self.ref.step(x.astype(np.float64), H, C)
        H[...] = h
        if C is not None:
            C[...] = c
        assert_close(y, yr, self.dtype, "step output")

    @rule(s=states, T=st.integers(0, 4))
    def run(self, s, T):
        H, C = self._model(s)
        X = self._x(T, 2)
        Y = self.net.run(X, s)
        Yr, h, c = self.ref.run(X.astype(np.float64), H, C)
        H[...] = h
        if C is not None:
            C[...] = c
        assert_close(Y, Yr, self.dtype, "run outputs")

    @rule(b=batches, data=st.data())
    def step_many(self, b, data):
        H, C = self._model(b)
        n = len(b)
        if data.draw(st.booleans(), label="with index"):
            rows = data.draw(st.permutations(range(n)), label="order")
            rows = list(rows[:data.draw(st.integers(0, n), label="m")])
            X = self._x(len(rows), 2)
            Y = self.net.step_many(X, b, index=np.array(rows, dtype=np.int64))
        else:
            rows = list(range(n))
            X = self._x(n, 2)
            Y = self.net.step_many(X, b)
        Yr = _ref_step_rows(self.ref, X.astype(np.float64), H, C, rows)
        assert_close(Y, Yr, self.dtype, "step_many outputs")

    @rule(b=batches, data=st.data())
    def step_a_view(self, b, data):
        """batch[i] is a view: stepping it steps stream i of the batch."""
        H, C = self._model(b)
        i = data.draw(st.integers(-len(b), len(b) - 1), label="i")
        v = b[i]
        assert v.is_view
        x = self._x(2)
        y = self.net.step(x, v)
        Yr = _ref_step_rows(self.ref, x[None].astype(np.float64), H, C, [i % len(b)])
        assert_close(y, Yr[0], self.dtype, "view step output")

    # -- rules: reset, copy, pickle
    @rule(s=states)
    def reset_state(self, s):
        H, C = self._model(s)
        s.reset()
        H[...] = 0
        if C is not None:
            C[...] = 0

    @rule(b=batches, data=st.data())
    def reset_batch(self, b, data):
        H, C = self._model(b)
        if data.draw(st.booleans(), label="all"):
            b.reset()
            rows = slice(None)
        else:
            rows = data.draw(st.lists(st.integers(0, len(b) - 1), unique=True), label="rows")
            b.reset(rows)
        H[rows] = 0
        if C is not None:
            C[rows] = 0

    @rule(target=states, s=states, how=st.sampled_from(["copy", "copy.copy", "deepcopy",
                                                        "pickle"]))
    def copy_state(self, s, how):
        H, C = self._model(s)
        if how == "copy":
            t = s.copy()
        elif how == "copy.copy":
            t = copy.copy(s)
        elif how == "deepcopy":
            t = copy.deepcopy(s)
        else:
            t = pickle.loads(pickle.dumps(s))
        assert not t.is_view and not np.shares_memory(t.h, s.h)
        return self._add("state", t, H.copy(), None if C is None else C.copy())

    @rule(target=states, b=batches, data=st.data())
    def copy_out_of_batch(self, b, data):
        H, C = self._model(b)
        i = data.draw(st.integers(0, len(b) - 1), label="i")
        t = pickle.loads(pickle.dumps(b[i])) if data.draw(st.booleans()) else b[i].copy()
        assert not t.is_view
        return self._add("state", t, H[i].copy(), None if C is None else C[i].copy())

    @rule(target=batches, b=batches, how=st.sampled_from(["copy", "deepcopy", "pickle"]))
    def copy_batch(self, b, how):
        H, C = self._model(b)
        t = (b.copy() if how == "copy" else copy.deepcopy(b) if how == "deepcopy"
             else pickle.loads(pickle.dumps(b)))
        assert not np.shares_memory(t.h, b.h)
        return self._add("batch", t, H.copy(), None if C is None else C.copy())

    @rule(s=consumes(states))
    def drop_state(self, s):
        """Dropping a state (possibly a view's last holder) frees nothing still in use."""
        self.objs = [e for e in self.objs if e[1] is not s]

    # -- rules: the trainer
    @rule(target_kind=st.sampled_from(["target", "none", "nan"]))
    def learn_one(self, target_kind):
        x = self.rng.uniform(-1, 1, 2)
        out = self.trainer.net.output_size or self.trainer.net.hidden_size
        y = self.rng.uniform(-1, 1, out)
        if target_kind == "none":
            y = None
        elif target_kind == "nan":
            y[0] = np.nan
        p = self.trainer.learn_one(x, y)
        pr = self.ref_trainer.learn_one(x, y)
        np.testing.assert_allclose(p, pr, rtol=TRAINER_RTOL, atol=TRAINER_RTOL)

    @rule(how=st.sampled_from(["pickle", "deepcopy"]))
    def trainer_round_trip(self, how):
        """A pickled (or deep-copied) trainer, with its network, continues exactly."""
        tr = self.trainer
        t2 = pickle.loads(pickle.dumps(tr)) if how == "pickle" else copy.deepcopy(tr)
        assert t2.net is not tr.net
        assert t2.net.parameters().tobytes() == tr.net.parameters().tobytes()
        assert t2.state.h.tobytes() == tr.state.h.tobytes()
        assert repr(t2._snapshot()["counters"]) == repr(tr._snapshot()["counters"])
        self.trainer = t2

    @rule()
    def reset_trainer(self):
        self.trainer.reset()
        self.ref_trainer.reset()

    # -- invariants, checked after every rule
    @invariant()
    def objects_match_their_models(self):
        if not hasattr(self, "net"):
            return
        L, Hn = self.net.num_layers, self.net.hidden_size
        for kind, o, H, C in self.objs:
            lead = () if kind == "state" else (len(o),)
            assert o.h.shape == lead + (L, Hn) and o.h.dtype == self.dtype
            assert o.h.flags.c_contiguous and not o.h.flags.owndata
            assert_close(o.h, H, self.dtype, f"{kind} h")
            if C is None:
                assert o.c is None
            else:
                assert_close(o.c, C, self.dtype, f"{kind} c")

    @invariant()
    def trainer_matches_the_reference(self):
        if not hasattr(self, "trainer"):
            return
        tr, rt = self.trainer, self.ref_trainer
        assert tr.steps == rt.steps and tr.updates == rt.updates
        assert tr.skipped_updates == rt.skipped
        np.testing.assert_allclose(tr.net.parameters(), rt.net.flat, rtol=TRAINER_RTOL,
                                   atol=TRAINER_RTOL)
        np.testing.assert_allclose(tr.state.h, rt.h, rtol=TRAINER_RTOL, atol=TRAINER_RTOL)
        if rt.c is not None:
            np.testing.assert_allclose(tr.state.c, rt.c, rtol=TRAINER_RTOL,
                                       atol=TRAINER_RTOL)


TestStreamsMachine = StreamsMachine.TestCase
# the loaded profile's settings (conftest), with longer rule sequences
TestStreamsMachine.settings = settings(stateful_step_count=30)
