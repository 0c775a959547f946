"""The C core's own matrix kernels (src_c/cell.inc, gemm_kernel.inc) against the NumPy reference,
on both sides of the own-kernel / BLAS thresholds (SRNN_OWN_GEMV_MAX, SRNN_OWN_GEMM_MAX in
src_c/streamrnn.h).

The sizes are chosen for the kernels' blocking: the own gemm works on column blocks of 8, 16
or 32 (float64 / float32, 32- or 64-byte vectors), six rows at a time with single-row tails,
and k in blocks of 256; so hidden sizes 5 (tail only), 13, 37 (full blocks and a tail), row
counts 9, 23, 300 (one row tile and tails; more than one step_many block of 256 streams),
and k > 256 (H = 300 in the recurrent product; a window of T = 300 in the weight gradients).
``net._force_blas(True)`` sends every product of the network through BLAS instead, the path
above the thresholds, so both paths are checked on the same sizes against the reference.
"""
import numpy as np
import pytest

import streamrnn as sr
from streamrnn import reference

from conftest import CELLS, DTYPES, assert_close, make_net, window_ref

PATHS = ("own", "blas")


def _ref_net(net):
    return reference.Net(net.cell, net.input_size, net.hidden_size, net.num_layers,
                         net.output_size, params=net.parameters().astype(np.float64))


def _ref_steps(rn, X, H0, C0):
    """Each stream i steps once from (H0[i], C0[i]) with X[i]: (Y, H, C)."""
    Y, Hs, Cs = [], [], []
    for i in range(len(X)):
        y, h, c = rn.step(X[i].astype(np.float64), H0[i], None if C0 is None else C0[i])
        Y.append(y)
        Hs.append(h)
        Cs.append(c)
    return np.array(Y), np.array(Hs), (None if C0 is None else np.array(Cs))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("H,n", [(5, 9), (13, 23), (37, 300)])
def test_step_many_matches_reference(cell, dtype, H, n, path):
    net = make_net(cell, 7, H, num_layers=2, output_size=3, dtype=dtype, seed=H + n)
    net._force_blas(path == "blas")
    rng = np.random.default_rng(n)
    b = net.new_states(n)
    b.h[...] = rng.uniform(-1, 1, b.h.shape)
    lstm = cell.startswith("lstm")   # the cells with a cell state c
    if lstm:
        b.c[...] = rng.uniform(-1, 1, b.c.shape)
    H0 = b.h.astype(np.float64).copy()
    C0 = b.c.astype(np.float64).copy() if lstm else None
    X = rng.standard_normal((n, 7)).astype(dtype)
    Y = net.step_many(X, b)
    rY, rH, rC = _ref_steps(_ref_net(net), X, H0, C0)
    assert_close(Y, rY, dtype, "outputs")
    assert_close(b.h, rH, dtype, "h")
    if lstm:
        assert_close(b.c, rC, dtype, "c")
    # sparse arrivals: a scattered subset of the streams, gathered and scattered by the core
    idx = rng.permutation(n)[: max(8, n // 3)]
    H1 = b.h.astype(np.float64).copy()
    C1 = b.c.astype(np.float64).copy() if lstm else None
    X2 = rng.standard_normal((len(idx), 7)).astype(dtype)
    Y2 = net.step_many(X2, b, index=idx)
    rY2, rH2, rC2 = _ref_steps(_ref_net(net), X2, H1[idx], None if C1 is None else C1[idx])
    assert_close(Y2, rY2, dtype, "indexed outputs")
    assert_close(b.h[idx], rH2, dtype, "indexed h")
    rest = np.setdiff1d(np.arange(n), idx)
    assert np.array_equal(b.h[rest], H1[rest].astype(dtype))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_step_many_long_k_matches_reference(dtype, path):
    """H = 300: the recurrent product's k runs over two k-blocks of 256."""
    net = sr.LSTM(4, 300, output_size=2, dtype=dtype, seed=3)
    net._force_blas(path == "blas")
    rng = np.random.default_rng(1)
    b = net.new_states(9)
    b.h[...] = rng.uniform(-1, 1, b.h.shape)
    b.c[...] = rng.uniform(-1, 1, b.c.shape)
    H0, C0 = b.h.astype(np.float64).copy(), b.c.astype(np.float64).copy()
    X = rng.standard_normal((9, 4)).astype(dtype)
    Y = net.step_many(X, b)
    rY, rH, rC = _ref_steps(_ref_net(net), X, H0, C0)
    assert_close(Y, rY, dtype, "outputs")
    assert_close(b.h, rH, dtype, "h")
    assert_close(b.c, rC, dtype, "c")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("H", [1000, 1030])
def test_single_step_on_both_sides_of_the_gemv_threshold(dtype, H):
    """LSTM D=3: 4H x (H+3) = 4,012,000 elements (own kernel) and 4,256,360 (> 4,194,304:
    BLAS gemv); both against the reference."""
    net = sr.LSTM(3, H, dtype=dtype, seed=H)
    rng = np.random.default_rng(H)
    s = net.new_state()
    s.h[...] = rng.uniform(-1, 1, s.h.shape)
    s.c[...] = rng.uniform(-1, 1, s.c.shape)
    h0, c0 = s.h.astype(np.float64).copy(), s.c.astype(np.float64).copy()
    x = rng.standard_normal(3).astype(dtype)
    y = net.step(x, s)
    ry, rh, rc = _ref_net(net).step(x.astype(np.float64), h0, c0)
    assert_close(y, ry, dtype, "y")
    assert_close(s.c, rc, dtype, "c")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("H,T", [(13, 9), (37, 300)])
def test_window_update_matches_reference(cell, dtype, H, T, path):
    """One learn_sequence (forward gemm over the window, weight gradients (G*H, k = T) and
    dLoss/d(input) gemms, the head's gemms), two layers, SGD: the weights after the update."""
    net = make_net(cell, 5, H, num_layers=2, output_size=2, dtype=dtype, seed=T)
    net._force_blas(path == "blas")
    rn = window_ref(net)
    opt = sr.SGD(lr=0.05)
    tr = sr.SequenceTrainer(net, "mse", opt)
    rt = reference.SequenceTrainer([rn], "mse", opt)
    rng = np.random.default_rng(T)
    X = rng.standard_normal((T, 5)).astype(dtype)
    Y = rng.standard_normal((T, 2))
    loss = tr.learn_sequence(X, Y)
    ref_loss = rt.learn_batch([X], [Y], many_to_one=[False])
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(net.parameters(), rn.flat, dtype, "weights after the update")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_online_trainer_matches_reference(dtype, path):
    """TBPTT(3, 7) with a head (the head's rank-one update, the weight-gradient gemms over
    the ring), H = 37, SGD: predictions and weights against the reference trainer."""
    net = sr.GRU(4, 37, num_layers=2, output_size=2, dtype=dtype, seed=5)
    net._force_blas(path == "blas")
    rn = reference.Net("gru", 4, 37, 2, 2, params=net.parameters().astype(np.float64))
    kw = dict(loss="mse", optimizer=sr.SGD(0.02), k1=3, k2=7)
    tr, rt = sr.OnlineTrainer(net, **kw), reference.Trainer(rn, **kw)
    rng = np.random.default_rng(2)
    for _ in range(20):
        x = rng.standard_normal(4)
        y = rng.standard_normal(2)
        p = tr.learn_one(x.astype(dtype), y.astype(dtype))
        q = rt.learn_one(x, y)
        assert_close(p, q, dtype, "prediction")
    assert tr.updates == rt.updates > 0
    assert_close(net.parameters(), rn.flat, dtype, "weights")


def _run_isolated(code):
    """Run code in a fresh interpreter with this checkout's streamrnn; its stdout."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    if os.path.exists(os.path.join(root, "streamrnn", "__init__.py")):
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(root), timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_small_networks_never_load_scipy_blas():
    """import streamrnn, and steps, step_many, online and window training of networks whose
    products stay below the own-kernel limits, load neither scipy.linalg nor its BLAS; a
    network above them (LSTM H=800: 256 streams x 3200 x 800 > 2^29 multiply-adds) does."""
    code = """
import sys
import numpy as np
import streamrnn as sr
seen = lambda: ("scipy.linalg" in sys.modules, "scipy.linalg.cython_blas" in sys.modules,
                sr._core._blas_is_loaded())
print(seen())
for cls in (sr.LSTM, sr.GRU, sr.RNN):
    net = cls(8, 256, num_layers=2, output_size=3, dtype="float64")
    s = net.new_state()
    net.step(np.ones(8), s)
    net.run(np.ones((5, 8)), s)
    b = net.new_states(300)
    net.step_many(np.ones((300, 8)), b)
    net.step_many(np.ones((20, 8)), b, index=np.arange(20))
    tr = sr.OnlineTrainer(net, k1=1, k2=32)
    for t in range(40):
        tr.learn_one(np.ones(8), np.ones(3))
    sr.SequenceTrainer(net).learn_sequence(np.ones((50, 8)), np.ones((50, 3)))
print(seen())
sr.LSTM(8, 800)
print(seen())
"""
    lines = _run_isolated(code).split()
    assert "".join(lines) == ("(False,False,False)" * 2 + "(True,True,True)")


def test_import_does_not_load_scipy_linalg():
    out = _run_isolated("import sys, streamrnn\n"
                        "print(sorted(m for m in sys.modules if m.startswith('scipy.linalg')))")
    assert out.strip() == "[]"
