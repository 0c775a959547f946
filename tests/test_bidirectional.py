"""Bidirectional networks: whole-window forward and backward of the C core against the NumPy
reference and PyTorch, the PyTorch-compatible parameter layout, the streaming calls that must
refuse, save/load and pickling."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st

import streamrnn as sr
from streamrnn import _core
from streamrnn import reference as ref

from conftest import CELLS, assert_close, assert_unchanged, make_net, snapshot, window_ref


def make(cell, D, H, L=1, O=None, dtype="float64", seed=0, bidirectional=True):
    return make_net(cell, D, H, L, O, dtype=dtype, seed=seed, bidirectional=bidirectional)


ref_of = window_ref


@st.composite
def cases(draw):
    return dict(cell=draw(st.sampled_from(CELLS)), D=draw(st.integers(1, 4)),
                H=draw(st.integers(1, 5)), L=draw(st.integers(1, 3)),
                O=draw(st.sampled_from([None, 1, 3])), T=draw(st.integers(1, 7)),
                dtype=draw(st.sampled_from(["float32", "float64"])),
                nd=draw(st.sampled_from([1, 2])), m2o=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@given(cases())
def test_window_forward_backward_vs_reference(c):
    net = make(c["cell"], c["D"], c["H"], c["L"], c["O"], c["dtype"], c["seed"],
               c["nd"] == 2)
    rn = ref_of(net)
    rng = np.random.default_rng(c["seed"])
    dt = np.dtype(c["dtype"])
    X = rng.standard_normal((c["T"], c["D"])).astype(dt)
    shape = (c["L"], c["nd"], c["H"])
    h0 = (0.5 * rng.standard_normal(shape)).astype(dt)
    has_c = c["cell"].startswith("lstm")
    c0 = (0.5 * rng.standard_normal(shape)).astype(dt) if has_c else None
    Y, hT, cT, cache = ref.window_forward(rn, X, h0, c0, c["m2o"])
    w = _core._SeqWork(net)
    Yc, hTc, cTc = w.forward(X, h0, c0, many_to_one=c["m2o"], final=True)
    assert_close(Yc, Y, dt, "Y")
    assert_close(hTc, hT, dt, "hT")
    if cT is not None:
        assert_close(cTc, cT, dt, "cT")
    dY = rng.standard_normal(Y.shape).astype(dt)
    dhT = rng.standard_normal(shape).astype(dt)
    dcT = rng.standard_normal(shape).astype(dt) if has_c else None
    g, dX, dh0, dc0 = ref.window_backward(rn, cache, dY, dhT, dcT)
    gc = np.zeros_like(net.parameters())
    dXc, dh0c, dc0c = w.backward(dY, gc, dhT, dcT, want_dX=True, want_d0=True)
    assert_close(gc, g, dt, "grad")
    assert_close(dXc, dX, dt, "dX")
    assert_close(dh0c, dh0, dt, "dh0")
    if dc0 is not None:
        assert_close(dc0c, dc0, dt, "dc0")
    if not c["m2o"]:  # net.run is the same forward from zero states
        Y0 = ref.window_forward(rn, X)[0]
        Yr = net.run(X) if c["nd"] == 2 else net.run(X, net.new_state())
        assert_close(Yr, Y0, dt, "run")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("m2o", [False, True])
def test_reference_window_gradient_vs_finite_differences(cell, m2o):
    rng = np.random.default_rng(3)
    D, H, L, O, T = 2, 2, 2, 2, 3
    rn = ref.WindowNet(cell, D, H, L, O, 2)
    rn.flat[...] = rng.uniform(-0.6, 0.6, rn.flat.shape)
    X = rng.standard_normal((T, D))
    shape = (L, 2, H)
    h0 = 0.3 * rng.standard_normal(shape)
    c0 = 0.3 * rng.standard_normal(shape) if cell == "lstm" else None
    Y, hT, cT, cache = ref.window_forward(rn, X, h0, c0, m2o)
    dY = rng.standard_normal(Y.shape)
    dhT = rng.standard_normal(shape)
    dcT = rng.standard_normal(shape) if cell == "lstm" else None

    def objective():
        Y_, hT_, cT_, _ = ref.window_forward(rn, X, h0, c0, m2o)
        v = np.sum(Y_ * dY) + np.sum(hT_ * dhT)
        return v + (np.sum(cT_ * dcT) if cT_ is not None else 0.0)

    g, dX, dh0, _ = ref.window_backward(rn, cache, dY, dhT, dcT)
    eps = 1e-6
    fd = np.zeros_like(rn.flat)
    for i in range(rn.flat.size):
        old = rn.flat[i]
        rn.flat[i] = old + eps
        up = objective()
        rn.flat[i] = old - eps
        down = objective()
        rn.flat[i] = old
        fd[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-7 * np.abs(fd).max())
    fdx = np.zeros_like(X)
    for i in np.ndindex(X.shape):
        old = X[i]
        X[i] = old + eps
        up = objective()
        X[i] = old - eps
        down = objective()
        X[i] = old
        fdx[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(dX, fdx, rtol=1e-7, atol=1e-7 * np.abs(fdx).max())


# ----------------------------------------------------------------------------- PyTorch

def torch_bi(cell, D, H, L, seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    kw = dict(num_layers=L, bidirectional=True)
    if cell == "lstm":
        m = torch.nn.LSTM(D, H, **kw)
    elif cell == "gru":
        m = torch.nn.GRU(D, H, **kw)
    else:
        m = torch.nn.RNN(D, H, nonlinearity=cell[4:], **kw)
    return m.double()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("L", [1, 3])
def test_bidirectional_vs_torch_outputs_and_gradients(cell, L):
    torch = pytest.importorskip("torch")
    D, H, O, T = 3, 5, 2, 7
    m = torch_bi(cell, D, H, L, seed=L)
    head = torch.nn.Linear(2 * H, O).double()
    net = make(cell, D, H, L, O, "float64", seed=1)
    assert list(net.state_dict())[:-2] == [k for k, _ in m.named_parameters()]
    sd = {k: v for k, v in m.named_parameters()}
    sd["head.weight"], sd["head.bias"] = head.weight, head.bias
    net.load_state_dict(sd)
    rng = np.random.default_rng(L)
    X = rng.standard_normal((T, D))
    dY = rng.standard_normal((T, O))
    out, _ = m(torch.from_numpy(X))
    y = head(out)
    (y * torch.from_numpy(dY)).sum().backward()
    w = _core._SeqWork(net)
    Y = w.forward(X)
    assert_close(Y, y.detach().numpy(), "float64", "outputs vs torch")
    assert_close(net.run(X), y.detach().numpy(), "float64", "run vs torch")
    g = np.zeros_like(net.parameters())
    w.backward(dY, g)
    gnet = make(cell, D, H, L, O, "float64")
    gnet.parameters()[...] = g
    for k, p in m.named_parameters():
        assert_close(gnet.state_dict()[k], p.grad.numpy(), "float64", k)
    assert_close(gnet.head.weight, head.weight.grad.numpy(), "float64", "head.weight")
    # and back: state_dict() loads into torch unchanged
    m2 = torch_bi(cell, D, H, L, seed=99)
    m2.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()
                        if not k.startswith("head.")})
    with torch.no_grad():
        np.testing.assert_array_equal(m2(torch.from_numpy(X))[0].numpy(),
                                      m(torch.from_numpy(X))[0].detach().numpy())


# ------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_streaming_calls_refuse_bidirectional(cell):
    net = make(cell, 2, 3, 2, 1)
    uni = make(cell, 2, 3, 2, 1, bidirectional=False)
    before = snapshot(net)
    for call in (lambda: net.new_state(), lambda: net.new_states(3),
                 lambda: net.step(np.zeros(2), uni.new_state()),
                 lambda: net.step_many(np.zeros((3, 2)), uni.new_states(3)),
                 lambda: net.run(np.zeros((3, 2)), uni.new_state()),
                 lambda: sr.OnlineTrainer(net)):
        with pytest.raises(ValueError, match="SequenceTrainer") as e:
            call()
        assert "run" in str(e.value)
    assert_unchanged(before, net)


def test_run_checks_input():
    net = make("lstm", 2, 3, 1, None, "float32")
    with pytest.raises(TypeError, match="X"):
        net.run(np.zeros((3, 2)))            # float64 for a float32 network
    with pytest.raises(ValueError, match="X must have shape"):
        net.run(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="finite"):
        net.run(np.full((3, 2), np.nan, np.float32))
    assert net.run(np.zeros((0, 2), np.float32)).shape == (0, 6)


def test_unidirectional_run_without_state_runs_from_zeros():
    # issue 18 point 9 (as PyTorch's h0=None); more in test_habits_inputs.py
    net = make("gru", 2, 3, 2, 1, bidirectional=False)
    X = np.linspace(-1, 1, 10).reshape(5, 2).astype(net.dtype)
    np.testing.assert_array_equal(net.run(X), net.run(X, net.new_state()))


def test_sizes_and_views():
    net = make("gru", 3, 4, 2, 5)
    assert net.num_directions == 2 and net.bidirectional
    assert len(net.layers) == len(net.layers_reverse) == 2
    assert net.layers[1].weight_ih.shape == (12, 8)
    assert net.layers_reverse[0].weight_ih.shape == (12, 3)
    assert net.head.weight.shape == (5, 8)
    assert np.shares_memory(net.layers_reverse[1].bias_hh, net.parameters())
    uni = make("gru", 3, 4, 2, 5, bidirectional=False)
    assert uni.num_directions == 1 and uni.layers_reverse == ()
    with pytest.raises(TypeError, match="bidirectional"):
        make("gru", 3, 4, bidirectional="yes")


# ------------------------------------------------------------------------ persistence

@pytest.mark.parametrize("cell", ["lstm", "rnn_relu"])
def test_pickle_copy_save_load_roundtrip(cell, tmp_path):
    net = make(cell, 2, 3, 2, 2, "float32", seed=5)
    X = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    Y = net.run(X)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net), copy.copy(net),
                  sr.loads(sr.dumps(net))):
        assert other.bidirectional and type(other) is type(net)
        np.testing.assert_array_equal(other.run(X), Y)
    sr.save(net, tmp_path / "bi.srnn")
    back = sr.load(tmp_path / "bi.srnn")
    assert back.bidirectional
    np.testing.assert_array_equal(back.run(X), Y)


def test_files_without_the_flag_load_as_unidirectional(monkeypatch):
    from streamrnn import io

    net = make("lstm", 2, 3, 2, 1, bidirectional=False, seed=1)
    orig = io._net_meta

    def old_meta(n):
        m = orig(n)
        del m["bidirectional"]
        return m

    monkeypatch.setattr(io, "_net_meta", old_meta)
    data = sr.dumps(net)
    monkeypatch.undo()
    assert b"bidirectional" not in data
    back = sr.loads(data)
    assert not back.bidirectional
    np.testing.assert_array_equal(back.parameters(), net.parameters())
