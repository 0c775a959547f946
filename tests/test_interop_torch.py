"""sr.from_torch / sr.to_torch against PyTorch's own modules and outputs."""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import streamrnn as sr  # noqa: E402

from conftest import TORCH_CELLS as CELLS  # noqa: E402
from conftest import assert_unchanged, make_net, snapshot  # noqa: E402

TDT = {"float32": torch.float32, "float64": torch.float64}
# outputs of the same weights computed by PyTorch and by the C core (different summation
# orders and transcendental approximations): float32 within ~1e-6, float64 within ~1e-12
TOL = {"float32": 2e-6, "float64": 1e-12}


def close(a, b, dtype, what=""):
    b = np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=TOL[dtype],
                               atol=TOL[dtype] * scale, err_msg=what)


def torch_rnn(cell, D, H, L=1, dtype="float32", seed=0, **kw):
    torch.manual_seed(seed)
    if cell == "lstm":
        m = torch.nn.LSTM(D, H, num_layers=L, **kw)
    elif cell == "gru":
        m = torch.nn.GRU(D, H, num_layers=L, **kw)
    else:
        m = torch.nn.RNN(D, H, num_layers=L, nonlinearity=cell[4:], **kw)
    return m.to(TDT[dtype])


def random_state(net, rng):
    s = net.new_state()
    s.h[...] = rng.uniform(-0.5, 0.5, s.h.shape)
    if s.c is not None:
        s.c[...] = rng.uniform(-1, 1, s.c.shape)
    return s


def torch_hx(cell, s):
    h = torch.from_numpy(s.h.copy())
    return (h, torch.from_numpy(s.c.copy())) if cell == "lstm" else h


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_head", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_matches_torch(cell, L, dtype, with_head, bias):
    D, H, O, T = 3, 7, 2, 20
    m = torch_rnn(cell, D, H, L, dtype, seed=L, bias=bias)
    head = torch.nn.Linear(H, O, bias=bias).to(TDT[dtype]) if with_head else None
    net = sr.from_torch(m, head=head)
    assert net.cell == cell and net.dtype == np.dtype(dtype)
    assert (net.num_layers, net.input_size, net.hidden_size) == (L, D, H)
    assert net.output_size == (O if with_head else None)
    sd = net.state_dict()
    for k, v in m.state_dict().items():
        assert np.array_equal(sd[k], v.numpy()), k
    if not bias:
        assert all(not sd[k].any() for k in sd if "bias" in k)
    rng = np.random.default_rng(L)
    X = rng.standard_normal((T, D)).astype(dtype)
    s = random_state(net, rng)
    hx = torch_hx(cell, s)
    with torch.no_grad():
        Yt, hn = m(torch.from_numpy(X), hx)
        if head is not None:
            Yt = head(Yt)
    Y = net.run(X, s)
    close(Y, Yt.numpy(), dtype, "Y")
    close(s.h, (hn[0] if cell == "lstm" else hn).numpy(), dtype, "h")
    if cell == "lstm":
        close(s.c, hn[1].numpy(), dtype, "c")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_cells(cell, dtype):
    D, H, T = 4, 6, 10
    torch.manual_seed(3)
    if cell == "lstm":
        m = torch.nn.LSTMCell(D, H)
    elif cell == "gru":
        m = torch.nn.GRUCell(D, H)
    else:
        m = torch.nn.RNNCell(D, H, nonlinearity=cell[4:])
    m = m.to(TDT[dtype])
    net = sr.from_torch(m)
    assert net.cell == cell and net.num_layers == 1
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T, D)).astype(dtype)
    s = net.new_state()
    h = torch.zeros(H, dtype=TDT[dtype])
    c = torch.zeros(H, dtype=TDT[dtype])
    with torch.no_grad():
        for t in range(T):
            y = net.step(X[t], s)
            x = torch.from_numpy(X[t])
            if cell == "lstm":
                h, c = m(x, (h, c))
                close(s.c[0], c.numpy(), dtype, f"c at {t}")
            else:
                h = m(x, h)
            close(y, h.numpy(), dtype, f"h at {t}")


def test_from_torch_batch_first_and_dtype_conversion():
    m = torch_rnn("gru", 2, 5, 2, "float64", batch_first=True)
    X = np.random.default_rng(1).standard_normal((8, 2))
    with torch.no_grad():
        Yt = m(torch.from_numpy(X)[None])[0][0].numpy()
    net64 = sr.from_torch(m)
    close(net64.run(X, net64.new_state()), Yt, "float64")
    net32 = sr.from_torch(m, dtype="float32")
    assert net32.dtype == np.float32
    assert np.array_equal(net32.parameters(), net64.parameters().astype(np.float32))
    close(net32.run(X.astype(np.float32), net32.new_state()), Yt, "float32")


def test_from_torch_half_needs_dtype():
    m = torch_rnn("lstm", 2, 4).to(torch.float16)
    with pytest.raises(TypeError, match="float16.*dtype="):
        sr.from_torch(m)
    net = sr.from_torch(m, dtype="float32")
    assert np.array_equal(net.layers[0].weight_ih, m.weight_ih_l0.detach().float().numpy())


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("O", [None, 3])
def test_to_torch_round_trip(cell, dtype, O):
    D, H, L, T = 3, 5, 2, 15
    net = make_net(cell, D, H, L, O, dtype=dtype, seed=7)
    m = sr.to_torch(net)
    m2 = net.to_torch()
    rnn = m if O is None else m.rnn
    assert type(rnn) is {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell, torch.nn.RNN)
    assert all(p.dtype == TDT[dtype] for p in m.parameters())
    sd = net.state_dict()
    tsd = {k.replace("rnn.", ""): v for k, v in m.state_dict().items()}
    assert sorted(tsd) == sorted(sd)
    for k in sd:
        assert np.array_equal(tsd[k].numpy(), sd[k]), k
        assert np.array_equal(dict(m2.state_dict())[k if O is None else
                                                    ("head." + k[5:] if k.startswith("head.")
                                                     else "rnn." + k)].numpy(), sd[k])
    rng = np.random.default_rng(2)
    X = rng.standard_normal((T, D)).astype(dtype)
    s = random_state(net, rng)
    hx = torch_hx(cell, s)
    with torch.no_grad():
        Yt, hn = m(torch.from_numpy(X), hx)
    close(net.run(X, s), Yt.numpy(), dtype, "Y")
    close(s.h, (hn[0] if cell == "lstm" else hn).numpy(), dtype, "h")
    back = sr.from_torch(m)
    assert type(back) is type(net) and back.cell == net.cell
    assert back.parameters().tobytes() == net.parameters().tobytes()
    # the module survives torch.save/torch.load and deepcopy
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    m3 = torch.load(buf, weights_only=False)
    assert sr.from_torch(copy.deepcopy(m3)).parameters().tobytes() == net.parameters().tobytes()


@pytest.mark.parametrize("kwargs, match", [
    (dict(proj_size=2), "proj_size"),
    (dict(num_layers=2, dropout=0.5), "dropout"),
])
def test_from_torch_unsupported(kwargs, match):
    m = torch.nn.LSTM(3, 4, **kwargs)
    with pytest.raises(ValueError, match=match):
        sr.from_torch(m)


def test_from_torch_dropout_allowed_on_request():
    m = torch_rnn("gru", 3, 4, 2, dropout=0.3).eval()
    net = sr.from_torch(m, allow_dropout=True)
    X = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    with torch.no_grad():
        close(net.run(X, net.new_state()), m(torch.from_numpy(X))[0].numpy(), "float32")


def test_from_torch_bad_arguments():
    m = torch.nn.GRU(3, 4)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        sr.from_torch(np.zeros(3))
    with pytest.raises(TypeError, match="Linear"):
        sr.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="head must be a torch.nn.Linear"):
        sr.from_torch(m, head=torch.nn.GRU(4, 1))
    with pytest.raises(ValueError, match="in_features"):
        sr.from_torch(m, head=torch.nn.Linear(5, 1))
    with pytest.raises(TypeError, match="mixed dtypes"):
        sr.from_torch(m, head=torch.nn.Linear(4, 1).double())
    with pytest.raises(ValueError, match="head given twice"):
        sr.from_torch(sr.to_torch(sr.GRU(3, 4, output_size=1)), head=torch.nn.Linear(4, 1))
    with pytest.raises(TypeError):
        sr.to_torch(m)
    with pytest.raises(TypeError, match="dtype"):
        sr.from_torch(m, dtype="float16")


def test_from_torch_into_existing_net_is_all_or_nothing():
    m = torch_rnn("lstm", 3, 4, 2, seed=5)
    net = sr.LSTM(3, 4, num_layers=2, seed=0)
    before = snapshot(net)
    # another architecture: nothing written
    for bad, match in [(torch_rnn("lstm", 3, 4, 1), "num_layers"),
                       (torch_rnn("gru", 3, 4, 2), "cell"),
                       (torch_rnn("lstm", 2, 4, 2), "input_size")]:
        with pytest.raises(ValueError, match=match):
            sr.from_torch(bad, net=net)
        assert_unchanged(before, net)
    with pytest.raises(ValueError, match="output_size"):
        sr.from_torch(m, head=torch.nn.Linear(4, 1), net=net)
    assert_unchanged(before, net)
    with pytest.raises(TypeError, match="differs from net.dtype"):
        sr.from_torch(m, dtype="float64", net=net)
    assert_unchanged(before, net)
    # an extra (unused) key: a parametrized weight renames weight_hh_l1
    m2 = copy.deepcopy(m)
    torch.nn.utils.parametrize.register_parametrization(m2, "weight_hh_l1", torch.nn.Identity())
    with pytest.raises(ValueError, match="unused.*parametrizations"):
        sr.from_torch(m2, net=net)
    assert_unchanged(before, net)
    # a missing key and a mis-shaped tensor (in the last layer): nothing written
    m4 = copy.deepcopy(m)
    del m4._parameters["bias_hh_l1"]
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l1'\]"):
        sr.from_torch(m4, net=net)
    assert_unchanged(before, net)
    m5 = copy.deepcopy(m)
    m5._parameters["weight_hh_l1"] = torch.nn.Parameter(torch.zeros(16, 5))
    with pytest.raises(ValueError, match="weight_hh_l1 must have shape"):
        sr.from_torch(m5, net=net)
    assert_unchanged(before, net)
    # a NaN found only after the first layers validated: still nothing written
    m3 = copy.deepcopy(m)
    with torch.no_grad():
        m3.bias_hh_l1[0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        sr.from_torch(m3, net=net)
    assert_unchanged(before, net)
    # and a good load writes everything
    assert sr.from_torch(m, net=net) is net
    for k, v in m.state_dict().items():
        assert np.array_equal(net.state_dict()[k], v.numpy())


# ---------------------------------------------------------------- bidirectional modules
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_head", [False, True])
def test_bidirectional_from_torch_to_torch_match_torch(cell, L, dtype, with_head):
    D, H, O, T = 3, 6, 2, 17
    m = torch_rnn(cell, D, H, L, dtype, seed=10 + L, bidirectional=True)
    head = torch.nn.Linear(2 * H, O).to(TDT[dtype]) if with_head else None
    net = sr.from_torch(m, head=head)
    assert net.bidirectional and net.num_directions == 2 and net.cell == cell
    assert (net.num_layers, net.input_size, net.hidden_size) == (L, D, H)
    assert net.output_size == (O if with_head else None) and net.dtype == np.dtype(dtype)
    sd = net.state_dict()
    assert [k for k in sd if not k.startswith("head.")] == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert np.array_equal(sd[k], v.numpy()), k
    X = np.random.default_rng(L).standard_normal((T, D)).astype(dtype)
    with torch.no_grad():
        Yt = m(torch.from_numpy(X))[0]
        if head is not None:
            Yt = head(Yt)
    Y = net.run(X)
    assert Y.shape == (T, O if with_head else 2 * H)
    close(Y, Yt.numpy(), dtype, "Y vs torch")
    # and back: a bidirectional torch module with the same weights, bit for bit
    m2 = net.to_torch()
    rnn = m2.rnn if with_head else m2
    assert type(rnn) is type(m) and rnn.bidirectional and rnn.num_layers == L
    assert list(rnn.state_dict()) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert torch.equal(rnn.state_dict()[k], v), k
    if with_head:
        assert m2.head.in_features == 2 * H
        assert torch.equal(m2.head.weight, head.weight) and torch.equal(m2.head.bias, head.bias)
    with torch.no_grad():
        Y2 = m2(torch.from_numpy(X))[0]
    close(Y, Y2.numpy(), dtype, "Y vs to_torch module")
    back = sr.from_torch(m2)
    assert back.bidirectional and back.parameters().tobytes() == net.parameters().tobytes()


@pytest.mark.parametrize("cell", ["lstm", "rnn_relu"])
def test_bidirectional_without_bias_and_batch_first(cell):
    m = torch_rnn(cell, 2, 4, 2, "float64", seed=3, bidirectional=True, bias=False,
                  batch_first=True)
    net = sr.from_torch(m)
    assert all(not v.any() for k, v in net.state_dict().items() if "bias" in k)
    X = np.random.default_rng(0).standard_normal((9, 2))
    with torch.no_grad():
        Yt = m(torch.from_numpy(X)[None])[0][0].numpy()
    close(net.run(X), Yt, "float64")


def test_bidirectional_refusals_and_loading_into_a_net():
    bi = torch_rnn("gru", 3, 4, 2, seed=1, bidirectional=True)
    uni = torch_rnn("gru", 3, 4, 2, seed=1)
    head = torch.nn.Linear(8, 2)
    with pytest.raises(ValueError, match=r"in_features must equal 2 \* hidden_size=8"):
        sr.from_torch(bi, head=torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="in_features must equal hidden_size=4"):
        sr.from_torch(uni, head=head)
    with pytest.raises(ValueError, match="proj_size"):
        sr.from_torch(torch.nn.LSTM(3, 4, bidirectional=True, proj_size=2))
    uni_net = sr.GRU(3, 4, num_layers=2, output_size=2, seed=0)
    bi_net = sr.GRU(3, 4, num_layers=2, output_size=2, bidirectional=True, seed=0)
    # a bidirectional module into a unidirectional net and the reverse: nothing written
    for module, hd, net in ((bi, head, uni_net), (uni, torch.nn.Linear(4, 2), bi_net)):
        before = snapshot(net)
        with pytest.raises(ValueError, match="bidirectional"):
            sr.from_torch(module, head=hd, net=net)
        assert_unchanged(before, net)
    # a NaN in the last tensor of the backward direction: nothing written
    before = snapshot(bi_net)
    bad = copy.deepcopy(bi)
    with torch.no_grad():
        bad.bias_hh_l1_reverse[-1] = float("nan")
    with pytest.raises(ValueError, match="bias_hh_l1_reverse.*finite"):
        sr.from_torch(bad, head=head, net=bi_net)
    assert_unchanged(before, bi_net)
    # a missing backward tensor
    bad = copy.deepcopy(bi)
    del bad._parameters["weight_hh_l0_reverse"]
    with pytest.raises(ValueError, match=r"missing \['weight_hh_l0_reverse'\]"):
        sr.from_torch(bad, head=head, net=bi_net)
    assert_unchanged(before, bi_net)
    assert sr.from_torch(bi, head=head, net=bi_net) is bi_net
    for k, v in bi.state_dict().items():
        assert np.array_equal(bi_net.state_dict()[k], v.numpy()), k
    assert np.array_equal(bi_net.head.weight, head.weight.detach().numpy())
    X = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    with torch.no_grad():
        close(bi_net.run(X), head(bi(torch.from_numpy(X))[0]).numpy(), "float32")
