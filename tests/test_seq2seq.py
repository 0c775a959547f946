"""Seq2Seq: encoder-decoder training (teacher forcing, BPTT into the encoder) against the
NumPy reference, finite differences and an explicit PyTorch model; generation; errors."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st

import streamrnn as sr
from streamrnn import reference as ref

from conftest import assert_close, assert_unchanged, snapshot, window_ref

CLS = {"lstm": sr.LSTM, "gru": sr.GRU, "rnn_tanh": sr.RNN}


ref_of = window_ref


def pair(cell, context, O, H=4, L=2, nd=1, D=2, dtype="float64", dec_cell=None, seed=0):
    enc = CLS[cell](D, H, L, dtype=dtype, seed=seed, bidirectional=nd == 2)
    dc = dec_cell or cell
    if context == "init_state":
        dec = CLS[dc](O, H, L, O, dtype=dtype, seed=seed + 1)
    else:
        dec = CLS[dc](O + H, 3, 1, O, dtype=dtype, seed=seed + 1)
    return enc, dec


def data(rng, loss, O, Ts, Tt, D=2, dtype="float64"):
    X = rng.standard_normal((Ts, D)).astype(dtype)
    Y = rng.standard_normal((Tt, O)).astype(dtype) if loss == "mse" else rng.integers(0, O, Tt)
    return X, Y


@st.composite
def cases(draw):
    return dict(cell=draw(st.sampled_from(sorted(CLS))),
                context=draw(st.sampled_from(["init_state", "input"])),
                loss=draw(st.sampled_from(["mse", "cross_entropy"])),
                O=draw(st.integers(2, 4)), H=draw(st.integers(1, 4)), L=draw(st.integers(1, 2)),
                nd=draw(st.sampled_from([1, 2])),
                dtype=draw(st.sampled_from(["float32", "float64"])),
                opt=draw(st.sampled_from(["sgd", "adam"])),
                clip=draw(st.sampled_from([None, 0.1])), seed=draw(st.integers(0, 2**16)))


@given(cases())
def test_seq2seq_vs_reference(c):
    enc, dec = pair(c["cell"], c["context"], c["O"], c["H"], c["L"], c["nd"],
                    dtype=c["dtype"], seed=c["seed"] % 1000)
    re, rd = ref_of(enc), ref_of(dec)
    # see test_sequence_trainer.py for why Adam gets eps=1e-6 and float32 SGD
    if c["opt"] == "adam" and c["dtype"] == "float64":
        opt = sr.Adam(lr=0.01, eps=1e-6)
    else:
        opt = sr.SGD(lr=0.05, momentum=0.5)
    rng = np.random.default_rng(c["seed"])
    start = (int(rng.integers(0, c["O"])) if c["loss"] == "cross_entropy"
             else rng.standard_normal(c["O"]))
    s2s = sr.Seq2Seq(enc, dec, c["context"], c["loss"], start, opt, clip_norm=c["clip"])
    rt = ref.SequenceTrainer([re, rd], c["loss"], opt, clip_norm=c["clip"])
    rt.context, rt.start = c["context"], start
    dt = np.dtype(c["dtype"])
    for it in range(2):
        n = int(rng.integers(1, 3))
        pairs = [data(rng, c["loss"], c["O"], int(rng.integers(1, 5)), int(rng.integers(1, 5)),
                      dtype=c["dtype"]) for _ in range(n)]
        v_ref = rt.learn_batch([p[0] for p in pairs], [p[1] for p in pairs])
        if n == 1:
            v = s2s.learn(*pairs[0])
        else:
            v = s2s.learn_batch([p[0] for p in pairs], [p[1] for p in pairs])
        assert_close(v, v_ref, dt, "loss")
        assert_close(enc.parameters(), re.flat, dt, f"encoder after update {it}")
        assert_close(dec.parameters(), rd.flat, dt, f"decoder after update {it}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("context", ["init_state", "input"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_reference_seq2seq_gradient_vs_finite_differences(cell, context, loss):
    rng = np.random.default_rng(11)
    O, H = 2, 2
    re = ref.WindowNet(cell, 2, H, 1, None, 2)
    rd = (ref.WindowNet(cell, O, H, 1, O, 1) if context == "init_state"
          else ref.WindowNet(cell, O + H, 2, 1, O, 1))
    for n in (re, rd):
        n.flat[...] = rng.uniform(-0.7, 0.7, n.flat.shape)
    X, Y = data(rng, loss, O, 3, 3)
    start = 1 if loss == "cross_entropy" else np.array([0.5, -0.5])
    v, ge, gd = ref.seq2seq_loss_and_grad(re, rd, X, Y, context, loss, start)
    eps = 1e-6
    for net, g in ((re, ge), (rd, gd)):
        fd = np.zeros_like(g)
        for i in range(g.size):
            old = net.flat[i]
            net.flat[i] = old + eps
            up = ref.seq2seq_loss_and_grad(re, rd, X, Y, context, loss, start)[0]
            net.flat[i] = old - eps
            down = ref.seq2seq_loss_and_grad(re, rd, X, Y, context, loss, start)[0]
            net.flat[i] = old
            fd[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_init_state_lstm_vs_torch(loss):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    D, H, L, O, Ts, Tt = 3, 5, 2, 4, 6, 5
    t_enc = torch.nn.LSTM(D, H, L).double()
    t_dec = torch.nn.LSTM(O, H, L).double()
    t_head = torch.nn.Linear(H, O).double()
    enc, dec = sr.LSTM(D, H, L, dtype="float64"), sr.LSTM(O, H, L, O, dtype="float64")
    enc.load_state_dict(dict(t_enc.named_parameters()))
    sd = dict(t_dec.named_parameters())
    sd["head.weight"], sd["head.bias"] = t_head.weight, t_head.bias
    dec.load_state_dict(sd)
    rng = np.random.default_rng(1)
    X, Y = data(rng, loss, O, Ts, Tt, D)
    start = 2 if loss == "cross_entropy" else rng.standard_normal(O)
    # the explicit PyTorch model: encoder final (h, c) initialise the decoder; teacher forcing
    _, (h, c) = t_enc(torch.from_numpy(X))
    if loss == "cross_entropy":
        tok = torch.nn.functional.one_hot(torch.tensor([start] + list(Y[:-1])), O).double()
    else:
        tok = torch.cat([torch.from_numpy(start)[None], torch.from_numpy(Y[:-1])])
    out, _ = t_dec(tok, (h, c))
    y = t_head(out)
    if loss == "cross_entropy":
        lt = torch.nn.functional.cross_entropy(y, torch.from_numpy(Y))
    else:
        lt = torch.nn.functional.mse_loss(y, torch.from_numpy(Y))
    lt.backward()
    s2s = sr.Seq2Seq(enc, dec, "init_state", loss, start, sr.SGD(lr=1.0))
    p_enc, p_dec = enc.parameters().copy(), dec.parameters().copy()
    v = s2s.learn(X, Y)
    assert_close(v, lt.item(), "float64", "loss")
    g_enc = sr.LSTM(D, H, L, dtype="float64")
    g_enc.parameters()[...] = p_enc - enc.parameters()   # SGD(lr=1): the gradient
    g_dec = sr.LSTM(O, H, L, O, dtype="float64")
    g_dec.parameters()[...] = p_dec - dec.parameters()
    for k, p in t_enc.named_parameters():
        assert_close(g_enc.state_dict()[k], p.grad.numpy(), "float64", "encoder " + k)
    for k, p in t_dec.named_parameters():
        assert_close(g_dec.state_dict()[k], p.grad.numpy(), "float64", "decoder " + k)
    assert_close(g_dec.head.weight, t_head.weight.grad.numpy(), "float64", "head")


def test_generate_cross_entropy_and_stop():
    enc, dec = pair("gru", "init_state", 3, seed=2)
    s2s = sr.Seq2Seq(enc, dec, loss="cross_entropy", start=0)
    X = np.random.default_rng(0).standard_normal((4, 2))
    toks = s2s.generate(X, max_len=6)
    assert toks.dtype == np.int64 and toks.shape == (6,)
    # the first token is the argmax of the decoder's first output from the encoder state
    _, hT, _, _ = ref.window_forward(ref_of(enc), X)
    rd = ref_of(dec)
    Y, _, _, _ = ref.window_forward(rd, np.eye(3)[[0]], hT[:, :1, :])
    assert toks[0] == int(np.argmax(Y[0]))
    # teacher forcing with the generated tokens reproduces them (greedy = argmax)
    tok = np.eye(3)[[0] + list(toks[:-1])]
    Yt, _, _, _ = ref.window_forward(rd, tok, hT[:, :1, :])
    np.testing.assert_array_equal(np.argmax(Yt, axis=1), toks)
    cut = s2s.generate(X, max_len=6, stop=int(toks[2]))
    first = list(toks).index(toks[2])
    np.testing.assert_array_equal(cut, toks[:first])          # stop token excluded
    assert s2s.generate(X, max_len=0).shape == (0,)


def test_generate_mse_with_predicate_and_input_context():
    enc, dec = pair("lstm", "input", 2, nd=2, seed=3)
    s2s = sr.Seq2Seq(enc, dec, context="input", loss="mse", start=[0.1, 0.2])
    X = np.random.default_rng(0).standard_normal((4, 2))
    ys = s2s.generate(X, max_len=5)
    assert ys.shape == (5, 2)
    # the decoder input is [previous output | summed final top-layer h of the encoder]
    _, hT, _, _ = ref.window_forward(ref_of(enc), X)
    ctx = hT[-1].sum(axis=0)
    Xd = np.concatenate([np.vstack([[0.1, 0.2], ys[:-1]]), np.tile(ctx, (5, 1))], axis=1)
    Y, _, _, _ = ref.window_forward(ref_of(dec), Xd)
    assert_close(ys, Y, "float64", "generated values")
    calls = []
    short = s2s.generate(X, max_len=5, stop=lambda y: calls.append(1) or len(calls) == 3)
    np.testing.assert_array_equal(short, ys[:2])


def test_mismatched_networks_raise():
    enc, dec = pair("lstm", "init_state", 3)
    with pytest.raises(ValueError, match="num_layers and hidden_size"):
        sr.Seq2Seq(enc, sr.LSTM(3, 5, 2, 3, dtype="float64"))
    with pytest.raises(ValueError, match="cell"):
        sr.Seq2Seq(enc, sr.GRU(3, 4, 2, 3, dtype="float64"))
    with pytest.raises(ValueError, match="decoder input_size must be 3"):
        sr.Seq2Seq(enc, sr.LSTM(4, 4, 2, 3, dtype="float64"))
    with pytest.raises(ValueError, match="decoder input_size must be 7"):
        sr.Seq2Seq(enc, sr.LSTM(3, 4, 1, 3, dtype="float64"), context="input")
    with pytest.raises(ValueError, match="no head"):
        sr.Seq2Seq(sr.LSTM(2, 4, 2, 1, dtype="float64"), dec)
    with pytest.raises(ValueError, match="must have a head"):
        sr.Seq2Seq(enc, sr.LSTM(3, 4, 2, dtype="float64"))
    with pytest.raises(ValueError, match="unidirectional"):
        sr.Seq2Seq(enc, sr.LSTM(3, 4, 2, 3, dtype="float64", bidirectional=True))
    with pytest.raises(TypeError, match="same dtype"):
        sr.Seq2Seq(enc, sr.LSTM(3, 4, 2, 3))
    with pytest.raises(ValueError, match="context"):
        sr.Seq2Seq(enc, dec, context="attention")
    with pytest.raises(ValueError, match="start"):
        sr.Seq2Seq(enc, dec, loss="cross_entropy", start=3)
    with pytest.raises(ValueError, match="start"):
        sr.Seq2Seq(enc, dec, start=[1.0])
    with pytest.raises(ValueError, match="different"):
        sr.Seq2Seq(enc, enc)


def test_bad_data_changes_nothing():
    enc, dec = pair("gru", "init_state", 3)
    s2s = sr.Seq2Seq(enc, dec, loss="cross_entropy", optimizer=sr.Adam(lr=0.1))
    X = np.zeros((3, 2))
    s2s.learn(X, [0, 1])
    before = snapshot(enc, dec)
    upd = s2s._upd._snapshot()
    for bad in ((np.zeros((3, 4)), [0, 1], ValueError, "X_src must have shape"),
                (X, [0, 3], ValueError, r"Y_tgt must hold class indices in \[0, 3\)"),
                (X, [0, -1], ValueError, "Y_tgt"),
                (X, [], ValueError, "at least one"),
                (X, 1, ValueError, "Y_tgt"),
                (np.full((3, 2), np.nan), [0], ValueError, "finite")):
        with pytest.raises(bad[2], match=bad[3]):
            s2s.learn(bad[0], bad[1])
        with pytest.raises(bad[2]):
            s2s.learn_batch([X, bad[0]], [[1], bad[1]])
    with pytest.raises(TypeError, match="stop"):
        s2s.generate(X, 3, stop=lambda y: True)
    assert_unchanged(before, enc, dec)
    assert s2s._upd._snapshot()["counters"] == upd["counters"]


def test_fit_pickle_and_deepcopy():
    enc, dec = pair("lstm", "init_state", 3, nd=2, dtype="float32", seed=4)
    s2s = sr.Seq2Seq(enc, dec, loss="cross_entropy", start=0, optimizer=sr.Adam(lr=0.05))
    src = [np.full((3, 2), v, np.float32) for v in (-1.0, 1.0)]
    tgt = [[1, 1], [2, 2]]
    hist = s2s.fit(src, tgt, epochs=25, seed=0)
    assert len(hist) == 25 and hist[-1] < 0.5 * hist[0]
    assert list(s2s.generate(src[1], 2)) == [2, 2]
    for other in (pickle.loads(pickle.dumps(s2s)), copy.deepcopy(s2s)):
        assert other.encoder is not enc and other.updates == s2s.updates
        other.learn(src[0], tgt[0])
    s2s.learn(src[0], tgt[0])
    for other in (pickle.loads(pickle.dumps(s2s)),):
        np.testing.assert_array_equal(other.decoder.parameters(), dec.parameters())
