"""Tests of the NumPy reference (streamrnn.reference) and the optimizer settings
(streamrnn.optim).

Everything the reference computes is checked against something written independently here:
a separate forward pass (sigmoid as 0.5*(1+tanh(x/2)), gates through reshapes), central
finite differences of that forward's loss, optimizer formulas written in their textbook
form, hand-worked numbers and, when PyTorch is installed, torch.nn / torch.optim.
"""
from __future__ import annotations

import copy
import importlib
import math
import pathlib
import pickle
import sys
import types
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st


def _load():
    """streamrnn.reference and streamrnn.optim; by path when the package (which imports
    the compiled core) cannot be imported here."""
    try:
        from streamrnn import optim, reference
        return reference, optim
    except ImportError:
        pkg_dir = pathlib.Path(__file__).resolve().parent.parent / "streamrnn"
        name = "_streamrnn_pure_for_tests"
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(pkg_dir)]  # a namespace for the two pure modules only
            sys.modules[name] = pkg
        return (importlib.import_module(name + ".reference"),
                importlib.import_module(name + ".optim"))


R, O = _load()
SGD, Adam, RMSprop = O.SGD, O.Adam, O.RMSprop

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]          # PyTorch's cells
VARIANTS = ["gru_reset_before", "lstm_peephole"]        # cells PyTorch does not have
ALL_CELLS = CELLS + VARIANTS
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3,
         "lstm_peephole": 4}
FD_EPS = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8

# ======================================================================================
# An independent implementation: unpacking, forward, losses, finite differences
# ======================================================================================


def ind_sig(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def ind_unpack(flat, cell, D, H, L, Osz):
    G = GATES[cell]
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        a = flat[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return a

    layers = []
    for k in range(L):
        din = D if k == 0 else H
        arrays = (take(G * H, din), take(G * H, H), take(G * H), take(G * H))
        # lstm_peephole: then the peepholes p_i, p_f, p_o (3, H)
        layers.append(arrays + ((take(3, H),) if cell == "lstm_peephole" else ()))
    head = (take(Osz, H), take(Osz)) if Osz else None
    assert pos[0] == flat.shape[0]
    return layers, head


def ind_step(cell, layers, head, x, h, c):
    """One step of the whole network; returns (y, h_new, c_new, pre-activations)."""
    hs, cs, pre = [], [], []
    inp = x
    for k, (Wi, Wh, bi, bh, *peep) in enumerate(layers):
        H = Wh.shape[1]
        if cell in ("rnn_tanh", "rnn_relu"):
            a = Wi @ inp + bi + Wh @ h[k] + bh
            pre.append(a)
            hn = np.tanh(a) if cell == "rnn_tanh" else np.maximum(a, 0.0)
        elif cell == "lstm":
            a = (Wi @ inp + bi + Wh @ h[k] + bh).reshape(4, H)
            i, f, g, o = ind_sig(a[0]), ind_sig(a[1]), np.tanh(a[2]), ind_sig(a[3])
            cn = f * c[k] + i * g
            hn = o * np.tanh(cn)
            cs.append(cn)
        elif cell == "lstm_peephole":  # ONNX's LSTM with P: i, f see c_{t-1}, o sees c_t
            a = (Wi @ inp + bi + Wh @ h[k] + bh).reshape(4, H)
            p_i, p_f, p_o = peep[0]
            i, f, g = ind_sig(a[0] + p_i * c[k]), ind_sig(a[1] + p_f * c[k]), np.tanh(a[2])
            cn = f * c[k] + i * g
            hn = ind_sig(a[3] + p_o * cn) * np.tanh(cn)
            cs.append(cn)
        elif cell == "gru":
            gi = (Wi @ inp + bi).reshape(3, H)
            gh = (Wh @ h[k] + bh).reshape(3, H)
            r = ind_sig(gi[0] + gh[0])
            z = ind_sig(gi[1] + gh[1])
            n = np.tanh(gi[2] + r * gh[2])
            hn = (1.0 - z) * n + z * h[k]
        else:  # gru_reset_before: ONNX linear_before_reset=0, Keras reset_after=False
            gi = (Wi @ inp + bi).reshape(3, H)
            Wr, Wz, Wn = Wh.reshape(3, H, H)
            br, bz, bn = bh.reshape(3, H)
            r = ind_sig(gi[0] + Wr @ h[k] + br)
            z = ind_sig(gi[1] + Wz @ h[k] + bz)
            n = np.tanh(gi[2] + Wn @ (r * h[k]) + bn)
            hn = (1.0 - z) * n + z * h[k]
        hs.append(hn)
        inp = hn
    y = head[0] @ inp + head[1] if head is not None else inp.copy()
    return y, np.array(hs), (np.array(cs) if cs else None), pre


def ind_run(cell, sizes, flat, h0, c0, X):
    layers, head = ind_unpack(flat, cell, *sizes)
    h, c = np.array(h0, dtype=float), (None if c0 is None else np.array(c0, dtype=float))
    ys, pres = [], []
    for x in X:
        y, h, c, pre = ind_step(cell, layers, head, x, h, c)
        ys.append(y)
        pres.extend(pre)
    return np.array(ys), h, c, pres


def targeted(loss, y):
    if y is None:
        return False
    if loss == "cross_entropy":
        return not (isinstance(y, float) and math.isnan(y))
    return not np.any(np.isnan(np.asarray(y, dtype=float)))


def ind_step_loss(loss, y, t):
    if loss == "mse":
        return float(np.mean((y - np.reshape(np.asarray(t, dtype=float), y.shape)) ** 2))
    return float(np.log(np.sum(np.exp(y))) - y[t])


def ind_loss(cell, sizes, flat, h0, c0, X, targets, loss, n_newest=None):
    Y, _, _, _ = ind_run(cell, sizes, flat, h0, c0, X)
    T = len(X)
    n_newest = T if n_newest is None else n_newest
    vals = [ind_step_loss(loss, Y[t], targets[t]) for t in range(max(T - n_newest, 0), T)
            if targeted(loss, targets[t])]
    return sum(vals) / len(vals) if vals else float("nan")


def fd_grad(f, flat, eps=FD_EPS):
    flat = np.array(flat, dtype=np.float64)
    g = np.empty_like(flat)
    for i in range(flat.shape[0]):
        old = flat[i]
        flat[i] = old + eps
        fp = f(flat)
        flat[i] = old - eps
        fm = f(flat)
        flat[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def assert_grad_close(g, fd):
    np.testing.assert_allclose(g, fd, rtol=FD_RTOL, atol=FD_ATOL)


def make_case(cell, D, H, L, Osz, T, loss, seed, scale=0.7, missing=()):
    rng = np.random.default_rng(seed)
    n = R.num_params(cell, D, H, L, Osz)
    flat = rng.uniform(-scale, scale, size=n)
    X = rng.normal(size=(T, D))
    h0 = rng.normal(scale=0.5, size=(L, H))
    c0 = rng.normal(scale=0.5, size=(L, H)) if cell.startswith("lstm") else None
    out = Osz or H
    targets = []
    for t in range(T):
        if loss == "mse":
            targets.append(rng.normal(size=out))
        else:
            targets.append(int(rng.integers(out)))
    for t in missing:
        if t < T:
            if loss == "mse":
                targets[t] = None if t % 2 else np.where(np.arange(out) == 0, np.nan, 1.0)
            else:
                targets[t] = None if t % 2 else float("nan")
    return flat, X, h0, c0, targets


def relu_margin_ok(cell, sizes, flat, h0, c0, X):
    """No pre-activation of a relu cell within a finite-difference step of its kink."""
    if cell != "rnn_relu":
        return True
    _, _, _, pres = ind_run(cell, sizes, flat, h0, c0, X)
    return min(float(np.min(np.abs(a))) for a in pres) > 1e-4


def ce_ok(loss, D, H, Osz):
    return loss == "mse" or (Osz or H) >= 2


# ======================================================================================
# layout
# ======================================================================================


def test_gate_count_and_cells():
    assert [R.gate_count(c) for c in ALL_CELLS] == [1, 1, 4, 3, 3, 4]
    assert list(R.CELLS) == ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before",
                             "lstm_peephole"]
    with pytest.raises(ValueError, match="cell"):
        R.gate_count("elman")


def test_param_shapes_literal():
    shapes = R.param_shapes("lstm", 2, 3, 2, 1)
    assert shapes == [
        ("weight_ih_l0", (12, 2)), ("weight_hh_l0", (12, 3)), ("bias_ih_l0", (12,)),
        ("bias_hh_l0", (12,)),
        ("weight_ih_l1", (12, 3)), ("weight_hh_l1", (12, 3)), ("bias_ih_l1", (12,)),
        ("bias_hh_l1", (12,)),
        ("head.weight", (1, 3)), ("head.bias", (1,)),
    ]
    assert R.num_params("lstm", 2, 3, 2, 1) == 184
    assert R.num_params("gru", 4, 5) == 15 * 4 + 15 * 5 + 30
    assert R.param_shapes("rnn_tanh", 1, 2, 1, None) == R.param_shapes("rnn_tanh", 1, 2, 1, 0)
    assert [k for k, _ in R.param_shapes("rnn_relu", 1, 2, 1, None)] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


def test_split_params_views_in_flat_order():
    n = R.num_params("gru", 2, 3, 2, 2)
    flat = np.arange(n, dtype=np.float64)
    p = R.split_params(flat, "gru", 2, 3, 2, 2)
    assert p["weight_ih_l0"][0, 0] == 0 and p["weight_ih_l0"][1, 0] == 2
    assert p["weight_hh_l0"][0, 0] == 18
    assert p["bias_ih_l0"][0] == 18 + 27
    assert p["weight_ih_l1"][0, 0] == 18 + 27 + 18
    assert p["head.bias"][-1] == n - 1
    p["bias_hh_l1"][2] = -7.0
    assert flat[18 + 27 + 18 + 27 + 27 + 9 + 2] == -7.0
    with pytest.raises(ValueError, match="flat"):
        R.split_params(np.zeros(n + 1), "gru", 2, 3, 2, 2)


def test_size_validation():
    with pytest.raises(ValueError, match="hidden_size"):
        R.param_shapes("lstm", 2, 0)
    with pytest.raises(TypeError, match="num_layers"):
        R.param_shapes("lstm", 2, 3, 1.0)
    with pytest.raises(TypeError, match="input_size"):
        R.Net("lstm", True, 3)
    with pytest.raises(TypeError, match="params"):
        R.Net("gru", 1, 2, params=np.zeros(R.num_params("gru", 1, 2), dtype=np.int64))


# ======================================================================================
# forward
# ======================================================================================


def test_sigmoid_stable_and_exact():
    x = np.concatenate([np.linspace(-50, 50, 2001), [-1e308, -800.0, 800.0, 1e308, -0.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        s = R.sigmoid(x)
    assert np.all((s >= 0) & (s <= 1))
    assert s[-5] == 0.0 and s[-2] == 1.0 and s[-1] == 0.5
    from scipy.special import expit
    np.testing.assert_allclose(s, expit(x), rtol=4e-16, atol=0)
    np.testing.assert_allclose(s, ind_sig(x), rtol=0, atol=1e-15)
    s32 = R.sigmoid(x[:2001].astype(np.float32))
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, expit(x[:2001].astype(np.float32).astype(np.float64)),
                               rtol=1e-6, atol=0)


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("Osz", [None, 2])
def test_forward_against_independent(cell, L, Osz):
    D, H, T = 3, 4, 7
    flat, X, h0, c0, _ = make_case(cell, D, H, L, Osz, T, "mse", seed=L * 10 + (Osz or 0))
    net = R.Net(cell, D, H, L, Osz, flat)
    h_in, c_in = h0.copy(), None if c0 is None else c0.copy()
    Y, hT, cT = net.run(X, h_in, c_in)
    Ye, hTe, cTe, _ = ind_run(cell, (D, H, L, Osz), flat, h0, c0, X)
    np.testing.assert_allclose(Y, Ye, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(hT, hTe, rtol=1e-13, atol=1e-14)
    if cell.startswith("lstm"):
        np.testing.assert_allclose(cT, cTe, rtol=1e-13, atol=1e-14)
    else:
        assert cT is None
    # purely functional: the arguments are untouched
    np.testing.assert_array_equal(h_in, h0)
    if c0 is not None:
        np.testing.assert_array_equal(c_in, c0)
    assert Y.shape == (T, Osz or H)
    # step() agrees with run()
    y0, h1, c1 = net.step(X[0], h0, c0)
    np.testing.assert_array_equal(y0, Y[0])


def test_net_params_by_reference_and_zero_state():
    n = R.num_params("lstm", 2, 3, 1, 1)
    flat = np.zeros(n)
    net = R.Net("lstm", 2, 3, 1, 1, flat)
    assert net.flat is flat
    h, c = net.zero_state()
    assert h.shape == (1, 3) and c.shape == (1, 3) and h.dtype == np.float64
    y, _, _ = net.step([1.0, 2.0], h, c)
    assert y.shape == (1,) and y[0] == 0.0
    flat[-1] = 0.25  # head.bias, written from outside
    y, _, _ = net.step([1.0, 2.0], h, c)
    assert y[0] == 0.25
    net_default = R.Net("gru", 1, 2)
    assert net_default.flat.dtype == np.float64 and not net_default.flat.any()
    assert net_default.zero_state()[1] is None
    with pytest.raises(ValueError, match="c must be None"):
        net_default.step([0.0], np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="h must have shape"):
        net_default.step([0.0], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="x must have shape"):
        net_default.step([0.0, 1.0], np.zeros((1, 2)))


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_float32_computes_in_float32(cell):
    D, H, L, Osz, T = 2, 5, 2, 3, 6
    flat, X, h0, c0, _ = make_case(cell, D, H, L, Osz, T, "mse", seed=3)
    net32 = R.Net(cell, D, H, L, Osz, flat.astype(np.float32))
    h, c = net32.zero_state()
    assert h.dtype == np.float32
    Y32, h32, _ = net32.run(X, h, c)
    assert Y32.dtype == np.float32 and h32.dtype == np.float32
    Ye, _, _, _ = ind_run(cell, (D, H, L, Osz), flat.astype(np.float32).astype(np.float64),
                          np.zeros((L, H)), None if c is None else np.zeros((L, H)),
                          X.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(Y32, Ye, rtol=1e-5, atol=1e-6)


def test_no_overflow_warnings_with_huge_preactivations():
    for cell in ["rnn_tanh", "lstm", "gru", "gru_reset_before", "lstm_peephole"]:
        n = R.num_params(cell, 1, 3, 2, 1)
        for sign in (1.0, -1.0):
            net = R.Net(cell, 1, 3, 2, 1, np.full(n, sign * 300.0))
            h, c = net.zero_state()
            with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
                warnings.simplefilter("error")
                Y, _, _ = net.run(np.array([[1.0], [-1.0], [2.0]]), h, c)
            assert np.all(np.isfinite(Y))


# ======================================================================================
# gradients against central finite differences
# ======================================================================================


def check_window_grad(cell, D, H, L, Osz, T, loss, seed, missing=(), n_newest=None):
    flat, X, h0, c0, targets = make_case(cell, D, H, L, Osz, T, loss, seed, missing=missing)
    sizes = (D, H, L, Osz)
    if not relu_margin_ok(cell, sizes, flat, h0, c0, X):
        return False
    net = R.Net(cell, D, H, L, Osz, flat.copy())
    value, grad = R.window_loss_and_grad(net, h0, c0, X, targets, loss, n_newest=n_newest)
    expected = ind_loss(cell, sizes, flat, h0, c0, X, targets, loss, n_newest)
    if math.isnan(expected):
        assert math.isnan(value) and not grad.any()
        return True
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-14)
    fd = fd_grad(lambda f: ind_loss(cell, sizes, f, h0, c0, X, targets, loss, n_newest), flat)
    assert grad.shape == flat.shape and grad.dtype == np.float64
    assert_grad_close(grad, fd)
    # the gradient reaches every parameter block (nothing silently left at zero)
    for key, block in R.split_params(grad, cell, *sizes).items():
        fblock = R.split_params(fd, cell, *sizes)[key]
        if np.abs(fblock).max() > 1e-6:
            assert np.abs(block).max() > 0, key
    np.testing.assert_array_equal(net.flat, flat)  # the weights were not touched
    return True


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("L,Osz", [(1, None), (1, 3), (2, 2), (3, None)])
def test_window_grad_vs_finite_differences(cell, loss, L, Osz):
    seed = ALL_CELLS.index(cell) * 100 + L * 10 + (Osz or 0) + (loss == "mse")
    ok = False
    for attempt in range(5):  # relu: another seed if a pre-activation sits on the kink
        ok = check_window_grad(cell, 2, 3, L, Osz, 5, loss, seed + 1000 * attempt,
                               missing=(1, 2))
        if ok:
            break
    assert ok


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_window_grad_loss_only_on_newest_steps(cell):
    # TBPTT(k1, k2): the loss of the 2 newest steps, backpropagated through all 6
    assert check_window_grad(cell, 2, 3, 2, 2, 6, "mse", seed=77, missing=(5,), n_newest=2)


def test_window_without_targets_is_nan_and_zero():
    flat, X, h0, c0, _ = make_case("gru", 2, 3, 1, 2, 3, "mse", seed=1)
    net = R.Net("gru", 2, 3, 1, 2, flat)
    value, grad = R.window_loss_and_grad(net, h0, c0, X, [None, [np.nan, 0.0], None])
    assert math.isnan(value) and grad.shape == flat.shape and not grad.any()


@st.composite
def window_cases(draw):
    cell = draw(st.sampled_from(ALL_CELLS))
    L = draw(st.integers(1, 3))
    D = draw(st.integers(1, 3))
    H = draw(st.integers(1, 3))
    Osz = draw(st.sampled_from([None, 1, 2, 3]))
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    if not ce_ok(loss, D, H, Osz):
        Osz = draw(st.integers(2, 3))
    T = draw(st.integers(1, 5))
    missing = tuple(t for t in range(T) if draw(st.booleans()) and draw(st.booleans()))
    n_newest = draw(st.one_of(st.none(), st.integers(1, T)))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return cell, D, H, L, Osz, T, loss, seed, missing, n_newest


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window_cases())
def test_window_grad_property(case):
    cell, D, H, L, Osz, T, loss, seed, missing, n_newest = case
    assume(check_window_grad(cell, D, H, L, Osz, T, loss, seed, missing, n_newest))


# ======================================================================================
# optimizer settings (streamrnn.optim)
# ======================================================================================


def test_optim_defaults_kind_repr_eq_pickle():
    s, a, r = SGD(0.1), Adam(), RMSprop()
    assert (s.kind, a.kind, r.kind) == ("sgd", "adam", "rmsprop")
    assert (s.lr, s.momentum, s.nesterov, s.weight_decay) == (0.1, 0.0, False, 0.0)
    assert (a.lr, a.betas, a.eps, a.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert (r.lr, r.alpha, r.eps, r.momentum, r.weight_decay) == (1e-2, 0.99, 1e-8, 0.0, 0.0)
    assert repr(a) == "Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)"
    for o in (SGD(0.5, momentum=0.9, nesterov=True, weight_decay=1e-4),
              Adam(2e-3, betas=[0.5, 0.75], eps=1e-6, weight_decay=0.1),
              RMSprop(0.1, alpha=0.0, eps=1e-3, momentum=0.5, weight_decay=0.2)):
        assert eval(repr(o), {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}) == o
        assert pickle.loads(pickle.dumps(o)) == o
        assert copy.deepcopy(o) == o and hash(copy.copy(o)) == hash(o)
    assert SGD(0.1) != SGD(0.2) and SGD(0.1) != RMSprop(0.1)
    assert Adam(betas=[0.5, 0.75]).betas == (0.5, 0.75)
    assert isinstance(SGD(np.float32(0.5)).lr, float) and SGD(1).lr == 1.0
    with pytest.raises(AttributeError):
        a.lr = 1.0


@pytest.mark.parametrize("make,exc,words", [
    (lambda: SGD(-1.0), ValueError, ["lr", ">= 0", "-1.0"]),
    (lambda: SGD(True), TypeError, ["lr", "bool"]),
    (lambda: SGD(np.bool_(True)), TypeError, ["lr"]),
    (lambda: SGD("0.1"), TypeError, ["lr", "str"]),
    (lambda: SGD(float("nan")), ValueError, ["lr", "nan"]),
    (lambda: SGD(0.1, momentum=float("inf")), ValueError, ["momentum", "inf"]),
    (lambda: SGD(0.1, momentum=-0.5), ValueError, ["momentum", "-0.5"]),
    (lambda: SGD(0.1, nesterov=True), ValueError, ["nesterov", "momentum"]),
    (lambda: SGD(0.1, momentum=0.9, nesterov=1), TypeError, ["nesterov", "bool"]),
    (lambda: SGD(0.1, weight_decay=-1e-3), ValueError, ["weight_decay"]),
    (lambda: Adam(lr=-1e-3), ValueError, ["lr"]),
    (lambda: Adam(betas=(1.0, 0.9)), ValueError, ["betas[0]", "[0, 1)", "1.0"]),
    (lambda: Adam(betas=(0.9, -0.1)), ValueError, ["betas[1]"]),
    (lambda: Adam(betas=(0.9, 0.99, 0.5)), ValueError, ["betas", "pair"]),
    (lambda: Adam(betas=0.9), TypeError, ["betas"]),
    (lambda: Adam(eps=0.0), ValueError, ["eps", "> 0"]),
    (lambda: Adam(eps=None), TypeError, ["eps", "NoneType"]),
    (lambda: Adam(weight_decay=False), TypeError, ["weight_decay"]),
    (lambda: RMSprop(alpha=1.0), ValueError, ["alpha", "[0, 1)"]),
    (lambda: RMSprop(alpha=-0.1), ValueError, ["alpha"]),
    (lambda: RMSprop(eps=-1.0), ValueError, ["eps"]),
    (lambda: RMSprop(momentum=-1.0), ValueError, ["momentum"]),
])
def test_optim_validation(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for w in words:
        assert w in str(info.value)


def test_optim_boundaries_accepted():
    SGD(0.0)
    RMSprop(alpha=0.0)
    Adam(betas=(0.0, 0.0))
    SGD(0.1, momentum=0.5, nesterov=True)


# ======================================================================================
# optimizer formulas on hand-worked numbers
# ======================================================================================


def run_opt(opt, grads, p0):
    p = np.array(p0, dtype=np.float64)
    m1, m2 = np.zeros_like(p), np.zeros_like(p)
    out = []
    for step, g in enumerate(grads):
        p, m1, m2 = R.optimizer_step(opt, p, np.array(g, dtype=np.float64), m1, m2, step)
        out.append(p.copy())
    return out, m1, m2


def test_sgd_hand_numbers():
    (p1, p2), _, _ = run_opt(SGD(0.1), [[0.5], [0.5]], [1.0])
    assert p1[0] == pytest.approx(0.95, abs=1e-15) and p2[0] == pytest.approx(0.9, abs=1e-15)
    # momentum: buf = 0.5 -> p = 0.95; buf = 0.9*0.5 + 0.5 = 0.95 -> p = 0.95 - 0.095
    (p1, p2), m1, _ = run_opt(SGD(0.1, momentum=0.9), [[0.5], [0.5]], [1.0])
    assert p1[0] == pytest.approx(0.95, abs=1e-15)
    assert p2[0] == pytest.approx(0.855, abs=1e-15)
    assert m1[0] == pytest.approx(0.95, abs=1e-15)
    # nesterov: buf = 0.5, g = 0.5 + 0.45 = 0.95 -> 0.905; buf = 0.95, g = 0.5 + 0.855
    (p1, p2), _, _ = run_opt(SGD(0.1, momentum=0.9, nesterov=True), [[0.5], [0.5]], [1.0])
    assert p1[0] == pytest.approx(0.905, abs=1e-15)
    assert p2[0] == pytest.approx(0.905 - 0.1355, abs=1e-15)
    # weight decay: g = 0.5 + 0.1*2 = 0.7 -> 2 - 0.07
    (p1,), _, _ = run_opt(SGD(0.1, weight_decay=0.1), [[0.5]], [2.0])
    assert p1[0] == pytest.approx(1.93, abs=1e-15)
    # lr = 0: nothing moves, but the momentum buffer still fills
    (p1,), m1, _ = run_opt(SGD(0.0, momentum=0.5), [[3.0]], [1.0])
    assert p1[0] == 1.0 and m1[0] == 3.0


def test_adam_hand_numbers():
    # step 1, g = 0.5: m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25
    # step 2, g = -0.25: m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225
    (p1, p2), m1, m2 = run_opt(Adam(lr=0.1), [[0.5], [-0.25]], [1.0])
    e1 = 1.0 - 0.1 * 0.5 / (math.sqrt(0.25) + 1e-8)
    mhat2 = 0.02 / (1 - 0.9 ** 2)
    vhat2 = 0.00031225 / (1 - 0.999 ** 2)
    e2 = e1 - 0.1 * mhat2 / (math.sqrt(vhat2) + 1e-8)
    assert p1[0] == pytest.approx(e1, rel=1e-14)
    assert p2[0] == pytest.approx(e2, rel=1e-14)
    assert p1[0] == pytest.approx(0.900000002, abs=1e-12)
    assert p2[0] == pytest.approx(0.8733663, abs=1e-7)    # worked by hand: step 0.0266337
    assert m1[0] == pytest.approx(0.02, rel=1e-14)
    assert m2[0] == pytest.approx(0.00031225, rel=1e-13)
    # weight decay enters the moments: g = 0.5 + 0.5*1 = 1 -> step of lr*1/(1+eps)
    (p1,), m1, _ = run_opt(Adam(lr=0.01, betas=(0.5, 0.5), weight_decay=0.5), [[0.5]], [1.0])
    assert m1[0] == pytest.approx(0.5, rel=1e-15)
    assert p1[0] == pytest.approx(1.0 - 0.01 / (1 + 1e-8), rel=1e-15)


def test_rmsprop_hand_numbers():
    # v = 0.01*0.25 = 0.0025, avg = 0.05 + 1e-8
    (p1, p2), m1, m2 = run_opt(RMSprop(lr=0.01), [[0.5], [0.5]], [1.0])
    assert p1[0] == pytest.approx(1.0 - 0.01 * 0.5 / (0.05 + 1e-8), rel=1e-14)
    v2 = 0.99 * 0.0025 + 0.01 * 0.25
    assert m2[0] == pytest.approx(0.004975, rel=1e-14) and v2 == pytest.approx(0.004975)
    assert p2[0] == pytest.approx(p1[0] - 0.01 * 0.5 / (math.sqrt(0.004975) + 1e-8), rel=1e-14)
    assert not m1.any()
    # momentum: buf = 0.5/avg1 ~ 10; then buf = 0.9*buf + 0.5/avg2
    (p1, p2), m1, _ = run_opt(RMSprop(lr=0.01, momentum=0.9), [[0.5], [0.5]], [1.0])
    b1 = 0.5 / (0.05 + 1e-8)
    b2 = 0.9 * b1 + 0.5 / (math.sqrt(0.004975) + 1e-8)
    assert p1[0] == pytest.approx(1.0 - 0.01 * b1, rel=1e-14)
    assert p2[0] == pytest.approx(1.0 - 0.01 * b1 - 0.01 * b2, rel=1e-14)
    assert m1[0] == pytest.approx(b2, rel=1e-14)
    assert b2 == pytest.approx(16.0888, abs=1e-3)
    # weight decay, alpha = 0: v = g^2, so the step is lr * sign(g)
    (p1,), _, _ = run_opt(RMSprop(lr=0.1, alpha=0.0, weight_decay=1.0), [[-3.0]], [1.0])
    assert p1[0] == pytest.approx(1.0 + 0.1 * 2.0 / (2.0 + 1e-8), rel=1e-15)


def test_optimizer_step_is_functional():
    p, g = np.array([1.0, 2.0]), np.array([0.1, -0.2])
    m1, m2 = np.array([0.3, 0.4]), np.array([0.5, 0.6])
    keep = [a.copy() for a in (p, g, m1, m2)]
    for opt in (SGD(0.1, momentum=0.9), Adam(0.1), RMSprop(0.1, momentum=0.5)):
        R.optimizer_step(opt, p, g, m1, m2, 3)
        for a, b in zip((p, g, m1, m2), keep):
            np.testing.assert_array_equal(a, b)


# ======================================================================================
# clipping
# ======================================================================================


def test_clip_gradient_hand_numbers():
    g = np.array([3.0, -4.0])
    np.testing.assert_array_equal(R.clip_gradient(g), g)
    np.testing.assert_array_equal(R.clip_gradient(g, clip_value=3.5), [3.0, -3.5])
    np.testing.assert_allclose(R.clip_gradient(g, clip_norm=1.0), g / (5.0 + 1e-6),
                               rtol=1e-15)
    # below the threshold: untouched (coefficient clamped to 1, not scaled up)
    np.testing.assert_array_equal(R.clip_gradient(g, clip_norm=10.0), g)
    # the 1e-6 guard: exactly at the norm the gradient shrinks very slightly
    np.testing.assert_allclose(R.clip_gradient(g, clip_norm=5.0), g * 5.0 / (5.0 + 1e-6),
                               rtol=1e-15)
    # value first (-> [2, -2], norm 2*sqrt(2)), then norm
    both = R.clip_gradient(g, clip_value=2.0, clip_norm=1.0)
    np.testing.assert_allclose(both, np.array([2.0, -2.0]) / (math.sqrt(8.0) + 1e-6),
                               rtol=1e-15)
    np.testing.assert_array_equal(g, [3.0, -4.0])  # input untouched
    g32 = np.array([3.0, -4.0], dtype=np.float32)
    assert R.clip_gradient(g32, 1.0, 1.0).dtype == np.float32


# ======================================================================================
# the Trainer against independent training loops
# ======================================================================================


def ind_opt_state(n):
    return {"t": 0, "m": np.zeros(n), "v": np.zeros(n), "buf": None}


def ind_opt_update(opt, p, g, s):
    """torch.optim's update in its textbook form (bias-corrected m-hat/v-hat for Adam)."""
    g = g + opt.weight_decay * p
    s["t"] += 1
    if opt.kind == "sgd":
        if opt.momentum:
            s["buf"] = g.copy() if s["buf"] is None else opt.momentum * s["buf"] + g
            g = g + opt.momentum * s["buf"] if opt.nesterov else s["buf"]
        return p - opt.lr * g
    if opt.kind == "adam":
        b1, b2 = opt.betas
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        mhat = s["m"] / (1 - b1 ** s["t"])
        vhat = s["v"] / (1 - b2 ** s["t"])
        return p - opt.lr * mhat / (np.sqrt(vhat) + opt.eps)
    s["v"] = opt.alpha * s["v"] + (1 - opt.alpha) * g * g
    step = g / (np.sqrt(s["v"]) + opt.eps)
    if opt.momentum:
        s["m"] = opt.momentum * s["m"] + step
        step = s["m"]
    return p - opt.lr * step


def ind_clip(g, cv, cn):
    if cv is not None:
        g = np.minimum(np.maximum(g, -cv), cv)
    if cn is not None:
        total = math.sqrt(sum(float(v) ** 2 for v in g))
        g = g * min(1.0, cn / (total + 1e-6))
    return g


def ind_detached_loop(cell, sizes, flat0, X, targets, K, loss, opt, cv=None, cn=None):
    """'Run K steps from a detached state, mean loss, one gradient step' with finite
    differences. Returns (final weights, predictions, pre-clip gradient norms)."""
    D, H, L, Osz = sizes
    flat = flat0.copy()
    h = np.zeros((L, H))
    c = np.zeros((L, H)) if cell.startswith("lstm") else None
    state = ind_opt_state(flat.shape[0])
    preds, norms = [], []
    for w in range(0, len(X), K):
        Xw, tw = X[w:w + K], targets[w:w + K]
        Y, hT, cT, _ = ind_run(cell, sizes, flat, h, c, Xw)
        preds.extend(Y)
        if len(Xw) == K and any(targeted(loss, t) for t in tw):
            g = fd_grad(lambda f: ind_loss(cell, sizes, f, h, c, Xw, tw, loss), flat)
            norms.append(float(np.linalg.norm(g)))
            flat = ind_opt_update(opt, flat, ind_clip(g, cv, cn), state)
        h, c = hT, cT
    return flat, np.array(preds), norms


LOOP_CASES = [
    ("lstm", SGD(0.5), None, None, "mse"),
    ("gru", SGD(0.3, momentum=0.9, nesterov=True, weight_decay=0.01), None, 0.05, "mse"),
    ("rnn_tanh", SGD(0.3, momentum=0.5), 0.02, None, "cross_entropy"),
    ("rnn_relu", SGD(0.2, weight_decay=0.1), 0.05, 0.03, "mse"),
    # eps large enough that Adam/RMSprop's normalisation stays smooth under FD errors
    ("lstm", Adam(0.05, betas=(0.8, 0.9), eps=0.5, weight_decay=0.05), None, None, "mse"),
    ("gru", Adam(0.05, eps=0.5), 0.02, 0.05, "cross_entropy"),
    ("rnn_tanh", RMSprop(0.05, alpha=0.9, eps=0.5, momentum=0.7), None, 0.05, "mse"),
    ("lstm", RMSprop(0.05, eps=0.5, weight_decay=0.1), 0.01, None, "cross_entropy"),
]


@pytest.mark.parametrize("cell,opt,cv,cn,loss", LOOP_CASES)
def test_trainer_k1_eq_k2_equals_detached_loop(cell, opt, cv, cn, loss):
    K, T = 3, 10   # the last window is partial: 1 step, no update at its end
    sizes = (2, 3, 2, 2)
    flat0, X, _, _, targets = make_case(cell, *sizes, T, loss, seed=5, scale=0.6,
                                        missing=(1, 4, 5))
    # a window (steps 3..5) with only one target, and the first with two
    # fixed data: finite differences are valid only away from the relu kink (a property of
    # this seed's case, so an assertion, never a skip)
    assert relu_margin_ok(cell, sizes, flat0, np.zeros((2, 3)), None, X[:3]), \
        "this fixed case sits on a relu kink: pick another seed"
    expected, preds_e, norms = ind_detached_loop(cell, sizes, flat0, X, targets, K, loss, opt,
                                                 cv, cn)
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, loss=loss, optimizer=opt, k1=K, k2=K, clip_value=cv, clip_norm=cn)
    preds = np.array([tr.learn_one(X[t], targets[t]) for t in range(T)])
    np.testing.assert_allclose(preds, preds_e, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(net.flat, expected, rtol=1e-7, atol=1e-8)
    assert np.abs(net.flat - flat0).max() > 1e-3  # it did learn something
    assert tr.updates == 3 and tr.skipped == 0 and tr.steps == T
    assert tr.last_grad_norm == pytest.approx(norms[-1], rel=1e-6)


def test_trainer_k1_lt_k2_uses_recorded_activations():
    """TBPTT(k1=2, k2=5) for a 1-layer tanh RNN without head, derived by hand: the stale
    records of older steps, the current W_hh in the backward, the loss of the 2 newest
    steps, a constant state entering the window, and a window that restarts at reset."""
    D, H, k1, k2, lr = 2, 3, 2, 5, 0.4
    rng = np.random.default_rng(11)
    n = R.num_params("rnn_tanh", D, H)
    flat0 = rng.uniform(-0.8, 0.8, size=n)
    T = 15
    X = rng.normal(size=(T, D))
    Y = [rng.normal(scale=0.5, size=H) for _ in range(T)]
    Y[6] = None
    Y[7] = None        # the update at step 8 has no target: no update
    Y[12] = None
    reset_before = 10  # trainer.reset() before step index 10

    def hand(recompute):
        Wi = flat0[:H * D].reshape(H, D).copy()
        Wh = flat0[H * D:H * D + H * H].reshape(H, H).copy()
        bi = flat0[H * D + H * H:H * D + H * H + H].copy()
        bh = flat0[H * D + H * H + H:].copy()
        h = np.zeros(H)
        ring = []   # (x, h_prev, h, y)
        since = 0
        updates = 0
        for t in range(T):
            if t == reset_before:
                h, ring, since = np.zeros(H), [], 0
            hn = np.tanh(Wi @ X[t] + bi + Wh @ h + bh)
            ring = (ring + [(X[t], h, hn, Y[t])])[-k2:]
            h = hn
            since += 1
            if since < k1:
                continue
            since = 0
            newest = [r for r in ring[-k1:] if r[3] is not None]
            if not newest:
                continue
            if recompute:   # what a forward-recompute implementation would use instead
                hh, new_ring = ring[0][1], []
                for (x, _, _, y) in ring:
                    h2 = np.tanh(Wi @ x + bi + Wh @ hh + bh)
                    new_ring.append((x, hh, h2, y))
                    hh = h2
                ring_used = new_ring
            else:
                ring_used = ring
            gWi, gWh = np.zeros_like(Wi), np.zeros_like(Wh)
            gbi, gbh = np.zeros(H), np.zeros(H)
            carry = np.zeros(H)
            for j in range(len(ring_used) - 1, -1, -1):
                x, hp, hn_, y = ring_used[j]
                dh = carry.copy()
                if j >= len(ring_used) - k1 and y is not None:
                    dh += 2.0 * (hn_ - y) / H / len(newest)
                da = dh * (1.0 - hn_ ** 2)
                gWi += np.outer(da, x)
                gWh += np.outer(da, hp)
                gbi += da
                gbh += da
                carry = Wh.T @ da
            Wi, Wh, bi, bh = Wi - lr * gWi, Wh - lr * gWh, bi - lr * gbi, bh - lr * gbh
            updates += 1
        return np.concatenate([Wi.ravel(), Wh.ravel(), bi, bh]), updates

    expected, n_updates = hand(recompute=False)
    recomputed, _ = hand(recompute=True)
    assert np.abs(expected - recomputed).max() > 1e-4   # the test tells the two apart

    net = R.Net("rnn_tanh", D, H, params=flat0.copy())
    tr = R.Trainer(net, optimizer=SGD(lr), k1=k1, k2=k2)
    for t in range(T):
        if t == reset_before:
            tr.reset()
        tr.learn_one(X[t], Y[t])
    assert tr.updates == n_updates == 6   # steps 2, 4, 6, 10 | reset | 12, 14
    np.testing.assert_allclose(net.flat, expected, rtol=1e-12, atol=1e-13)


def test_trainer_clip_value_per_component_and_reported_norm():
    cell, sizes, K = "lstm", (2, 3, 1, 1), 4
    flat0, X, _, _, targets = make_case(cell, *sizes, K, "mse", seed=21)
    h0 = np.zeros((1, 3))
    g = fd_grad(lambda f: ind_loss(cell, sizes, f, h0, h0, X, targets, "mse"), flat0)
    mags = np.sort(np.abs(g))
    gaps = np.diff(mags)
    i = len(mags) // 2 + int(np.argmax(gaps[len(mags) // 2:]))
    cv = 0.5 * (mags[i] + mags[i + 1])   # well away from every |g_i|
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, optimizer=SGD(1.0), k1=K, k2=K, clip_value=cv)
    for t in range(K):
        tr.learn_one(X[t], targets[t])
    step = flat0 - net.flat
    np.testing.assert_allclose(step, np.clip(g, -cv, cv), rtol=1e-6, atol=1e-9)
    assert np.sum(np.abs(step) == cv) == np.sum(np.abs(g) > cv) > 0
    assert tr.last_grad_norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-7)


def test_trainer_clip_norm_scales_whole_gradient():
    cell, sizes, K = "gru", (2, 3, 2, 2), 3
    flat0, X, _, _, targets = make_case(cell, *sizes, K, "cross_entropy", seed=22)
    h0 = np.zeros((2, 3))
    g = fd_grad(lambda f: ind_loss(cell, sizes, f, h0, None, X, targets, "cross_entropy"),
                flat0)
    norm = float(np.linalg.norm(g))
    for cn, scaled in ((0.25 * norm, True), (4.0 * norm, False)):
        net = R.Net(cell, *sizes, flat0.copy())
        tr = R.Trainer(net, loss="cross_entropy", optimizer=SGD(0.5), k1=K, k2=K,
                       clip_norm=cn)
        for t in range(K):
            tr.learn_one(X[t], targets[t])
        coef = cn / (norm + 1e-6) if scaled else 1.0
        np.testing.assert_allclose(flat0 - net.flat, 0.5 * g * coef, rtol=1e-6, atol=1e-10)
        assert tr.last_grad_norm == pytest.approx(norm, rel=1e-7)


# ======================================================================================
# the Trainer's bookkeeping
# ======================================================================================


def test_trainer_counters_losses_and_prediction_honesty():
    cell, sizes = "gru", (1, 4, 1, 1)
    flat0, X, _, _, targets = make_case(cell, *sizes, 9, "mse", seed=31, missing=(3, 4, 5))
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, optimizer=SGD(0.1), k1=3, k2=6)
    assert math.isnan(tr.last_loss) and math.isnan(tr.last_grad_norm)
    assert math.isnan(tr.running_loss) and tr.steps == tr.updates == tr.skipped == 0
    preds, snaps = [], []
    for t in range(9):
        before = net.flat.copy()
        # the prediction is made with the weights before this step's update, on the state
        expected_pred = tr.predict_one(X[t])
        y = tr.learn_one(X[t][0], targets[t])        # scalar x is fine when D == 1
        np.testing.assert_array_equal(y, expected_pred)
        preds.append(y)
        snaps.append(not np.array_equal(before, net.flat))
    # updates at steps 3 and 9; at step 6 the 3 newest steps (3, 4, 5) have no target
    assert snaps == [False, False, True, False, False, False, False, False, True]
    assert tr.updates == 2 and tr.skipped == 0 and tr.steps == 9
    losses = [float(np.mean((preds[t] - targets[t]) ** 2)) for t in range(9)
              if targets[t] is not None and not np.any(np.isnan(targets[t]))]
    assert tr.running_loss == pytest.approx(np.mean(losses), rel=1e-13)
    assert tr.last_loss == pytest.approx(np.mean(losses[-3:]), rel=1e-13)
    # the returned prediction is a copy
    preds[-1][...] = 123.0
    assert tr.ring[-1].y[0] != 123.0


def test_trainer_predict_one_does_not_advance():
    cell, sizes = "lstm", (2, 3, 2, None)
    flat0, X, _, _, targets = make_case(cell, *sizes, 4, "mse", seed=32)
    a = R.Trainer(R.Net(cell, *sizes, flat0.copy()), optimizer=SGD(0.1), k1=2, k2=4)
    b = R.Trainer(R.Net(cell, *sizes, flat0.copy()), optimizer=SGD(0.1), k1=2, k2=4)
    for t in range(4):
        a.predict_one(X[(t + 1) % 4])
        a.predict_one(X[t])
        ya, yb = a.learn_one(X[t], targets[t]), b.learn_one(X[t], targets[t])
        np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(a.net.flat, b.net.flat)
    assert a.steps == 4


def test_trainer_reset_semantics():
    cell, sizes = "lstm", (2, 3, 1, 1)
    flat0, X, _, _, targets = make_case(cell, *sizes, 6, "mse", seed=33)
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, optimizer=Adam(0.01), k1=3, k2=3)
    for t in range(4):
        tr.learn_one(X[t], targets[t])
    m1, m2, w = tr.m1.copy(), tr.m2.copy(), net.flat.copy()
    assert tr.updates == 1 and tr.opt_steps == 1
    tr.reset()
    assert tr.steps == 0 and len(tr.ring) == 0 and math.isnan(tr.running_loss)
    assert not tr.h.any() and not tr.c.any()
    assert tr.updates == 1 and tr.opt_steps == 1 and not math.isnan(tr.last_loss)
    np.testing.assert_array_equal(tr.m1, m1)
    np.testing.assert_array_equal(tr.m2, m2)
    np.testing.assert_array_equal(net.flat, w)
    # the state is zero again: the prediction equals a fresh run with the current weights
    y_e, _, _, _ = ind_run(cell, sizes, net.flat, np.zeros((1, 3)), np.zeros((1, 3)), X[:1])
    np.testing.assert_allclose(tr.learn_one(X[0], targets[0]), y_e[0], rtol=1e-13)
    # the k1 phase restarted: 2 more steps -> the update comes at the 3rd step after reset
    tr.learn_one(X[1], targets[1])
    assert tr.updates == 1
    tr.learn_one(X[2], targets[2])
    assert tr.updates == 2 and tr.opt_steps == 2


def test_trainer_no_targets_no_update_at_all():
    cell, sizes = "rnn_tanh", (1, 3, 1, 1)
    flat0, X, _, _, _ = make_case(cell, *sizes, 6, "mse", seed=34)
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, optimizer=SGD(0.1, momentum=0.9, weight_decay=0.5), k1=2, k2=4)
    for t in range(6):
        tr.learn_one(X[t], None if t % 2 else [float("nan")])
    np.testing.assert_array_equal(net.flat, flat0)   # weight decay was not applied either
    assert tr.updates == 0 and tr.skipped == 0 and tr.opt_steps == 0
    assert math.isnan(tr.last_loss) and math.isnan(tr.last_grad_norm) and not tr.m1.any()
    # a target outside the k1 newest steps does not cause an update either
    tr2 = R.Trainer(R.Net(cell, *sizes, flat0.copy()), optimizer=SGD(0.1), k1=2, k2=4)
    for t, y in enumerate([0.5, None, None, None]):
        tr2.learn_one(X[t], y)
    assert tr2.updates == 1   # at step 2 only
    w = tr2.net.flat.copy()
    tr2.learn_one(X[4], None)
    tr2.learn_one(X[5], None)
    assert tr2.updates == 1
    np.testing.assert_array_equal(tr2.net.flat, w)


def _trained(opt, seed=41):
    cell, sizes = "lstm", (2, 3, 1, 2)
    flat0, X, _, _, targets = make_case(cell, *sizes, 4, "mse", seed=seed)
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, optimizer=opt, k1=1, k2=3)
    for t in range(3):
        tr.learn_one(X[t], targets[t])
    assert tr.updates == 3
    return tr, X


def _frozen(tr):
    return (tr.net.flat.tobytes(), tr.m1.tobytes(), tr.m2.tobytes(), tr.opt_steps,
            tr.updates)


@pytest.mark.parametrize("opt", [Adam(0.01), SGD(0.1, momentum=0.9),
                                 RMSprop(0.01, momentum=0.5)])
def test_nonfinite_loss_skips_bit_for_bit(opt):
    tr, X = _trained(opt)
    before = _frozen(tr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # and no RuntimeWarning on the way
        tr.learn_one(X[3], [1e200, 0.0])  # (y - 1e200)^2 overflows: the loss is inf
    assert _frozen(tr) == before
    assert tr.skipped == 1 and tr.steps == 4
    assert math.isinf(tr.last_loss) and not math.isfinite(tr.last_grad_norm)
    # and the next good update works from the unchanged state (Adam's t continues at 4)
    tr.learn_one(X[0], [0.1, 0.2])
    assert tr.updates == 4 and tr.opt_steps == 4 and tr.skipped == 1
    assert np.all(np.isfinite(tr.net.flat))


@pytest.mark.parametrize("opt", [
    Adam(0.01, weight_decay=1e300),     # g + wd*p is finite, v = g*g is not (p would be)
    SGD(1e308),                         # p - lr*g overflows
    RMSprop(1e-2, weight_decay=1e300),  # v overflows
    SGD(1e308, momentum=0.9, nesterov=True),  # the momentum buffer is finite, p is not
])
def test_overflowing_update_is_skipped_bit_for_bit(opt):
    tr, X = _trained(SGD(0.01))
    tr.optimizer = opt            # swap the settings, keep the state
    before = _frozen(tr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.learn_one(X[3], [30.0, -30.0])
    assert _frozen(tr) == before
    assert tr.skipped == 1 and math.isfinite(tr.last_loss) and math.isfinite(tr.last_grad_norm)


def test_float32_trainer_stays_float32():
    cell, sizes = "gru", (2, 3, 1, 1)
    flat0, X, _, _, targets = make_case(cell, *sizes, 5, "mse", seed=51)
    net32 = R.Net(cell, *sizes, flat0.astype(np.float32))
    net64 = R.Net(cell, *sizes, flat0.astype(np.float32).astype(np.float64))
    t32 = R.Trainer(net32, optimizer=Adam(0.01), k1=1, k2=4, clip_norm=1.0)
    t64 = R.Trainer(net64, optimizer=Adam(0.01), k1=1, k2=4, clip_norm=1.0)
    for t in range(5):
        y32 = t32.learn_one(X[t], targets[t])
        y64 = t64.learn_one(X[t], targets[t])
        assert y32.dtype == np.float32
        np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    assert net32.flat.dtype == np.float32 and t32.m1.dtype == np.float32
    np.testing.assert_allclose(net32.flat, net64.flat, rtol=1e-4, atol=1e-5)


def test_learn_many_matches_learn_one():
    cell, sizes = "rnn_tanh", (2, 3, 2, 3)
    flat0, X, _, _, targets = make_case(cell, *sizes, 7, "cross_entropy", seed=52)
    a = R.Trainer(R.Net(cell, *sizes, flat0.copy()), "cross_entropy", SGD(0.1), k1=2, k2=3)
    b = R.Trainer(R.Net(cell, *sizes, flat0.copy()), "cross_entropy", SGD(0.1), k1=2, k2=3)
    ys = [targets[t] if t != 3 else -1 for t in range(7)]
    Pa = a.learn_many(X, ys)
    Pb = np.array([b.learn_one(X[t], None if t == 3 else targets[t]) for t in range(7)])
    np.testing.assert_array_equal(Pa, Pb)
    np.testing.assert_array_equal(a.net.flat, b.net.flat)


# ======================================================================================
# validation
# ======================================================================================


def _net(cell="lstm", O=2):
    return R.Net(cell, 2, 3, 1, O, np.zeros(R.num_params(cell, 2, 3, 1, O)))


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(k1=0), ValueError, ["k1", ">= 1", "0"]),
    (dict(k1=2.0), TypeError, ["k1"]),
    (dict(k1=True), TypeError, ["k1", "bool"]),
    (dict(k1=4, k2=3), ValueError, ["k2", ">= k1", "3"]),
    (dict(k2=0), ValueError, ["k2"]),
    (dict(loss="mae"), ValueError, ["loss", "mae"]),
    (dict(loss=None), ValueError, ["loss"]),
    (dict(optimizer="adam"), TypeError, ["optimizer", "str"]),
    (dict(clip_value=0.0), ValueError, ["clip_value", "> 0"]),
    (dict(clip_value=-1.0), ValueError, ["clip_value"]),
    (dict(clip_norm=float("inf")), ValueError, ["clip_norm", "inf"]),
    (dict(clip_norm=float("nan")), ValueError, ["clip_norm"]),
    (dict(clip_norm=True), TypeError, ["clip_norm", "bool"]),
    (dict(clip_value="1"), TypeError, ["clip_value"]),
])
def test_trainer_settings_validation(kwargs, exc, words):
    with pytest.raises(exc) as info:
        R.Trainer(_net(), **kwargs)
    for w in words:
        assert w in str(info.value)


def test_trainer_validation_misc():
    with pytest.raises(TypeError, match="net"):
        R.Trainer("lstm")
    with pytest.raises(ValueError, match="cross_entropy"):
        R.Trainer(_net(O=1), loss="cross_entropy")
    tr = R.Trainer(_net())
    assert tr.optimizer == Adam() and (tr.k1, tr.k2) == (1, 32)
    assert tr.clip_value is None and tr.clip_norm is None


@pytest.mark.parametrize("loss,x,y,exc,word", [
    ("mse", [1.0], [0.0, 0.0], ValueError, "x"),
    ("mse", [1.0, float("inf")], [0.0, 0.0], ValueError, "x"),
    ("mse", [1.0, float("nan")], [0.0, 0.0], ValueError, "x"),
    ("mse", [1.0, 2.0], [0.0, float("inf")], ValueError, "y"),
    ("mse", [1.0, 2.0], [0.0, 0.0, 0.0], ValueError, "y"),
    ("mse", [1.0, 2.0], 0.5, ValueError, "y"),   # a scalar only for one output
    ("cross_entropy", [1.0, 2.0], 2, ValueError, "y"),
    ("cross_entropy", [1.0, 2.0], -1, ValueError, "y"),
    ("cross_entropy", [1.0, 2.0], True, TypeError, "y"),
    ("cross_entropy", [1.0, 2.0], 1.0, TypeError, "y"),
    ("cross_entropy", [1.0, 2.0], "1", TypeError, "y"),
])
def test_learn_one_bad_input_changes_nothing(loss, x, y, exc, word):
    flat0, X, _, _, targets = make_case("lstm", 2, 3, 1, 2, 2, loss, seed=61)
    net = R.Net("lstm", 2, 3, 1, 2, flat0.copy())
    tr = R.Trainer(net, loss=loss, optimizer=SGD(0.1), k1=1, k2=2)
    tr.learn_one(X[0], targets[0])
    state = (tr.h.copy(), tr.c.copy(), net.flat.copy(), tr.steps, len(tr.ring),
             tr.running_loss, tr.updates)
    with pytest.raises(exc) as info:
        tr.learn_one(x, y)
    assert str(info.value).startswith(word + " ") or f" {word} " in str(info.value)
    np.testing.assert_array_equal(tr.h, state[0])
    np.testing.assert_array_equal(tr.c, state[1])
    np.testing.assert_array_equal(net.flat, state[2])
    assert (tr.steps, len(tr.ring), tr.running_loss, tr.updates) == state[3:]


def test_learn_one_missing_target_forms():
    net = _net("gru", O=1)
    tr = R.Trainer(net, optimizer=SGD(0.1))
    for y in (None, float("nan"), [float("nan")], np.array([np.nan])):
        tr.learn_one([0.1, 0.2], y)
    assert tr.updates == 0 and math.isnan(tr.running_loss)
    tr.learn_one([0.1, 0.2], 0.5)          # scalar target for a single output
    assert tr.updates == 1
    trc = R.Trainer(_net("gru", O=3), loss="cross_entropy", optimizer=SGD(0.1))
    for y in (None, float("nan"), np.float64("nan")):
        trc.learn_one([0.1, 0.2], y)
    assert trc.updates == 0
    trc.learn_one([0.1, 0.2], np.int64(2))
    assert trc.updates == 1


# ======================================================================================
# PyTorch (optional)
# ======================================================================================


def _torch_model(torch, cell, D, H, L, Osz, flat):
    p = R.split_params(np.array(flat, dtype=np.float64), cell, D, H, L, Osz)
    if cell == "lstm":
        rnn = torch.nn.LSTM(D, H, L)
    elif cell == "gru":
        rnn = torch.nn.GRU(D, H, L)
    else:
        rnn = torch.nn.RNN(D, H, L, nonlinearity=cell[4:])
    rnn = rnn.double()
    with torch.no_grad():
        for name, prm in rnn.named_parameters():
            prm.copy_(torch.from_numpy(p[name].copy()))
    head = None
    if Osz:
        head = torch.nn.Linear(H, Osz).double()
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(p["head.weight"].copy()))
            head.bias.copy_(torch.from_numpy(p["head.bias"].copy()))
    params = []
    for k in range(L):
        params += [getattr(rnn, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh")]
    if head is not None:
        params += [head.weight, head.bias]
    return rnn, head, params


def _torch_flat(params):
    return np.concatenate([q.detach().numpy().ravel() for q in params])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L,Osz", [(1, None), (2, 3), (3, 1)])
def test_forward_against_torch(cell, L, Osz):
    torch = pytest.importorskip("torch")
    D, H, T = 3, 5, 6
    flat, X, h0, c0, _ = make_case(cell, D, H, L, Osz, T, "mse", seed=71)
    names = [k for k, _ in R.param_shapes(cell, D, H, L, Osz)]
    rnn, head, params = _torch_model(torch, cell, D, H, L, Osz, flat)
    assert [n for n, _ in rnn.named_parameters()] == [n for n in names if "head" not in n]
    np.testing.assert_array_equal(_torch_flat(params), flat)
    state = (torch.from_numpy(h0[:, None, :].copy()),)
    if cell == "lstm":
        state = ((state[0], torch.from_numpy(c0[:, None, :].copy())),)
    with torch.no_grad():
        out, hs = rnn(torch.from_numpy(X[:, None, :].copy()), *state)
        Yt = (head(out[:, 0]) if head is not None else out[:, 0]).numpy()
    net = R.Net(cell, D, H, L, Osz, flat)
    Y, hT, cT = net.run(X, h0, c0)
    np.testing.assert_allclose(Y, Yt, rtol=1e-13, atol=1e-14)
    if cell == "lstm":
        np.testing.assert_allclose(hT, hs[0][:, 0].numpy(), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(cT, hs[1][:, 0].numpy(), rtol=1e-13, atol=1e-14)
    else:
        np.testing.assert_allclose(hT, hs[:, 0].numpy(), rtol=1e-13, atol=1e-14)


def _torch_opt(torch, opt, params):
    if opt.kind == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                               nesterov=opt.nesterov, weight_decay=opt.weight_decay)
    if opt.kind == "adam":
        return torch.optim.Adam(params, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                weight_decay=opt.weight_decay)
    return torch.optim.RMSprop(params, lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                               momentum=opt.momentum, weight_decay=opt.weight_decay)


def torch_detached_loop(torch, cell, sizes, flat0, X, targets, K, loss, opt, cv, cn):
    D, H, L, Osz = sizes
    rnn, head, params = _torch_model(torch, cell, D, H, L, Osz, flat0)
    topt = _torch_opt(torch, opt, params)
    h = torch.zeros(L, 1, H, dtype=torch.float64)
    c = torch.zeros(L, 1, H, dtype=torch.float64)
    preds, losses_seen = [], []
    for w in range(0, len(X), K):
        h, c = h.detach(), c.detach()
        terms = []
        for t in range(w, min(w + K, len(X))):
            x = torch.from_numpy(X[t].reshape(1, 1, D).copy())
            if cell == "lstm":
                out, (h, c) = rnn(x, (h, c))
            else:
                out, h = rnn(x, h)
            y = head(out[0, 0]) if head is not None else out[0, 0]
            preds.append(y.detach().numpy().copy())
            if targeted(loss, targets[t]):
                if loss == "mse":
                    tgt = torch.from_numpy(np.asarray(targets[t], dtype=np.float64).copy())
                    terms.append(torch.nn.functional.mse_loss(y, tgt))
                else:
                    terms.append(torch.nn.functional.cross_entropy(
                        y[None], torch.tensor([targets[t]])))
        if terms and w + K <= len(X):
            topt.zero_grad()
            total = sum(terms) / len(terms)
            total.backward()
            losses_seen.append(float(total.detach()))
            if cv is not None:
                torch.nn.utils.clip_grad_value_(params, cv)
            if cn is not None:
                torch.nn.utils.clip_grad_norm_(params, cn)
            topt.step()
    return _torch_flat(params), np.array(preds), losses_seen


TORCH_OPTS = [
    SGD(0.2),
    SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    SGD(0.1, momentum=0.8),
    Adam(0.02),
    Adam(0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
    RMSprop(0.01),
    RMSprop(0.01, alpha=0.9, momentum=0.5, weight_decay=0.02),
]
CLIPS = [(None, None), (0.05, None), (None, 0.1), (0.05, 0.1)]


@pytest.mark.parametrize("oi", range(len(TORCH_OPTS)))
@pytest.mark.parametrize("ci", range(len(CLIPS)))
def test_trainer_against_torch(oi, ci):
    torch = pytest.importorskip("torch")
    opt = TORCH_OPTS[oi]
    cv, cn = CLIPS[ci]
    cell = CELLS[(oi + ci) % 4]
    loss = "cross_entropy" if (oi + 2 * ci) % 3 == 0 else "mse"
    sizes = (2, 4, 2, 3) if (oi + ci) % 2 else (2, 4, 1, None)
    K, T = 3, 13
    flat0, X, _, _, targets = make_case(cell, *sizes, T, loss, seed=100 + oi * 7 + ci,
                                        scale=0.5, missing=(2, 6, 7, 8))
    # window 6..8 has no target at all: no optimizer step (weight decay not applied either)
    expected, preds_e, losses = torch_detached_loop(torch, cell, sizes, flat0, X, targets, K,
                                                    loss, opt, cv, cn)
    net = R.Net(cell, *sizes, flat0.copy())
    tr = R.Trainer(net, loss=loss, optimizer=opt, k1=K, k2=K, clip_value=cv, clip_norm=cn)
    preds = np.array([tr.learn_one(X[t], targets[t]) for t in range(T)])
    np.testing.assert_allclose(preds, preds_e, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.flat, expected, rtol=1e-10, atol=1e-12)
    assert tr.updates == len(losses) == 3
    assert tr.last_loss == pytest.approx(losses[-1], rel=1e-12)
    assert np.abs(net.flat - flat0).max() > 1e-3


def test_gradient_against_torch_autograd():
    torch = pytest.importorskip("torch")
    for cell in CELLS:
        sizes = (3, 4, 3, 2)
        flat, X, h0, c0, targets = make_case(cell, *sizes, 6, "mse", seed=81, missing=(0, 3))
        net = R.Net(cell, *sizes, flat.copy())
        value, grad = R.window_loss_and_grad(net, h0, c0, X, targets, "mse")
        rnn, head, params = _torch_model(torch, cell, *sizes[:3], sizes[3], flat)
        h = torch.from_numpy(h0[:, None, :].copy())
        st_ = (h, torch.from_numpy(c0[:, None, :].copy())) if cell == "lstm" else h
        out, _ = rnn(torch.from_numpy(X[:, None, :].copy()), st_)
        Y = head(out[:, 0])
        terms = [torch.mean((Y[t] - torch.from_numpy(targets[t])) ** 2)
                 for t in range(6) if targeted("mse", targets[t])]
        total = sum(terms) / len(terms)
        total.backward()
        gt = np.concatenate([q.grad.numpy().ravel() for q in params])
        assert value == pytest.approx(float(total.detach()), rel=1e-13)
        np.testing.assert_allclose(grad, gt, rtol=1e-11, atol=1e-14)
