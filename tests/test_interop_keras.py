"""sr.from_keras against Keras 3's own outputs (torch backend) and against Keras'
equations written in NumPy (float64)."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # tensorflow is not needed

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")  # the backend these tests run Keras on
keras = pytest.importorskip("keras")

import streamrnn as sr  # noqa: E402

from conftest import assert_unchanged, snapshot  # noqa: E402

KINDS = ("lstm", "gru", "simple_tanh", "simple_relu", "gru_reset_before")
# keras.ops.convert_to_numpy on the torch backend under NumPy 2 (Keras' own, harmless)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CELL = {"lstm": "lstm", "gru": "gru", "simple_tanh": "rnn_tanh", "simple_relu": "rnn_relu",
        "gru_reset_before": "gru_reset_before"}


def close(a, b, tol, what=""):
    b = np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol * scale,
                               err_msg=what)


def rec_layer(kind, units, dtype="float32", **kw):
    kw.setdefault("return_sequences", True)
    if kind == "lstm":
        return keras.layers.LSTM(units, dtype=dtype, **kw)
    if kind == "gru":
        return keras.layers.GRU(units, dtype=dtype, **kw)
    if kind == "gru_reset_before":     # the Keras 2 default
        return keras.layers.GRU(units, dtype=dtype, reset_after=False, **kw)
    return keras.layers.SimpleRNN(units, activation=kind[7:], dtype=dtype, **kw)


def randomize(model, seed):
    """Non-default weights everywhere (biases start at zero/one in Keras)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, tuple(w.shape)).astype(w.dtype))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def keras_equations(layers, X):
    """Keras' recurrences in NumPy float64 from the layers' kernels (Keras layout and gate
    order, nothing converted to PyTorch's)."""
    seq = np.asarray(X, np.float64)
    for layer in layers:
        if isinstance(layer, keras.layers.Bidirectional):  # merge_mode="concat"
            seq = np.concatenate([keras_equations([layer.forward_layer], seq),
                                  keras_equations([layer.backward_layer], seq[::-1])[::-1]],
                                 axis=1)
            continue
        if isinstance(layer, keras.layers.Dense):
            W = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)
            b = (np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float64)
                 if layer.use_bias else 0.0)
            seq = seq @ W + b
            continue
        c = layer.cell
        K = np.asarray(keras.ops.convert_to_numpy(c.kernel), np.float64)
        U = np.asarray(keras.ops.convert_to_numpy(c.recurrent_kernel), np.float64)
        n = U.shape[0]
        two_bias = isinstance(layer, keras.layers.GRU) and c.reset_after
        b = (np.asarray(keras.ops.convert_to_numpy(c.bias), np.float64) if c.use_bias
             else np.zeros((2, K.shape[1]) if two_bias else K.shape[1:]))
        h = np.zeros(n)
        cs = np.zeros(n)
        out = []
        for x in seq:
            if isinstance(layer, keras.layers.LSTM):
                z = x @ K + h @ U + b
                i, f, g, o = z[:n], z[n:2 * n], z[2 * n:3 * n], z[3 * n:]
                cs = sigmoid(f) * cs + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(cs)
            elif isinstance(layer, keras.layers.GRU) and not c.reset_after:
                # Keras 2's default: one bias, the reset gate on h before the recurrent kernel
                xk = x @ K + b
                zg = sigmoid(xk[:n] + h @ U[:, :n])
                r = sigmoid(xk[n:2 * n] + h @ U[:, n:2 * n])
                hh = np.tanh(xk[2 * n:] + (r * h) @ U[:, 2 * n:])
                h = zg * h + (1 - zg) * hh
            elif isinstance(layer, keras.layers.GRU):  # reset_after=True
                xk = x @ K + b[0]
                hk = h @ U + b[1]
                zg = sigmoid(xk[:n] + hk[:n])
                r = sigmoid(xk[n:2 * n] + hk[n:2 * n])
                hh = np.tanh(xk[2 * n:] + r * hk[2 * n:])
                h = zg * h + (1 - zg) * hh
            else:
                a = x @ K + h @ U + b
                h = np.tanh(a) if layer.activation.__name__ == "tanh" else np.maximum(a, 0)
            out.append(h)
        seq = np.array(out)
    return seq


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("head", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_from_keras_matches_keras(kind, L, head, use_bias):
    D, H, T = 3, 5, 11
    layers = [rec_layer(kind, H, use_bias=use_bias) for _ in range(L)]
    if head:
        layers.append(keras.layers.Dense(2, use_bias=use_bias))
    model = keras.Sequential([keras.Input((None, D))] + layers)
    randomize(model, seed=L + 10 * head)
    X = np.random.default_rng(L).standard_normal((T, D)).astype(np.float32)
    Yk = keras.ops.convert_to_numpy(model(X[None]))[0]
    net = sr.from_keras(model)
    assert net.cell == CELL[kind] and net.num_layers == L and net.dtype == np.float32
    assert net.output_size == (2 if head else None)
    close(net.run(X, net.new_state()), Yk, 2e-6, "float32 vs Keras")
    net64 = sr.from_keras(model, dtype="float64")
    close(net64.run(X.astype(np.float64), net64.new_state()), keras_equations(layers, X), 1e-12,
          "float64 vs Keras equations in NumPy")


# (not gru_reset_before: Keras' float64 GRU with reset_after=False runs ops.matmul, which
# Keras 3 computes in float32 for float64 inputs; see test_cell_variants.py)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_float64_layer_with_initial_state(kind):
    D, H, T = 4, 6, 9
    layer = rec_layer(kind, H, dtype="float64")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1, T, D))
    layer.build((None, None, D))
    randomize(layer, 7)
    net = sr.from_keras(layer)
    assert net.dtype == np.float64
    s = net.new_state()
    s.h[...] = rng.uniform(-0.5, 0.5, s.h.shape)
    init = [s.h.copy()]
    if kind == "lstm":
        s.c[...] = rng.uniform(-1, 1, s.c.shape)
        init.append(s.c.copy())
    Yk = keras.ops.convert_to_numpy(layer(X, initial_state=init))[0]
    close(net.run(X[0], s), Yk, 1e-12)


def test_list_of_layers_from_a_functional_model():
    inp = keras.Input((None, 2))
    a = keras.layers.GRU(4, return_sequences=True, name="a")(inp)
    b = keras.layers.GRU(4, return_sequences=True, name="b")(a)
    out = keras.layers.Dense(1, name="d")(b)
    model = keras.Model(inp, out)
    randomize(model, 3)
    with pytest.raises(TypeError, match="functional"):
        sr.from_keras(model)
    net = sr.from_keras([model.get_layer(n) for n in "abd"])
    X = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    close(net.run(X, net.new_state()), keras.ops.convert_to_numpy(model(X[None]))[0], 2e-6)


def test_last_layer_without_return_sequences():
    model = keras.Sequential([keras.Input((None, 2)), keras.layers.LSTM(3),
                              keras.layers.Dense(1)])
    randomize(model, 1)
    X = np.random.default_rng(0).standard_normal((7, 2)).astype(np.float32)
    net = sr.from_keras(model)
    close(net.run(X, net.new_state())[-1], keras.ops.convert_to_numpy(model(X[None]))[0], 2e-6)


def built(layer, D=2):
    layer.build((None, None, D))
    return layer


@pytest.mark.parametrize("make, exc, match", [
    (lambda: built(keras.layers.LSTM(3, activation="relu")), ValueError, "activation"),
    (lambda: built(keras.layers.GRU(3, recurrent_activation="hard_sigmoid")), ValueError,
     "recurrent_activation"),
    (lambda: built(keras.layers.SimpleRNN(3, activation="sigmoid")), ValueError, "activation"),
    (lambda: built(keras.layers.LSTM(3, go_backwards=True)), ValueError, "go_backwards"),
    (lambda: built(keras.layers.LSTM(3, dropout=0.2)), ValueError, "allow_dropout"),
    (lambda: keras.layers.LSTM(3), ValueError, "not built"),
    (lambda: keras.Sequential([keras.Input((None, 2)), keras.layers.LSTM(3),
                               keras.layers.Dense(1, activation="relu")]), ValueError,
     "Dense activation"),
    (lambda: keras.Sequential([keras.Input((None, 2)),
                               keras.layers.LSTM(3, return_sequences=True),
                               keras.layers.GRU(3)]), ValueError, "different kinds"),
    (lambda: keras.Sequential([keras.Input((None, 2)),
                               keras.layers.LSTM(3, return_sequences=True),
                               keras.layers.LSTM(4)]), ValueError, "one size"),
    (lambda: keras.Sequential([keras.Input((None, 2)), keras.layers.LSTM(3),
                               keras.layers.Dense(2), keras.layers.Dense(1)]), ValueError,
     "last layer"),
    (lambda: keras.Sequential([keras.Input((None, 2)), keras.layers.Dense(2)]), ValueError,
     "before any recurrent"),
    (lambda: keras.Sequential([keras.Input((None, 2)), keras.layers.Conv1D(2, 1),
                               keras.layers.LSTM(3)]), TypeError, "Conv1D"),
    (lambda: built(keras.layers.LSTM(3, dtype="mixed_float16")), ValueError,
     "mixed precision"),
    (lambda: np.zeros(3), TypeError, "expected a keras"),
])
def test_from_keras_unsupported(make, exc, match):
    with pytest.raises(exc, match=match):
        sr.from_keras(make())


def test_dropout_allowed_on_request():
    model = keras.Sequential([keras.Input((None, 2)), keras.layers.LSTM(3, dropout=0.3,
                                                                       return_sequences=True),
                              keras.layers.Dropout(0.5), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="allow_dropout"):
        sr.from_keras(model)
    net = sr.from_keras(model, allow_dropout=True)
    X = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    Yk = keras.ops.convert_to_numpy(model(X[None], training=False))[0]
    close(net.run(X, net.new_state()), Yk, 2e-6)


def test_from_keras_into_existing_net_is_all_or_nothing():
    model = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.LSTM(4, return_sequences=True),
                              keras.layers.LSTM(4, return_sequences=True),
                              keras.layers.Dense(2)])
    randomize(model, 0)
    net = sr.LSTM(3, 4, num_layers=2, output_size=2, seed=1)
    before = snapshot(net)
    for bad, match in [(sr.LSTM(3, 4, num_layers=2, seed=0), "output_size"),
                       (sr.GRU(3, 4, num_layers=2, output_size=2, seed=0), "cell")]:
        with pytest.raises(ValueError, match=match):
            sr.from_keras(model, net=bad)
    with pytest.raises(ValueError, match="num_layers"):
        sr.from_keras(model.layers[:1], net=net)
    assert_unchanged(before, net)
    with pytest.raises(TypeError, match="differs from net.dtype"):
        sr.from_keras(model, dtype="float64", net=net)
    assert_unchanged(before, net)
    # a non-finite value in the last tensor read: nothing written
    b = model.layers[-1].bias
    b.assign(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="finite"):
        sr.from_keras(model, net=net)
    assert_unchanged(before, net)
    b.assign(np.array([0.5, -0.5], np.float32))
    assert sr.from_keras(model, net=net) is net
    assert np.array_equal(net.head.bias, [0.5, -0.5])
    assert not np.array_equal(net.parameters(), before[0])


# ---------------------------------------------------------------- Bidirectional wrappers
def bi_layer(kind, units, dtype="float32", merge_mode="concat", **kw):
    return keras.layers.Bidirectional(rec_layer(kind, units, dtype, **kw), merge_mode=merge_mode,
                                      dtype=dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bidirectional_from_keras_matches_keras(kind, L, dtype):
    D, H, T = 3, 4, 10
    head = L == 2
    layers = [bi_layer(kind, H, dtype) for _ in range(L)]
    if head:
        layers.append(keras.layers.Dense(2, dtype=dtype))
    model = keras.Sequential([keras.Input((None, D), dtype=dtype)] + layers)
    randomize(model, seed=20 + L)
    X = np.random.default_rng(L).standard_normal((T, D)).astype(dtype)
    Yk = keras.ops.convert_to_numpy(model(X[None]))[0]
    net = sr.from_keras(model)
    assert net.bidirectional and net.cell == CELL[kind] and net.num_layers == L
    assert net.dtype == np.dtype(dtype) and net.output_size == (2 if head else None)
    Y = net.run(X)
    assert Y.shape == Yk.shape == (T, 2 if head else 2 * H)
    # Keras' float64 SimpleRNN and Dense on the torch backend are themselves ~5e-8 off the
    # float64 equations (its LSTM/GRU ~1e-16): the exact float64 check is the one below
    close(Y, Yk, 2e-6 if dtype == "float32" else 1e-7, "vs Keras")
    # in float64 against Keras' equations in NumPy: the backward layer runs on the reversed
    # sequence and its output is flipped back into time order
    net64 = sr.from_keras(model, dtype="float64")
    X64 = X.astype(np.float64)
    close(net64.run(X64), keras_equations(layers, X64), 1e-12, "vs Keras equations in NumPy")


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave", None])
def test_bidirectional_other_merge_modes_raise(merge_mode):
    layer = bi_layer("lstm", 3, merge_mode=merge_mode)
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=f"merge_mode={merge_mode!r} is not supported"):
        sr.from_keras(layer)
    model = keras.Sequential([keras.Input((None, 2)), bi_layer("gru", 3, merge_mode=merge_mode)])
    with pytest.raises(ValueError, match="merge_mode"):
        sr.from_keras(model)


def test_bidirectional_refusals_and_loading_into_a_net():
    with pytest.raises(ValueError, match="return_sequences=False"):
        sr.from_keras(keras.Sequential([keras.Input((None, 2)),
                                        bi_layer("lstm", 3, return_sequences=False)]))
    with pytest.raises(ValueError, match="mixed"):
        sr.from_keras(keras.Sequential([keras.Input((None, 2)), bi_layer("lstm", 3),
                                        rec_layer("lstm", 3)]))
    with pytest.raises(ValueError, match="mixed"):
        sr.from_keras(keras.Sequential([keras.Input((None, 2)), rec_layer("gru", 3),
                                        bi_layer("gru", 3)]))
    with pytest.raises(ValueError, match="different kinds"):
        sr.from_keras(keras.Sequential([keras.Input((None, 2)), bi_layer("lstm", 3),
                                        bi_layer("gru", 3)]))
    with pytest.raises(ValueError, match="not built"):
        sr.from_keras(bi_layer("lstm", 3))
    # a backward layer that is a GRU under an LSTM forward layer
    odd = keras.layers.Bidirectional(
        keras.layers.LSTM(3, return_sequences=True),
        backward_layer=keras.layers.GRU(3, return_sequences=True, go_backwards=True))
    odd.build((None, None, 2))
    with pytest.raises(ValueError, match="different kinds"):
        sr.from_keras(odd)
    model = keras.Sequential([keras.Input((None, 3)), bi_layer("lstm", 4), bi_layer("lstm", 4),
                              keras.layers.Dense(2)])
    randomize(model, 5)
    uni = sr.LSTM(3, 4, num_layers=2, output_size=2, seed=0)
    before = snapshot(uni)
    with pytest.raises(ValueError, match="bidirectional"):
        sr.from_keras(model, net=uni)
    assert_unchanged(before, uni)
    net = sr.LSTM(3, 4, num_layers=2, output_size=2, bidirectional=True, seed=0)
    before = snapshot(net)
    b = model.layers[1].backward_layer.cell.bias
    good = keras.ops.convert_to_numpy(b).copy()
    bad = good.copy()
    bad[-1] = np.inf
    b.assign(bad)
    with pytest.raises(ValueError, match="finite"):
        sr.from_keras(model, net=net)
    assert_unchanged(before, net)
    b.assign(good)
    assert sr.from_keras(model, net=net) is net
    X = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    close(net.run(X), keras.ops.convert_to_numpy(model(X[None]))[0], 2e-6)
