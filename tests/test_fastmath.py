"""Accuracy of the float32 activations (src_c/fastmath.h) against float64 NumPy.

The float core uses its own vectorisable exp/sigmoid/tanh; these tests read them out through
one-unit networks whose weights make a state equal to one activation of the input.
"""
import numpy as np
import pytest

import streamrnn as sr

XS = np.concatenate([np.linspace(-100, 100, 20001), np.linspace(-1, 1, 20001),
                     np.geomspace(1e-30, 1e-1, 300), -np.geomspace(1e-30, 1e-1, 300),
                     [0.0, 0.25, -0.25, np.nextafter(0.25, 0), 87.0, 88.0, 89.0, -87.0, -88.0,
                      -1e4, 1e4]]).astype(np.float32)
X64 = XS.astype(np.float64)


def _tanh_of(x: np.ndarray) -> np.ndarray:
    """h of RNN(1, 1) with W_ih = 1 and everything else 0: tanh(x), one stream per x."""
    net = sr.RNN(1, 1, dtype="float32")
    net.parameters()[...] = [1.0, 0.0, 0.0, 0.0]
    b = net.new_states(x.size)
    return net.step_many(x.reshape(-1, 1), b)[:, 0]


def _sigmoid_of(x: np.ndarray) -> np.ndarray:
    """c of LSTM(1, 1) from c = 0 with i = sigmoid(x), g = tanh(30) = 1 in float32: sigmoid(x)."""
    net = sr.LSTM(1, 1, dtype="float32")
    layer = net.layers[0]
    net.parameters()[...] = 0
    layer.weight_ih[0, 0] = 1.0          # input gate pre-activation = x
    layer.bias_ih[2] = 30.0              # g = tanh(30) == 1.0f
    b = net.new_states(x.size)
    net.step_many(x.reshape(-1, 1), b)
    return b.c[:, 0, 0]


def test_tanh_float32_accuracy():
    got = _tanh_of(XS).astype(np.float64)
    want = np.tanh(X64)
    assert np.all(np.isfinite(got))
    abs_err = np.abs(got - want)
    assert abs_err.max() < 3e-7
    rel = abs_err / np.maximum(np.abs(want), np.finfo(np.float32).tiny)
    assert rel.max() < 1e-6
    assert np.all(np.abs(got) <= 1.0)
    # odd symmetry is exact by construction
    np.testing.assert_array_equal(_tanh_of(-XS), -_tanh_of(XS))


def test_sigmoid_float32_accuracy():
    got = _sigmoid_of(XS).astype(np.float64)
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-X64))
    assert np.all(np.isfinite(got))
    assert np.abs(got - want).max() < 2e-7
    assert np.all((got >= 0) & (got <= 1))
    # the relative error matters for the backward's s*(1-s) on the tails
    mask = want > 1e-30
    assert (np.abs(got - want)[mask] / want[mask]).max() < 1e-6


@pytest.mark.parametrize("cls", [sr.LSTM, sr.GRU, sr.RNN])
def test_float32_close_to_float64_on_long_runs(cls):
    rng = np.random.default_rng(5)
    n32 = cls(3, 24, num_layers=2, output_size=2, seed=3)
    n64 = cls(3, 24, num_layers=2, output_size=2, dtype="float64", seed=3)
    n64.parameters()[...] = n32.parameters()
    X = rng.normal(scale=3.0, size=(500, 3))
    y32 = n32.run(X.astype(np.float32), n32.new_state())
    y64 = n64.run(X, n64.new_state())
    assert np.abs(y32 - y64).max() < 1e-5
