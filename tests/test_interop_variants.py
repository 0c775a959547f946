"""Constructs of real models that streamrnn supports through an explicit choice or refuses
with a message that says what to do (docs/guide/interop.md, "Constructs"): Keras
go_backwards and Dense activations, PyTorch proj_size, half-precision state dicts."""
from __future__ import annotations

import os

import numpy as np
import pytest

import streamrnn as sr

from conftest import assert_unchanged, snapshot  # noqa: E402


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("layer", ["LSTM", "GRU", "SimpleRNN"])
def test_keras_go_backwards_first_layer_with_time_reversed(layer):
    keras = _keras()
    L = getattr(keras.layers, layer)
    model = keras.Sequential([keras.Input((None, 2)),
                              L(3, return_sequences=True, go_backwards=True),
                              L(3, return_sequences=True), keras.layers.Dense(2)])
    X = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    want = keras.ops.convert_to_numpy(model(X[None]))[0]
    with pytest.raises(ValueError, match="go_backwards=True reads the window backwards.*"
                                         r"time_reversed=True.*net.run\(X\[::-1\]\)"):
        sr.from_keras(model)
    net = sr.from_keras(model, time_reversed=True)
    np.testing.assert_allclose(net.run(np.ascontiguousarray(X[::-1])), want, rtol=1e-5,
                               atol=1e-6)
    # in time order it is another function (the flag is needed)
    assert np.abs(net.run(X) - want).max() > 1e-3
    # go_backwards above the first layer: refused with or without the flag
    upper = keras.Sequential([keras.Input((None, 2)), L(3, return_sequences=True),
                              L(3, return_sequences=True, go_backwards=True)])
    for flag in (False, True):
        with pytest.raises(ValueError, match="go_backwards"):
            sr.from_keras(upper, time_reversed=flag)
    # the flag without a go_backwards layer
    plain = keras.Sequential([keras.Input((None, 2)), L(3, return_sequences=True)])
    with pytest.raises(ValueError, match="time_reversed=True is for a model whose first"):
        sr.from_keras(plain, time_reversed=True)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax", "tanh"])
def test_keras_dense_activation_refused_or_dropped_on_request(activation):
    keras = _keras()
    model = keras.Sequential([keras.Input((None, 2)),
                              keras.layers.GRU(4, return_sequences=True),
                              keras.layers.Dense(3, activation=activation)])
    with pytest.raises(ValueError, match=f"Dense activation '{activation}': a streamrnn head "
                                         f"is linear; pass ignore_head_activation=True"):
        sr.from_keras(model)
    net = sr.from_keras(model, ignore_head_activation=True)
    X = np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32)
    want = keras.ops.convert_to_numpy(model(X[None]))[0]
    z = net.run(X).astype(np.float64)
    act = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
           "softmax": lambda v: np.exp(v) / np.exp(v).sum(-1, keepdims=True)}[activation]
    np.testing.assert_allclose(act(z), want, rtol=1e-5, atol=1e-6)


def test_torch_proj_size_says_what_to_do():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="proj_size=2 .*no projected LSTM cell.*train the "
                                         "model without proj_size"):
        sr.from_torch(torch.nn.LSTM(3, 4, proj_size=2))


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_state_dict_of_half_precision_tensors(half, dtype):
    """The issue: a bfloat16 state dict raised torch's own TypeError (NumPy has no
    bfloat16). Values are read exactly (through float32)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = torch.nn.GRU(3, 4, num_layers=2).to(getattr(torch, half))
    net = sr.GRU(3, 4, num_layers=2, dtype=dtype)
    net.load_state_dict(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(net.state_dict()[k], v.float().numpy().astype(dtype))
    # a non-floating tensor is still refused by name, and changes nothing
    before = snapshot(net)
    bad = dict(m.state_dict())
    bad["weight_hh_l1"] = bad["weight_hh_l1"].to(torch.int32)
    with pytest.raises(TypeError, match=r"state_dict\['weight_hh_l1'\] must be a real "
                                        r"floating array, got dtype int32"):
        net.load_state_dict(bad)
    assert_unchanged(before, net)
