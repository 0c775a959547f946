"""The C trainer against the NumPy reference trainer (the executable specification).

Hypothesis draws the network, TBPTT(k1, k2), the loss, the optimizer and its settings, the
clipping and a stream with missing targets; after every learn_one the predictions must agree
and at the end the weights (float64: 1e-10 relative) and the counters.
"""
import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

import streamrnn as sr
from streamrnn import reference

CLASSES = {"lstm": sr.LSTM, "gru": sr.GRU, "rnn_tanh": sr.RNN, "rnn_relu": sr.RNN}


def _net(cell, D, H, L, O, dtype, seed):
    kw = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
    return CLASSES[cell](D, H, num_layers=L, output_size=O, dtype=dtype, seed=seed, **kw)


# Near-zero values are cancellations, where two correct summation orders (two BLAS builds,
# -O1 vs -O2) differ by a few ulps of the O(1) terms that cancel, so a relative tolerance
# alone would demand more than float64 carries. The checks below bound exactly that and
# nothing more:
# - MSE: sqrt(loss) is the RMS of the residuals, a norm, so by the triangle inequality
#   |sqrt(l_c) - sqrt(l_r)| <= RMS(r_c - r_r) <= DELTA; compared with rtol 1e-9, atol DELTA.
# - cross-entropy: logits differing by DELTA move log-softmax by at most 2*DELTA.
# - the gradient norm is tiny when a saturated cell cancels it (tanh'(a) = 1 - h*h with
#   h ~ +-1; CI found a norm of 3.5e-8 from O(1) terms, off by 5e-17 = 1.5e-9 relative):
#   atol 1e-14 (~50 ulps of the O(1) terms, scaled by the loss) on top of rtol 1e-9.
DELTA = 1e-12


def _assert_loss_close(kind, actual, desired):
    if kind == "mse":
        np.testing.assert_allclose(np.sqrt(actual), np.sqrt(desired), rtol=1e-9, atol=DELTA)
    else:
        np.testing.assert_allclose(actual, desired, rtol=1e-9, atol=2 * DELTA)


def _assert_grad_norm_close(actual, desired, loss):
    np.testing.assert_allclose(actual, desired, rtol=1e-9, atol=1e-14 * max(1.0, loss))

@st.composite
def settings(draw):
    cell = draw(st.sampled_from(sorted(CLASSES)))
    D = draw(st.integers(1, 4))
    H = draw(st.integers(1, 8))
    L = draw(st.integers(1, 2))
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    O = draw(st.one_of(st.none(), st.integers(1, 3)))
    if loss == "cross_entropy" and (O or H) < 2:
        O = draw(st.integers(2, 3))
    k2 = draw(st.integers(1, 8))
    k1 = draw(st.integers(1, k2))
    kind = draw(st.sampled_from(["sgd", "adam", "rmsprop"]))
    # Adam and RMSprop divide each gradient component by its own running RMS: a component
    # of ~1e-12 whose last bits differ between two correct summation orders moves its weight
    # by lr times that relative difference (~1e-4), and large steps make training chaotic,
    # which amplifies any rounding difference. Both are properties of the optimizer, not
    # errors of either implementation, so the comparison keeps its strict tolerance on the
    # well-conditioned part: moderate lr, and eps >= 1e-6 for the adaptive optimizers.
    lr = draw(st.floats(1e-3, 0.05))
    eps = draw(st.sampled_from([1e-6, 1e-5, 1e-4]))
    wd = draw(st.sampled_from([0.0, 0.0, 1e-2]))
    mom = draw(st.sampled_from([0.0, 0.5, 0.9]))
    if kind == "sgd":
        opt = sr.SGD(lr, momentum=mom, nesterov=mom > 0 and draw(st.booleans()), weight_decay=wd)
    elif kind == "adam":
        opt = sr.Adam(lr, betas=(draw(st.floats(0.5, 0.95)), draw(st.floats(0.9, 0.999))),
                      eps=eps, weight_decay=wd)
    else:
        opt = sr.RMSprop(lr, alpha=draw(st.floats(0.5, 0.99)), eps=eps, momentum=mom,
                         weight_decay=wd)
    clip_value = draw(st.sampled_from([None, 0.05, 1.0]))
    clip_norm = draw(st.sampled_from([None, 0.1, 5.0]))
    T = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**16))
    missing = draw(st.floats(0.0, 0.6))
    return dict(cell=cell, D=D, H=H, L=L, O=O, loss=loss, k1=k1, k2=k2, opt=opt,
                clip_value=clip_value, clip_norm=clip_norm, T=T, seed=seed, missing=missing)


def _stream(s, out):
    rng = np.random.default_rng(s["seed"])
    X = rng.normal(size=(s["T"], s["D"]))
    if s["loss"] == "mse":
        Y = [None if rng.random() < s["missing"] else rng.normal(size=out) for _ in range(s["T"])]
    else:
        Y = [None if rng.random() < s["missing"] else int(rng.integers(out))
             for _ in range(s["T"])]
    return X, Y


def _run_pair(s, dtype):
    net = _net(s["cell"], s["D"], s["H"], s["L"], s["O"], dtype, s["seed"])
    ref_net = reference.Net(s["cell"], s["D"], s["H"], s["L"], s["O"],
                            params=net.parameters().astype(np.float64 if dtype == "float64"
                                                           else np.float32))
    kw = dict(loss=s["loss"], optimizer=s["opt"], k1=s["k1"], k2=s["k2"],
              clip_value=s["clip_value"], clip_norm=s["clip_norm"])
    return net, sr.OnlineTrainer(net, **kw), ref_net, reference.Trainer(ref_net, **kw)


# Found by CI under the ASan build: gradient norm 3.45e-8 (saturated tanh), 1.5e-9 relative.
@example(dict(cell="rnn_tanh", D=1, H=3, L=2, O=None, loss="mse", k1=1, k2=2,
              opt=sr.RMSprop(0.0390625, alpha=0.9375, eps=1e-6, momentum=0.9),
              clip_value=None, clip_norm=None, T=24, seed=130, missing=0.0))
@given(settings())
def test_c_trainer_matches_reference_float64(s):
    net, tr, ref_net, ref = _run_pair(s, "float64")
    out = s["O"] or s["H"]
    X, Y = _stream(s, out)
    for x, y in zip(X, Y):
        p = tr.learn_one(x, y)
        q = ref.learn_one(x, y)
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-10)
    scale = max(1.0, float(np.abs(ref_net.flat).max()))
    np.testing.assert_allclose(net.parameters(), ref_net.flat, rtol=1e-10, atol=1e-10 * scale)
    assert (tr.steps, tr.updates, tr.skipped_updates) == (ref.steps, ref.updates, ref.skipped)
    if tr.updates:
        _assert_loss_close(s["loss"], tr.last_loss, ref.last_loss)
        _assert_grad_norm_close(tr.last_grad_norm, ref.last_grad_norm, ref.last_loss)
    if np.isfinite(ref.running_loss):
        _assert_loss_close(s["loss"], tr.running_loss, ref.running_loss)
    np.testing.assert_allclose(tr.state.h, ref.h, rtol=1e-10, atol=1e-10)


@given(settings())
def test_c_trainer_matches_reference_float32(s):
    # float32 carries 7 digits, so the adaptive optimizers' per-component normalisation (see
    # settings) amplifies rounding far sooner: the float32 template is checked with SGD,
    # whose update is linear in the gradient; the optimizers' formulas are the same template
    # code that the float64 test checks at 1e-10.
    opt = s["opt"]
    s = dict(s, T=min(s["T"], 20),
             opt=sr.SGD(opt.lr, momentum=getattr(opt, "momentum", 0.0)))
    net, tr, ref_net, ref = _run_pair(s, "float32")
    out = s["O"] or s["H"]
    X, Y = _stream(s, out)
    X = X.astype(np.float32)
    Y = [y.astype(np.float32) if isinstance(y, np.ndarray) else y for y in Y]
    for x, y in zip(X, Y):
        p = tr.learn_one(x, y)
        q = ref.learn_one(x, y)
        np.testing.assert_allclose(p, q, rtol=2e-4, atol=2e-4)
    assert (tr.steps, tr.updates) == (ref.steps, ref.updates)
    np.testing.assert_allclose(net.parameters(), ref_net.flat, rtol=1e-3, atol=1e-3)


@given(settings())
def test_learn_many_is_the_learn_one_loop_bit_for_bit(s):
    s = dict(s, T=min(s["T"], 30))
    a = _run_pair(s, "float64")
    b = _run_pair(s, "float64")
    out = s["O"] or s["H"]
    X, Y = _stream(s, out)
    preds = np.array([a[1].learn_one(x, y) for x, y in zip(X, Y)])
    if s["loss"] == "mse":
        Ym = np.array([np.full(out, np.nan) if y is None else y for y in Y])
    else:
        Ym = np.array([-1 if y is None else y for y in Y], dtype=np.int64)
    np.testing.assert_array_equal(b[1].learn_many(X, Ym), preds)
    np.testing.assert_array_equal(a[0].parameters(), b[0].parameters())
    assert a[1].stats()["updates"] == b[1].stats()["updates"]
