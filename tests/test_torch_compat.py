"""PyTorch compatibility: torch.nn.LSTM/GRU/RNN weights load into streamrnn networks (and
back), and both compute the same numbers."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import streamrnn as sr  # noqa: E402

from conftest import TORCH_CELLS as CELLS, assert_close, make_net  # noqa: E402

TORCH_DT = {"float32": torch.float32, "float64": torch.float64}


def torch_module(cell, D, H, L, dtype, seed):
    torch.manual_seed(seed)
    if cell == "lstm":
        m = torch.nn.LSTM(D, H, num_layers=L)
    elif cell == "gru":
        m = torch.nn.GRU(D, H, num_layers=L)
    else:
        m = torch.nn.RNN(D, H, num_layers=L, nonlinearity=cell[4:])
    return m.to(TORCH_DT[dtype])


def torch_run(m, cell, X, h0, c0):
    """X (T, D) numpy, h0/c0 (L, H) numpy -> (Y, hT, cT) numpy (unbatched input)."""
    with torch.no_grad():
        x = torch.from_numpy(X)
        h = torch.from_numpy(h0)
        if cell == "lstm":
            Y, (hT, cT) = m(x, (h, torch.from_numpy(c0)))
            return Y.numpy(), hT.numpy(), cT.numpy()
        Y, hT = m(x, h)
        return Y.numpy(), hT.numpy(), None


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_load_torch_state_dict_and_run(cell, L, dtype):
    D, H, T = 5, 11, 30
    seed = 100 * L + CELLS.index(cell)
    m = torch_module(cell, D, H, L, dtype, seed)
    net = make_net(cell, D, H, L, dtype=dtype, seed=0)
    net.load_state_dict(m.state_dict())  # torch tensors accepted directly
    for k in range(L):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            t = getattr(m, f"{name}_l{k}").detach().numpy()
            assert np.array_equal(getattr(net.layers[k], name), t), f"{name}_l{k}"
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, D)).astype(dtype)
    s = net.new_state()
    s.h[...] = rng.uniform(-0.5, 0.5, s.h.shape)
    if s.c is not None:
        s.c[...] = rng.uniform(-1, 1, s.c.shape)
    h0 = s.h.copy()
    c0 = None if s.c is None else s.c.copy()
    Y = net.run(X, s)
    Yt, ht, ct = torch_run(m, cell, X, h0, c0)
    # compare with torch's result (computed in the same dtype as the network)
    assert_close(Y, Yt, dtype, "Y")
    assert_close(s.h, ht, dtype, "h")
    if cell == "lstm":
        assert_close(s.c, ct, dtype, "c")
    # and with torch in float64 from the same (possibly float32) weights
    if dtype == "float32":
        m64 = m.to(torch.float64)
        Y64, h64, c64 = torch_run(m64, cell, X.astype(np.float64), h0.astype(np.float64),
                                  None if c0 is None else c0.astype(np.float64))
        assert_close(Y, Y64, dtype, "Y vs float64 torch")
        assert_close(s.h, h64, dtype, "h vs float64 torch")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_head_matches_torch_linear(cell, dtype):
    D, H, L, O, T = 3, 8, 2, 4, 12
    m = torch_module(cell, D, H, L, dtype, 7)
    torch.manual_seed(8)
    lin = torch.nn.Linear(H, O).to(TORCH_DT[dtype])
    sd = dict(m.state_dict())
    sd["head.weight"] = lin.weight
    sd["head.bias"] = lin.bias  # parameters with requires_grad: accepted too
    net = make_net(cell, D, H, L, output_size=O, dtype=dtype, seed=0)
    net.load_state_dict(sd)
    assert np.array_equal(net.head.weight, lin.weight.detach().numpy())
    assert np.array_equal(net.head.bias, lin.bias.detach().numpy())
    X = np.random.default_rng(1).standard_normal((T, D)).astype(dtype)
    s = net.new_state()
    Y = net.run(X, s)
    z = np.zeros((L, H), dtype)
    Hseq, hT, cT = torch_run(m, cell, X, z, z if cell == "lstm" else None)
    with torch.no_grad():
        Yt = lin(torch.from_numpy(Hseq)).numpy()
    assert Y.shape == (T, O)
    assert_close(Y, Yt, dtype, "Y")
    assert_close(s.h, hT, dtype, "h")


def test_load_converts_float32_tensors_into_float64_net():
    m = torch_module("gru", 2, 3, 1, "float32", 0)
    net = sr.GRU(2, 3, dtype="float64", seed=1)
    net.load_state_dict(m.state_dict())
    assert net.parameters().dtype == np.float64
    assert np.array_equal(net.layers[0].weight_hh, m.weight_hh_l0.detach().numpy()
                          .astype(np.float64))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_state_dict_loads_into_torch_strict(cell, dtype):
    D, H, L = 4, 6, 3
    net = make_net(cell, D, H, L, dtype=dtype, seed=21)
    m = torch_module(cell, D, H, L, dtype, 0)
    sd = {k: torch.from_numpy(v) for k, v in net.state_dict().items()}
    m.load_state_dict(sd, strict=True)
    for key, value in net.state_dict().items():
        assert np.array_equal(m.state_dict()[key].numpy(), value), key
    X = np.random.default_rng(2).standard_normal((9, D)).astype(dtype)
    s = net.new_state()
    Y = net.run(X, s)
    z = np.zeros((L, H), dtype)
    Yt, ht, ct = torch_run(m, cell, X, z, z if cell == "lstm" else None)
    assert_close(Y, Yt, dtype)
    assert_close(s.h, ht, dtype)
    if cell == "lstm":
        assert_close(s.c, ct, dtype)


def test_state_dict_with_head_splits_for_torch():
    net = sr.LSTM(3, 5, 2, output_size=2, dtype="float64", seed=3)
    sd = net.state_dict()
    head = {k[len("head."):]: torch.from_numpy(sd.pop(k)) for k in ("head.weight", "head.bias")}
    m = torch_module("lstm", 3, 5, 2, "float64", 0)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    lin = torch.nn.Linear(5, 2).double()
    lin.load_state_dict(head, strict=True)
    X = np.random.default_rng(4).standard_normal((6, 3))
    s = net.new_state()
    Y = net.run(X, s)
    z = np.zeros((2, 5))
    Hseq, _, _ = torch_run(m, "lstm", X, z, z)
    with torch.no_grad():
        assert_close(Y, lin(torch.from_numpy(Hseq)).numpy(), "float64")
