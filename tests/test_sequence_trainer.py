"""SequenceTrainer: full BPTT over whole windows (uni- and bidirectional) against the NumPy
reference, finite differences and PyTorch; errors change nothing; pickling."""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st

import streamrnn as sr
from streamrnn import reference as ref

from conftest import CELLS, assert_close, assert_unchanged, make_net, snapshot, window_ref

# Adam and RMSprop divide each gradient component by its own running RMS, so a component
# of ~1e-12 whose last bits differ between two correct summation orders moves its weight by
# lr times that relative difference (see test_trainer_vs_reference.py): the comparison keeps
# its strict tolerance on the well-conditioned part, eps = 1e-6, and checks float32 (whose
# activations are fast approximations) with SGD, whose update is linear in the gradient.
OPTS = {"sgd": lambda: sr.SGD(lr=0.1, momentum=0.9), "adam": lambda: sr.Adam(lr=0.01, eps=1e-6),
        "rmsprop": lambda: sr.RMSprop(lr=0.01, eps=1e-6)}


def make(cell, D, H, L=1, O=None, dtype="float64", seed=0, bidirectional=True):
    return make_net(cell, D, H, L, O, dtype=dtype, seed=seed, bidirectional=bidirectional)


ref_of = window_ref


def targets(rng, loss, T, out, m2o, holes=True):
    if loss == "mse":
        if m2o:
            return rng.standard_normal(out)
        Y = rng.standard_normal((T, out))
        if holes and T > 1:
            Y[0, 0] = np.nan
        return Y
    if m2o:
        return np.int64(rng.integers(0, out))
    Y = rng.integers(0, out, T)
    if holes and T > 1:
        Y[-1] = -1
    return Y


@st.composite
def cases(draw):
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    return dict(cell=draw(st.sampled_from(CELLS)), D=draw(st.integers(1, 3)),
                H=draw(st.integers(1, 4)), L=draw(st.integers(1, 2)),
                O=draw(st.sampled_from([None, 2, 3])), loss=loss,
                dtype=draw(st.sampled_from(["float32", "float64"])),
                nd=draw(st.sampled_from([1, 2])), opt=draw(st.sampled_from(sorted(OPTS))),
                clip=draw(st.sampled_from([(None, None), (0.05, None), (None, 0.1),
                                           (0.05, 0.1)])),
                seed=draw(st.integers(0, 2**16)))


@given(cases())
def test_trainer_vs_reference(c):
    net = make(c["cell"], c["D"], c["H"], c["L"], c["O"], c["dtype"], c["seed"], c["nd"] == 2)
    rn = ref_of(net)
    out = c["O"] or c["nd"] * c["H"]
    if out < 2:
        c["loss"] = "mse"  # cross-entropy needs two classes
    cv, cn = c["clip"]
    opt = OPTS["sgd" if c["dtype"] == "float32" else c["opt"]]()
    tr = sr.SequenceTrainer(net, c["loss"], opt, clip_value=cv, clip_norm=cn)
    rt = ref.SequenceTrainer([rn], c["loss"], opt, clip_value=cv, clip_norm=cn)
    rng = np.random.default_rng(c["seed"])
    dt = np.dtype(c["dtype"])
    for it in range(3):
        Ts = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 3)))]
        windows = [rng.standard_normal((T, c["D"])).astype(dt) for T in Ts]
        m2os = [bool(rng.integers(0, 2)) for _ in Ts]
        tgts = [targets(rng, c["loss"], T, out, m) for T, m in zip(Ts, m2os)]
        v_ref = rt.learn_batch(windows, tgts, many_to_one=m2os)
        if len(windows) == 1:
            v = tr.learn_sequence(windows[0], tgts[0])
        else:
            v = tr.learn_batch(windows, tgts)
        assert_close(v, v_ref, dt, "loss")
        assert_close(net.parameters(), rn.flat, dt, f"weights after update {it}")
    assert tr.updates == rt.updates and tr.skipped_updates == rt.skipped


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("loss,m2o", [("mse", False), ("cross_entropy", False),
                                      ("mse", True), ("cross_entropy", True)])
def test_reference_sequence_gradient_vs_finite_differences(cell, loss, m2o):
    rng = np.random.default_rng(7)
    rn = ref.WindowNet(cell, 2, 2, 1, 3, 2)   # bidirectional (the two-layer case: FD of
    rn.flat[...] = rng.uniform(-0.6, 0.6, rn.flat.shape)  # test_bidirectional.py)
    X = rng.standard_normal((3, 2))
    Y = targets(rng, loss, 3, 3, m2o)
    v, g = ref.sequence_loss_and_grad(rn, X, Y, loss, m2o)
    eps = 1e-6
    fd = np.zeros_like(g)
    for i in range(g.size):
        old = rn.flat[i]
        rn.flat[i] = old + eps
        up = ref.sequence_loss_and_grad(rn, X, Y, loss, m2o)[0]
        rn.flat[i] = old - eps
        down = ref.sequence_loss_and_grad(rn, X, Y, loss, m2o)[0]
        rn.flat[i] = old
        fd[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-7 * np.abs(fd).max())


# ----------------------------------------------------------------------------- PyTorch

def torch_setup(cell, D, H, L, O, bidirectional, seed):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    kw = dict(num_layers=L, bidirectional=bidirectional)
    m = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[cell](D, H, **kw)
    head = torch.nn.Linear((2 if bidirectional else 1) * H, O)
    m, head = m.double(), head.double()
    net = make(cell, D, H, L, O, "float64", bidirectional=bidirectional)
    sd = dict(m.named_parameters())
    sd["head.weight"], sd["head.bias"] = head.weight, head.bias
    net.load_state_dict(sd)
    return torch, m, head, net


def torch_readout(torch, out, H, bidirectional):
    """The many-to-one readout: out[-1] (unidirectional) or [fwd at T-1 | bwd at 0]."""
    if not bidirectional:
        return out[-1]
    return torch.cat([out[-1, :H], out[0, H:]])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_loss_and_gradients_vs_torch(cell, bidirectional):
    D, H, L, O, T = 3, 4, 2, 3, 6
    torch, m, head, net = torch_setup(cell, D, H, L, O, bidirectional, seed=1)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((T, D))
    Ymse = rng.standard_normal((T, O))
    cls = 2
    out, hn = m(torch.from_numpy(X))
    loss_t = (torch.nn.functional.mse_loss(head(out), torch.from_numpy(Ymse))
              + torch.nn.functional.cross_entropy(
                  head(torch_readout(torch, out, H, bidirectional))[None],
                  torch.tensor([cls])))
    loss_t.backward()
    # the readout is PyTorch's h_n of the top layer
    hh = hn[0] if cell == "lstm" else hn
    top = torch.cat([hh[-2], hh[-1]]) if bidirectional else hh[-1]
    np.testing.assert_allclose(top.detach().numpy(),
                               torch_readout(torch, out, H, bidirectional).detach().numpy())
    trm = sr.SequenceTrainer(net, "mse", sr.SGD(lr=1.0))
    trc = sr.SequenceTrainer(net, "cross_entropy", sr.SGD(lr=1.0))
    p0 = net.parameters().copy()
    # two SGD(lr=1) updates on the same weights would differ; collect gradients directly
    g = np.zeros_like(p0)
    values = []
    for tr, Y in ((trm, Ymse), (trc, cls)):
        tr._upd.zero_grad()
        Xa, tgt, mm, _ = tr._check(X, Y, "X", "Y")
        values.append(tr._grad_of(Xa, tgt, mm, 1.0))
        g += tr._upd.grad
    assert_close(sum(values), loss_t.item(), "float64", "loss")
    assert_close(net.parameters(), p0, "float64", "no update made")
    gnet = make(cell, D, H, L, O, "float64", bidirectional=bidirectional)
    gnet.parameters()[...] = g
    for k, p in m.named_parameters():
        assert_close(gnet.state_dict()[k], p.grad.numpy(), "float64", k)
    assert_close(gnet.head.weight, head.weight.grad.numpy(), "float64", "head.weight")
    assert_close(gnet.head.bias, head.bias.grad.numpy(), "float64", "head.bias")
    assert trm.learn_sequence(X, Ymse) == values[0]   # the loss before the update
    assert trm.updates == 1 and not np.array_equal(net.parameters(), p0)


@pytest.mark.parametrize("opt", ["adam", "rmsprop", "sgd"])
def test_optimizer_trajectory_vs_torch(opt):
    D, H, L, O, T = 2, 4, 2, 2, 5
    torch, m, head, net = torch_setup("lstm", D, H, L, O, True, seed=3)
    params = list(m.parameters()) + list(head.parameters())
    if opt == "adam":
        mine, theirs = sr.Adam(lr=0.02), torch.optim.Adam(params, lr=0.02)
    elif opt == "rmsprop":
        mine, theirs = sr.RMSprop(lr=0.01), torch.optim.RMSprop(params, lr=0.01, eps=1e-8)
    else:
        mine = sr.SGD(lr=0.1, momentum=0.9)
        theirs = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    tr = sr.SequenceTrainer(net, "mse", mine, clip_norm=0.5)
    rng = np.random.default_rng(4)
    for step in range(5):
        Xs = [rng.standard_normal((T + k, D)) for k in range(2)]
        Ys = [rng.standard_normal((T + k, O)) for k in range(2)]
        theirs.zero_grad()
        losses = [torch.nn.functional.mse_loss(head(m(torch.from_numpy(X))[0]),
                                               torch.from_numpy(Y)) for X, Y in zip(Xs, Ys)]
        (sum(losses) / 2).backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        theirs.step()
        v = tr.learn_batch(Xs, Ys)
        assert_close(v, sum(x.item() for x in losses) / 2, "float64", f"loss {step}")
        flat = np.concatenate([p.detach().numpy().ravel() for p in params])
        np.testing.assert_allclose(net.parameters(), flat, rtol=1e-12,
                                   atol=1e-12 * np.abs(flat).max(), err_msg=f"step {step}")


# ------------------------------------------------------------------------ behaviour

def test_fit_learns_and_reports_epochs():
    net = make("gru", 1, 8, 1, 1, "float64", seed=0, bidirectional=True)
    tr = sr.SequenceTrainer(net, optimizer=sr.Adam(lr=0.03))
    rng = np.random.default_rng(0)
    windows = [rng.standard_normal((int(rng.integers(3, 8)), 1)) for _ in range(8)]
    tgts = [np.array([w.sum()]) for w in windows]
    hist = tr.fit(windows, tgts, epochs=15, seed=1, batch_size=2)
    assert len(hist) == 15 and hist[-1] < 0.5 * hist[0]
    assert tr.updates == 15 * 4
    # deterministic given the seed
    net2 = make("gru", 1, 8, 1, 1, "float64", seed=0, bidirectional=True)
    tr2 = sr.SequenceTrainer(net2, optimizer=sr.Adam(lr=0.03))
    assert tr2.fit(windows, tgts, epochs=15, seed=1, batch_size=2) == hist


def test_window_without_target_changes_nothing():
    net = make("lstm", 2, 3, 1, 2)
    tr = sr.SequenceTrainer(net)
    before = snapshot(net)
    assert math.isnan(tr.learn_sequence(np.zeros((3, 2)), np.full((3, 2), np.nan)))
    assert_unchanged(before, net)
    assert tr.updates == 0 and tr.skipped_updates == 0


def test_nonfinite_loss_is_skipped():
    net = make("rnn_relu", 1, 2, 1, 1, seed=0, bidirectional=False)
    net.parameters()[...] = 1e200  # the outputs overflow
    tr = sr.SequenceTrainer(net, optimizer=sr.SGD(lr=0.1))
    before = snapshot(net)
    tr.learn_sequence(np.ones((4, 1)), np.ones((4, 1)))
    assert tr.skipped_updates == 1 and tr.updates == 0
    assert_unchanged(before, net)


@pytest.mark.parametrize("bad_X,bad_Y,exc,match", [
    (np.zeros((3, 5)), np.zeros((3, 2)), ValueError, "X must have shape"),
    (np.zeros((0, 2)), np.zeros((0, 2)), ValueError, "at least one step"),
    (np.zeros((3, 2), np.float32), np.zeros((3, 2)), TypeError, "dtype float64"),
    (np.full((3, 2), np.inf), np.zeros((3, 2)), ValueError, "finite"),
    (np.zeros((3, 2)), np.zeros((4, 2)), ValueError, r"Y must have shape \(3, 2\)"),
    (np.zeros((3, 2)), np.full((3, 2), np.inf), ValueError, "inf"),
    (np.zeros((3, 2)), np.array(["a", "b"]), TypeError, "real numbers"),
])
def test_bad_input_changes_nothing(bad_X, bad_Y, exc, match):
    net = make("lstm", 2, 3, 2, 2)
    tr = sr.SequenceTrainer(net, optimizer=sr.Adam(lr=0.1))
    tr.learn_sequence(np.ones((3, 2)), np.ones((3, 2)))
    before = snapshot(net)
    upd = tr._upd._snapshot()
    with pytest.raises(exc, match=match):
        tr.learn_sequence(bad_X, bad_Y)
    with pytest.raises(exc):  # a bad window anywhere in a batch: nothing at all
        tr.learn_batch([np.ones((2, 2)), bad_X], [np.ones((2, 2)), bad_Y])
    assert_unchanged(before, net)
    after = tr._upd._snapshot()
    assert after["counters"] == upd["counters"]
    np.testing.assert_array_equal(after["m1"], upd["m1"])
    np.testing.assert_array_equal(after["m2"], upd["m2"])


def test_cross_entropy_and_settings_errors():
    net = make("gru", 2, 3, 1, 3)
    tr = sr.SequenceTrainer(net, loss="cross_entropy")
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"class indices in \[-1, 3\)"):
        tr.learn_sequence(np.zeros((2, 2)), [0, 3])
    with pytest.raises(TypeError, match="integer class"):
        tr.learn_sequence(np.zeros((2, 2)), [0.5, 1.0])
    with pytest.raises(ValueError, match="same length"):
        tr.learn_batch([np.zeros((2, 2))], [])
    with pytest.raises(ValueError, match="epochs"):
        tr.fit([np.zeros((2, 2))], [1], epochs=0)
    assert_unchanged(before, net)
    with pytest.raises(ValueError, match="loss"):
        sr.SequenceTrainer(net, loss="hinge")
    with pytest.raises(TypeError, match="optimizer"):
        sr.SequenceTrainer(net, optimizer="adam")
    with pytest.raises(ValueError, match="clip_norm"):
        sr.SequenceTrainer(net, clip_norm=-1.0)
    with pytest.raises(TypeError, match="net"):
        sr.SequenceTrainer("net")


def test_pickle_and_deepcopy_continue_identically():
    net = make("lstm", 2, 3, 2, 1, "float32", seed=2)
    tr = sr.SequenceTrainer(net, optimizer=sr.Adam(lr=0.01), clip_value=1.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2)).astype(np.float32)
    Y = rng.standard_normal((5, 1)).astype(np.float32)
    tr.learn_sequence(X, Y)
    clones = [pickle.loads(pickle.dumps(tr)), copy.deepcopy(tr)]
    tr.learn_sequence(X, Y)
    for c in clones:
        assert c.net is not net and c.updates == 1
        c.learn_sequence(X, Y)
        np.testing.assert_array_equal(c.net.parameters(), net.parameters())
        assert c.updates == tr.updates == 2


def test_predict_matches_run_and_many_to_one_readout():
    net = make("gru", 2, 3, 2, None, "float64", seed=4)
    tr = sr.SequenceTrainer(net)
    X = np.random.default_rng(1).standard_normal((6, 2))
    Y = tr.predict(X)
    np.testing.assert_array_equal(Y, net.run(X))
    z = tr.predict(X, many_to_one=True)
    np.testing.assert_array_equal(z, np.concatenate([Y[-1, :3], Y[0, 3:]]))


def test_docstring_examples_run():
    import doctest

    from streamrnn import network, sequence

    for mod in (sequence, network):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.attempted > 0 and res.failed == 0, mod.__name__


@pytest.mark.parametrize("cell", CELLS)
def test_windows_start_from_the_networks_initial_state(cell):
    # a network carrying an initial state (set_initial_state, or an ONNX/torch import of a
    # learned h0): SequenceTrainer's windows start where net.new_state() starts, not from
    # zeros. Forward against the streaming path, gradient against the reference's window
    # backward from that h0/c0.
    net = make_net(cell, 2, 3, num_layers=2, output_size=1, dtype="float64", seed=4)
    rng = np.random.default_rng(9)
    h0 = rng.standard_normal((2, 3)) * 0.5
    c0 = rng.standard_normal((2, 3)) * 0.5 if cell.startswith("lstm") else None
    net.set_initial_state(h0, c0)
    X = rng.standard_normal((5, 2))
    Y = rng.standard_normal((5, 1))
    tr = sr.SequenceTrainer(net, "mse", sr.SGD(lr=0.1))
    assert_close(tr.predict(X), net.run(X), np.float64, "predict vs streaming run")
    rn = window_ref(net)
    Yr, _, _, cache = ref.window_forward(rn, X, h0[:, None, :],
                                         None if c0 is None else c0[:, None, :])
    value, dY = ref.sequence_loss("mse", Yr, Y, False)
    grad = ref.window_backward(rn, cache, dY)[0]
    before = net.parameters().copy()
    assert_close(tr.learn_sequence(X, Y), value, np.float64, "loss")
    assert_close(net.parameters(), before - 0.1 * grad, np.float64, "weights after SGD")
    # zeros again: the window starts from zeros
    net.set_initial_state(None)
    Yz = ref.window_forward(window_ref(net), X)[0]
    assert_close(tr.predict(X), Yz, np.float64, "predict from zeros")


def test_seq2seq_refuses_networks_with_an_initial_state():
    enc = sr.GRU(2, 3, dtype="float64", seed=0)
    dec = sr.GRU(1, 3, output_size=1, dtype="float64", seed=1)
    s2s = sr.Seq2Seq(enc, dec, optimizer=sr.SGD(lr=0.1))
    X, Y = np.ones((4, 2)), np.ones((3, 1))
    for net, name in ((enc, "encoder"), (dec, "decoder")):
        net.set_initial_state(np.full((1, 3), 0.5))
        before = snapshot(enc, dec)
        with pytest.raises(ValueError, match=f"{name} carries an initial state"):
            s2s.learn(X, Y)
        with pytest.raises(ValueError, match=f"{name} carries an initial state"):
            s2s.generate(X, 3)
        assert_unchanged(before, enc, dec)
        net.set_initial_state(None)
    s2s.learn(X, Y)
