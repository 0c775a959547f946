"""The forward pass of the C core against the NumPy reference (streamrnn.reference).

Hypothesis draws the cell, the sizes, the dtype, the sequence and the seed; the compiled
network is compared with ``reference.Net`` fed ``net.parameters().astype(float64)``:
float64 networks within ~1e-12 relative, float32 networks within ~1e-5. The documented
equivalences (``run`` == a loop of ``step``, ``step_many`` == one ``step`` per stream, copies
and pickles continue identically) are checked too, as are the parameter layout and the
PyTorch-style initialisation.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamrnn as sr
from streamrnn import reference as R

from conftest import CELLS, DTYPES, GATES, TORCH_CELLS, assert_close, make_net

# ------------------------------------------------------------------------------ strategies

cells = st.sampled_from(CELLS)
dtypes = st.sampled_from(DTYPES)
heads = st.one_of(st.none(), st.integers(1, 4))
seeds = st.integers(0, 2**32 - 1)
scales = st.sampled_from([0.1, 1.0, 5.0])


@st.composite
def configs(draw, max_h=64):
    return dict(cell=draw(cells), input_size=draw(st.integers(1, 16)),
                hidden_size=draw(st.integers(1, max_h)), num_layers=draw(st.integers(1, 3)),
                output_size=draw(heads), dtype=draw(dtypes), seed=draw(seeds))


def build(cfg):
    return make_net(**cfg)


def reference_of(net):
    return R.Net(net.cell, net.input_size, net.hidden_size, net.num_layers, net.output_size,
                 params=net.parameters().astype(np.float64))


def random_state(net, s, rng, scale=0.5):
    """Fill State s with random values (exactly representable in the net's dtype)."""
    s.h[...] = rng.uniform(-scale, scale, s.h.shape)
    if s.c is not None:
        s.c[...] = rng.uniform(-2 * scale, 2 * scale, s.c.shape)


def state_f64(s):
    return s.h.astype(np.float64), None if s.c is None else s.c.astype(np.float64)


def assert_state_close(s, h, c, dtype):
    assert_close(s.h, h, dtype, "h")
    if c is None:
        assert s.c is None
    else:
        assert_close(s.c, c, dtype, "c")


def assert_states_equal(a, b):
    assert np.array_equal(a.h, b.h)
    if a.c is None:
        assert b.c is None
    else:
        assert np.array_equal(a.c, b.c)


# ------------------------------------------------------------------------------ C vs reference

@given(cfg=configs(), T=st.integers(1, 50), xseed=seeds, scale=scales, warm=st.booleans())
def test_run_matches_reference(cfg, T, xseed, scale, warm):
    net = build(cfg)
    dt = net.dtype
    rng = np.random.default_rng(xseed)
    s = net.new_state()
    if warm:
        random_state(net, s, rng)
    h0, c0 = state_f64(s)
    X = (rng.standard_normal((T, net.input_size)) * scale).astype(dt)
    Y = net.run(X, s)
    assert Y.dtype == dt and Y.shape == (T, net.output_size or net.hidden_size)
    Yr, hr, cr = reference_of(net).run(X.astype(np.float64), h0, c0)
    assert_close(Y, Yr, dt, "Y")
    assert_state_close(s, hr, cr, dt)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", [None, 3])
def test_large_hidden_size_matches_reference(cell, dtype, head):
    """Large layers (the core may switch from its own mat-vec kernel to BLAS gemv above some
    size): still the reference's numbers, for run and for step_many (gemm)."""
    D, H, L, T = 16, 640, 2, 3
    net = make_net(cell, D, H, L, output_size=head, dtype=dtype, seed=31)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((T, D)).astype(dtype)
    s = net.new_state()
    random_state(net, s, rng)
    h0, c0 = state_f64(s)
    b = net.new_states(2)
    b.h[0], b.h[1] = s.h, 0
    if b.c is not None:
        b.c[0], b.c[1] = s.c, 0
    Y = net.run(X, s)
    ref = reference_of(net)
    Yr, hr, cr = ref.run(X.astype(np.float64), h0, c0)
    assert_close(Y, Yr, dtype, "Y")
    assert_state_close(s, hr, cr, dtype)
    Ym = net.step_many(X[:2], b)
    yr0, _, _ = ref.step(X[0].astype(np.float64), h0, c0)
    h1, c1 = ref.zero_state()
    yr1, _, _ = ref.step(X[1].astype(np.float64), h1, c1)
    assert_close(Ym[0], yr0, dtype, "step_many stream 0")
    assert_close(Ym[1], yr1, dtype, "step_many stream 1")


@given(cfg=configs(), T=st.integers(1, 12), xseed=seeds, scale=scales)
def test_step_matches_reference_every_step(cfg, T, xseed, scale):
    """Each step against the reference's step from the same (reference-computed) history."""
    net = build(cfg)
    dt = net.dtype
    rng = np.random.default_rng(xseed)
    ref = reference_of(net)
    s = net.new_state()
    random_state(net, s, rng)
    h, c = state_f64(s)
    for _ in range(T):
        x = (rng.standard_normal(net.input_size) * scale).astype(dt)
        y = net.step(x, s)
        assert y.dtype == dt and y.shape == (net.output_size or net.hidden_size,)
        yr, h, c = ref.step(x.astype(np.float64), h, c)
        assert_close(y, yr, dt, "y")
        assert_state_close(s, h, c, dt)
        if net.output_size is None:  # without a head the output is the new top-layer h
            assert np.array_equal(y, s.h[-1])


@given(cfg=configs(max_h=24), T=st.integers(1, 20), xseed=seeds)
def test_run_equals_step_loop(cfg, T, xseed):
    """Documented equivalence: run(X) is exactly T step() calls (same kernel, bit-for-bit)."""
    net = build(cfg)
    rng = np.random.default_rng(xseed)
    X = rng.standard_normal((T, net.input_size)).astype(net.dtype)
    s1 = net.new_state()
    random_state(net, s1, rng)
    s2 = s1.copy()
    Y = net.run(X, s1)
    Ys = np.stack([net.step(X[t], s2) for t in range(T)])
    assert np.array_equal(Y, Ys)
    assert_states_equal(s1, s2)


def test_run_empty_sequence_changes_nothing():
    net = sr.LSTM(3, 5, 2, output_size=2, dtype="float64", seed=0)
    s = net.new_state()
    s.h[...] = 0.25
    s.c[...] = -0.5
    Y = net.run(np.zeros((0, 3)), s)
    assert Y.shape == (0, 2)
    assert np.all(s.h == 0.25) and np.all(s.c == -0.5)


@pytest.mark.parametrize("cell", CELLS)
def test_known_values_one_unit(cell):
    """Hand-computed single-unit numbers (independent of the reference module)."""
    net = make_net(cell, 1, 1, dtype="float64")
    G = GATES[cell]
    L0 = net.layers[0]
    L0.weight_ih[...] = np.linspace(0.3, 0.9, G).reshape(G, 1)
    L0.weight_hh[...] = np.linspace(-0.5, 0.4, G).reshape(G, 1)
    L0.bias_ih[...] = np.linspace(0.1, -0.2, G)
    L0.bias_hh[...] = np.linspace(-0.05, 0.15, G)
    s = net.new_state()
    s.h[...] = 0.7
    if s.c is not None:
        s.c[...] = -0.4
    x, h, c = 1.3, 0.7, -0.4
    wi, wh = L0.weight_ih[:, 0].copy(), L0.weight_hh[:, 0].copy()
    bi, bh = L0.bias_ih.copy(), L0.bias_hh.copy()
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    if cell in ("rnn_tanh", "rnn_relu"):
        a = wi[0] * x + bi[0] + wh[0] * h + bh[0]
        h_new = np.tanh(a) if cell == "rnn_tanh" else max(a, 0.0)
    elif cell == "lstm":
        a = wi * x + bi + wh * h + bh
        i, f, g, o = sig(a[0]), sig(a[1]), np.tanh(a[2]), sig(a[3])
        c = f * c + i * g
        h_new = o * np.tanh(c)
    elif cell == "lstm_peephole":
        p_i, p_f, p_o = 0.35, -0.6, 0.8
        L0.weight_peephole[...] = [p_i, p_f, p_o]
        a = wi * x + bi + wh * h + bh
        i, f, g = sig(a[0] + p_i * c), sig(a[1] + p_f * c), np.tanh(a[2])
        c = f * c + i * g
        h_new = sig(a[3] + p_o * c) * np.tanh(c)
    elif cell == "gru":
        r = sig(wi[0] * x + bi[0] + wh[0] * h + bh[0])
        z = sig(wi[1] * x + bi[1] + wh[1] * h + bh[1])
        n = np.tanh(wi[2] * x + bi[2] + r * (wh[2] * h + bh[2]))
        h_new = (1 - z) * n + z * h
    else:
        assert cell == "gru_reset_before"
        r = sig(wi[0] * x + bi[0] + wh[0] * h + bh[0])
        z = sig(wi[1] * x + bi[1] + wh[1] * h + bh[1])
        n = np.tanh(wi[2] * x + bi[2] + wh[2] * (r * h) + bh[2])
        h_new = (1 - z) * n + z * h
    y = net.step(np.array([x]), s)
    np.testing.assert_allclose(y, [h_new], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(s.h, [[h_new]], rtol=1e-14, atol=1e-15)
    if s.c is not None:
        np.testing.assert_allclose(s.c, [[c]], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_head_is_linear_on_top_h(cell, dtype):
    net = make_net(cell, 3, 6, 2, output_size=3, dtype=dtype, seed=5)
    rng = np.random.default_rng(0)
    s = net.new_state()
    for _ in range(4):
        y = net.step(rng.standard_normal(3).astype(dtype), s)
        expect = net.head.weight.astype(np.float64) @ s.h[-1].astype(np.float64) \
            + net.head.bias.astype(np.float64)
        assert_close(y, expect, dtype)


# ------------------------------------------------------------------------------ multi-layer

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_k_plus_1_reads_layer_k_new_h(cell, dtype):
    """A 3-layer net equals three 1-layer nets chained on each layer's *new* h."""
    D, H, L = 4, 7, 3
    net = make_net(cell, D, H, L, output_size=2, dtype=dtype, seed=11)
    singles = []
    for k in range(L):
        one = make_net(cell, D if k == 0 else H, H, 1, dtype=dtype)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole"):
            if getattr(net.layers[k], name) is not None:
                getattr(one.layers[0], name)[...] = getattr(net.layers[k], name)
        singles.append((one, one.new_state()))
    s = net.new_state()
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.standard_normal(D).astype(dtype)
        y = net.step(x, s)
        inp = x
        for k, (one, sk) in enumerate(singles):
            inp = one.step(inp, sk)
            assert_close(s.h[k], sk.h[0], dtype, f"h layer {k}")
            if sk.c is not None:
                assert_close(s.c[k], sk.c[0], dtype, f"c layer {k}")
        expect = net.head.weight.astype(np.float64) @ inp.astype(np.float64) \
            + net.head.bias.astype(np.float64)
        assert_close(y, expect, dtype, "y")


# ------------------------------------------------------------------------------ many streams

@given(cfg=configs(max_h=32), n=st.integers(1, 8), rounds=st.integers(1, 4), xseed=seeds,
       data=st.data())
def test_step_many_matches_per_stream_step(cfg, n, rounds, xseed, data):
    net = build(cfg)
    dt = net.dtype
    rng = np.random.default_rng(xseed)
    b = net.new_states(n)
    assert len(b) == n and b.h.shape == (n, net.num_layers, net.hidden_size)
    b.h[...] = rng.uniform(-0.5, 0.5, b.h.shape)
    if b.c is not None:
        b.c[...] = rng.uniform(-1, 1, b.c.shape)
    singles = [b[i].copy() for i in range(n)]
    for _ in range(rounds):
        mode = data.draw(st.sampled_from(["all", "index"]))
        if mode == "all":
            idx = list(range(n))
            X = rng.standard_normal((n, net.input_size)).astype(dt)
            Y = net.step_many(X, b)
        else:
            idx = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
            X = rng.standard_normal((len(idx), net.input_size)).astype(dt)
            hb, cb = b.h.copy(), None if b.c is None else b.c.copy()
            Y = net.step_many(X, b, index=np.array(idx, dtype=np.int64))
            rest = [i for i in range(n) if i not in idx]
            # streams without an arrival stay untouched, bit for bit
            assert b.h[rest].tobytes() == hb[rest].tobytes()
            if cb is not None:
                assert b.c[rest].tobytes() == cb[rest].tobytes()
        assert Y.dtype == dt and Y.shape == (len(idx), net.output_size or net.hidden_size)
        for row, i in enumerate(idx):
            y = net.step(X[row], singles[i])
            assert_close(Y[row], y, dt, f"y of stream {i}")
        for i in range(n):
            assert_close(b.h[i], singles[i].h, dt, f"h of stream {i}")
            if b.c is not None:
                assert_close(b.c[i], singles[i].c, dt, f"c of stream {i}")
        # keep the singles exactly in sync so errors cannot compound across rounds
        for i in range(n):
            singles[i] = b[i].copy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
def test_step_many_in_blocks_matches_per_stream_step(cell, dtype):
    """More streams than one block of the C core (SRNN_MANY_BLOCK = 256, the last block
    partial), with and without an index: still one step per stream's numbers."""
    net = make_net(cell, 3, 12, 2, output_size=3, dtype=dtype, seed=4)
    n = 600
    rng = np.random.default_rng(11)
    b = net.new_states(n)
    b.h[...] = rng.uniform(-0.5, 0.5, b.h.shape)
    if b.c is not None:
        b.c[...] = rng.uniform(-1, 1, b.c.shape)
    for idx in (None, rng.permutation(n)[:530]):
        rows = range(n) if idx is None else idx
        singles = {int(i): b[int(i)].copy() for i in rows}
        X = rng.standard_normal((len(singles), 3)).astype(dtype)
        hb = b.h.copy()
        Y = net.step_many(X, b) if idx is None else net.step_many(X, b, index=idx)
        for row, i in enumerate(rows):
            i = int(i)
            assert_close(Y[row], net.step(X[row], singles[i]), dtype, f"y of stream {i}")
            assert_close(b.h[i], singles[i].h, dtype, f"h of stream {i}")
            if b.c is not None:
                assert_close(b.c[i], singles[i].c, dtype, f"c of stream {i}")
        rest = sorted(set(range(n)) - set(singles))
        assert b.h[rest].tobytes() == hb[rest].tobytes()


def _traced_bytes(make):
    """Bytes that make() allocates and keeps, measured with tracemalloc (the C buffers of
    states are allocated through PyMem_Raw*, which tracemalloc traces)."""
    import gc
    import tracemalloc
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = make()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del obj
    return used


@pytest.mark.parametrize("cell", CELLS)
def test_state_batch_memory_per_stream_is_the_state(cell):
    """README: new_states(n) costs hidden_size * num_layers * itemsize bytes per stream (x2
    for LSTM), measured: the step_many scratch is bounded (one block of streams), so each
    further stream adds its state and one byte (the duplicate-index mark), nothing more."""
    net = make_net(cell, 3, 64, 1, output_size=None, dtype="float32", seed=0)
    state = 64 * 4 * (2 if cell.startswith("lstm") else 1)
    n1, n2 = 1000, 5000
    per_stream = (_traced_bytes(lambda: net.new_states(n2))
                  - _traced_bytes(lambda: net.new_states(n1))) / (n2 - n1)
    assert state <= per_stream <= state + 1.01, (cell, per_stream, state)


@pytest.mark.parametrize("cell", CELLS)
def test_step_many_sparse_unsorted_index_against_reference(cell):
    net = make_net(cell, 3, 9, 2, output_size=None, dtype="float64", seed=2)
    ref = reference_of(net)
    n = 10
    b = net.new_states(n)
    rng = np.random.default_rng(8)
    b.h[...] = rng.uniform(-1, 1, b.h.shape)
    if b.c is not None:
        b.c[...] = rng.uniform(-1, 1, b.c.shape)
    idx = np.array([7, 2, 9, 0], dtype=np.int64)
    X = rng.standard_normal((4, 3))
    hb = b.h.copy()
    cb = None if b.c is None else b.c.copy()
    Y = net.step_many(X, b, index=idx)
    for row, i in enumerate(idx):
        yr, hr, cr = ref.step(X[row], hb[i], None if cb is None else cb[i])
        assert_close(Y[row], yr, np.float64)
        assert_close(b.h[i], hr, np.float64)
        if cr is not None:
            assert_close(b.c[i], cr, np.float64)
    rest = [i for i in range(n) if i not in idx]
    assert b.h[rest].tobytes() == hb[rest].tobytes()
    if cb is not None:
        assert b.c[rest].tobytes() == cb[rest].tobytes()
    # a list index works too
    Y2 = net.step_many(X[:2], b, index=[5, 1])
    assert Y2.shape == (2, 9)


def test_step_many_empty_index_changes_nothing():
    net = sr.GRU(2, 4, dtype="float64", seed=0)
    b = net.new_states(3)
    b.h[...] = 0.5
    Y = net.step_many(np.zeros((0, 2)), b, index=np.zeros(0, dtype=np.int64))
    assert Y.shape == (0, 4)
    assert np.all(b.h == 0.5)


@pytest.mark.parametrize("cell", CELLS)
def test_batch_item_is_a_view(cell):
    net = make_net(cell, 2, 5, 2, dtype="float64", seed=4)
    b = net.new_states(4)
    v = b[2]
    assert v.is_view
    assert np.shares_memory(v.h, b.h)
    assert b[-1].h.shape == (2, 5)
    assert np.shares_memory(b[-1].h, b.h[3])
    before = b.h.copy()
    y = net.step(np.array([0.3, -1.2]), v)
    assert np.array_equal(b.h[2], v.h)
    assert np.array_equal(y, b.h[2, -1])
    assert not np.array_equal(b.h[2], before[2])
    others = [0, 1, 3]
    assert np.array_equal(b.h[others], before[others])
    if b.c is not None:
        assert np.shares_memory(v.c, b.c)
        assert np.array_equal(b.c[2], v.c)
    # a copy of the view is independent
    cp = b[2].copy()
    assert not cp.is_view
    net.step(np.array([1.0, 1.0]), cp)
    assert not np.array_equal(cp.h, b.h[2])
    # iterating a batch gives views in order
    views = list(b)
    assert len(views) == 4 and all(np.shares_memory(w.h, b.h[i]) for i, w in enumerate(views))


# ------------------------------------------------------------------------------ states

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_new_state_shapes_and_zeros(cell, dtype):
    net = make_net(cell, 3, 6, 2, dtype=dtype)
    s = net.new_state()
    assert s.h.shape == (2, 6) and s.h.dtype == np.dtype(dtype) and not s.h.any()
    if cell.startswith("lstm"):
        assert s.c.shape == (2, 6) and s.c.dtype == np.dtype(dtype) and not s.c.any()
    else:
        assert s.c is None
    assert s.cell == cell and s.num_layers == 2 and s.hidden_size == 6
    assert s.dtype == np.dtype(dtype) and not s.is_view


def _continue_identically(net, a, b, rng, steps=3):
    for _ in range(steps):
        x = rng.standard_normal(net.input_size).astype(net.dtype)
        assert np.array_equal(net.step(x, a), net.step(x, b))
    assert_states_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("how", ["copy", "copy.copy", "deepcopy", "pickle"])
def test_state_copies_continue_identically(cell, dtype, how):
    net = make_net(cell, 3, 6, 2, output_size=2, dtype=dtype, seed=1)
    rng = np.random.default_rng(0)
    s = net.new_state()
    net.run(rng.standard_normal((5, 3)).astype(dtype), s)
    dup = {"copy": lambda o: o.copy(), "copy.copy": copy.copy, "deepcopy": copy.deepcopy,
           "pickle": lambda o: pickle.loads(pickle.dumps(o))}[how](s)
    assert dup is not s and not np.shares_memory(dup.h, s.h)
    assert dup.cell == s.cell and dup.dtype == s.dtype
    assert_states_equal(dup, s)
    _continue_identically(net, s, dup, rng)
    # independent: stepping one leaves the other alone
    h_before = dup.h.copy()
    net.step(np.ones(3, dtype), s)
    assert np.array_equal(dup.h, h_before)


@pytest.mark.parametrize("how", ["copy", "copy.copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("cell", CELLS)
def test_batch_copies_continue_identically(how, cell):
    net = make_net(cell, 2, 5, 2, dtype="float64", seed=6)
    rng = np.random.default_rng(1)
    b = net.new_states(5)
    net.step_many(rng.standard_normal((5, 2)), b)
    net.step_many(rng.standard_normal((2, 2)), b, index=[4, 1])
    dup = {"copy": lambda o: o.copy(), "copy.copy": copy.copy, "deepcopy": copy.deepcopy,
           "pickle": lambda o: pickle.loads(pickle.dumps(o))}[how](b)
    assert len(dup) == 5 and not np.shares_memory(dup.h, b.h)
    assert np.array_equal(dup.h, b.h)
    if b.c is not None:
        assert np.array_equal(dup.c, b.c) and not np.shares_memory(dup.c, b.c)
    for _ in range(3):
        X = rng.standard_normal((5, 2))
        assert np.array_equal(net.step_many(X, b), net.step_many(X, dup))
        idx = rng.permutation(5)[:3]
        assert np.array_equal(net.step_many(X[:3], b, index=idx),
                              net.step_many(X[:3], dup, index=idx))
    assert np.array_equal(dup.h, b.h)
    before = dup.h.copy()
    net.step_many(np.ones((5, 2)), b)
    assert np.array_equal(dup.h, before)


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy.copy"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_network_copies_continue_identically(how, cell, dtype):
    net = make_net(cell, 3, 6, 2, output_size=2, dtype=dtype, seed=9)
    # parameters changed after construction must travel too (not re-drawn from the seed)
    net.layers[1].bias_hh[...] += 0.125
    dup = {"copy.copy": copy.copy, "deepcopy": copy.deepcopy,
           "pickle": lambda o: pickle.loads(pickle.dumps(o))}[how](net)
    assert type(dup) is type(net) and dup.cell == net.cell and dup.dtype == net.dtype
    assert (dup.input_size, dup.hidden_size, dup.num_layers, dup.output_size) == (3, 6, 2, 2)
    assert np.array_equal(dup.parameters(), net.parameters())
    assert not np.shares_memory(dup.parameters(), net.parameters())
    assert np.shares_memory(dup.layers[1].bias_hh, dup.parameters())
    rng = np.random.default_rng(2)
    X = rng.standard_normal((7, 3)).astype(dtype)
    s1, s2 = net.new_state(), dup.new_state()
    assert np.array_equal(net.run(X, s1), dup.run(X, s2))
    assert_states_equal(s1, s2)
    # independent parameters
    dup.parameters()[0] += 1.0
    assert dup.parameters()[0] != net.parameters()[0]


@pytest.mark.parametrize("cell", CELLS)
def test_reset(cell):
    net = make_net(cell, 2, 4, 2, output_size=1, dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 2))
    s = net.new_state()
    Y1 = net.run(X, s)
    assert s.h.any()
    h_obj = s.h
    s.reset()
    assert s.h is h_obj and not s.h.any()  # in place
    if s.c is not None:
        assert not s.c.any()
    assert np.array_equal(net.run(X, s), Y1)  # identical to a fresh state
    # batch reset: all, then a subset
    b = net.new_states(4)
    net.step_many(rng.standard_normal((4, 2)), b)
    keep = b.h[[0, 2]].copy()
    b.reset(index=[3, 1])
    assert not b.h[[1, 3]].any() and np.array_equal(b.h[[0, 2]], keep)
    if b.c is not None:
        assert not b.c[[1, 3]].any()
    b.reset()
    assert not b.h.any()
    # resetting a view resets that stream of the batch
    net.step_many(rng.standard_normal((4, 2)), b)
    others = b.h[[0, 1, 3]].copy()
    assert b.h[2].any()
    b[2].reset()
    assert not b.h[2].any() and np.array_equal(b.h[[0, 1, 3]], others)


# ------------------------------------------------------------------------------ out argument

@pytest.mark.parametrize("dtype", DTYPES)
def test_out_argument(dtype):
    net = sr.LSTM(3, 5, 2, output_size=2, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3).astype(dtype)
    s1, s2 = net.new_state(), net.new_state()
    out = np.full(2, np.nan, dtype)
    r = net.step(x, s1, out=out)
    assert r is out
    assert np.array_equal(out, net.step(x, s2))
    X = rng.standard_normal((4, 3)).astype(dtype)
    outY = np.full((4, 2), np.nan, dtype)
    assert net.run(X, s1, out=outY) is outY
    assert np.array_equal(outY, net.run(X, s2))
    b1, b2 = net.new_states(3), net.new_states(3)
    outM = np.full((3, 2), np.nan, dtype)
    X3 = rng.standard_normal((3, 3)).astype(dtype)
    assert net.step_many(X3, b1, out=outM) is outM
    assert np.array_equal(outM, net.step_many(X3, b2))


def test_sequence_inputs_are_converted():
    """Python numbers and sequences are accepted (converted to the network's dtype)."""
    net = sr.GRU(2, 3, dtype="float32", seed=0)
    s1, s2 = net.new_state(), net.new_state()
    y1 = net.step([0.5, -1.0], s1)
    y2 = net.step(np.array([0.5, -1.0], np.float32), s2)
    assert y1.dtype == np.float32 and np.array_equal(y1, y2)
    one = sr.RNN(1, 2, dtype="float64", seed=0)
    sa, sb = one.new_state(), one.new_state()
    assert np.array_equal(one.step(0.75, sa), one.step(np.array([0.75]), sb))


# ------------------------------------------------------------------------------ parameters

@given(cfg=configs(max_h=16))
def test_parameter_layout(cfg):
    net = build(cfg)
    flat = net.parameters()
    G = GATES[net.cell]
    D, H, L, O = net.input_size, net.hidden_size, net.num_layers, net.output_size
    shapes = R.param_shapes(net.cell, D, H, L, O)
    assert flat.ndim == 1 and flat.flags.c_contiguous and flat.flags.writeable
    assert flat.dtype == net.dtype
    assert flat.size == sum(int(np.prod(s)) for _, s in shapes)
    assert net.parameters() is flat or np.shares_memory(net.parameters(), flat)
    assert len(net.layers) == L
    for k, layer in enumerate(net.layers):
        din = D if k == 0 else H
        assert layer.weight_ih.shape == (G * H, din)
        assert layer.weight_hh.shape == (G * H, H)
        assert layer.bias_ih.shape == (G * H,)
        assert layer.bias_hh.shape == (G * H,)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            v = getattr(layer, name)
            assert np.shares_memory(v, flat), name
            assert v.flags.c_contiguous and v.flags.writeable and v.dtype == net.dtype
    if O is None:
        assert net.head is None
    else:
        assert net.head.weight.shape == (O, H) and net.head.bias.shape == (O,)
        assert np.shares_memory(net.head.weight, flat) and np.shares_memory(net.head.bias, flat)
    # flat order = param_shapes order: write 0, 1, 2, ... and read through the views
    flat[...] = np.arange(flat.size) % 1000
    expect = np.arange(flat.size) % 1000
    views = {f"{n}_l{k}": getattr(layer, n) for k, layer in enumerate(net.layers)
             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole")
             if getattr(layer, n) is not None}
    assert all((layer.weight_peephole is not None) == (net.cell == "lstm_peephole")
               for layer in net.layers)
    if O is not None:
        views["head.weight"], views["head.bias"] = net.head.weight, net.head.bias
    off = 0
    for key, shape in shapes:
        size = int(np.prod(shape))
        assert np.array_equal(views[key], expect[off:off + size].reshape(shape)), key
        off += size
    if net.cell not in TORCH_CELLS:      # a variant: no PyTorch state dict
        with pytest.raises(ValueError, match="no PyTorch"):
            net.state_dict()
        return
    sd = net.state_dict()
    assert list(sd) == [k for k, _ in shapes]
    for key, shape in shapes:
        assert sd[key].shape == shape and sd[key].dtype == net.dtype
        assert np.array_equal(sd[key], views[key])
        assert not np.shares_memory(sd[key], flat)  # state_dict holds copies


def test_writing_a_view_changes_the_computation():
    net = sr.RNN(2, 3, dtype="float64", seed=0)
    s = net.new_state()
    y0 = net.step(np.array([1.0, 2.0]), s.copy())
    net.layers[0].bias_ih[1] += 0.5
    y1 = net.step(np.array([1.0, 2.0]), s.copy())
    assert y1[1] != y0[1] and y1[0] == y0[0] and y1[2] == y0[2]
    net.parameters()[...] = 0
    assert not net.step(np.array([1.0, 2.0]), s).any()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_init_bounds_and_seed(cell, dtype):
    H = 25
    net = make_net(cell, 4, H, 2, output_size=3, dtype=dtype, seed=123)
    p = net.parameters()
    bound = 1.0 / np.sqrt(H)
    assert np.all(np.abs(p.astype(np.float64)) <= bound * (1 + 1e-6))
    # really uniform on the whole interval: extremes close to the bound, both signs, spread
    assert p.max() > 0.95 * bound and p.min() < -0.95 * bound
    assert abs(float(np.mean(p))) < 0.1 * bound
    for layer in net.layers:  # every block is initialised, not only the first
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert np.count_nonzero(getattr(layer, name)) > 0.9 * getattr(layer, name).size
    assert np.abs(net.head.weight).max() > 0.5 * bound
    assert np.all(np.abs(net.head.weight) <= bound * (1 + 1e-6))
    assert np.all(np.abs(net.head.bias) <= bound * (1 + 1e-6))
    again = make_net(cell, 4, H, 2, output_size=3, dtype=dtype, seed=123)
    assert np.array_equal(again.parameters(), p)
    other = make_net(cell, 4, H, 2, output_size=3, dtype=dtype, seed=124)
    assert not np.array_equal(other.parameters(), p)
    assert np.mean(other.parameters() == p) < 0.01
    u1 = make_net(cell, 4, H, 2, output_size=3, dtype=dtype)
    u2 = make_net(cell, 4, H, 2, output_size=3, dtype=dtype)
    assert not np.array_equal(u1.parameters(), u2.parameters())


def test_init_bound_follows_hidden_size():
    for H in (1, 4, 100):
        p = sr.GRU(3, H, dtype="float64", seed=0).parameters()
        assert np.abs(p).max() <= 1 / np.sqrt(H)
        if p.size > 200:
            assert np.abs(p).max() > 0.9 / np.sqrt(H)
