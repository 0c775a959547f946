"""reference.hidden_state_gradients against central finite differences, and the
gradient-flow example end to end (short mode)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from streamrnn import reference as ref
from streamrnn.reference.cells import cell_step

from conftest import require_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _last_loss(net, X, h0, c0, target, loss, bump):
    """The last step's loss when ``bump = (t, k, j, eps)`` is added to h of layer k as it
    leaves step t (before the layer above and the next step read it)."""
    t_b, k_b, j_b, eps = bump
    h = h0.copy()
    c = None if c0 is None else c0.copy()
    for t in range(X.shape[0]):
        inp = X[t]
        for k in range(net.num_layers):
            rec = cell_step(net.cell, net.p, f"_l{k}", inp, h[k], None if c is None else c[k])
            h_new, c_new = rec.h, rec.c
            if (t, k) == (t_b, k_b):
                h_new = h_new.copy()
                h_new[j_b] += eps
            h[k] = h_new
            if c is not None:
                c[k] = c_new
            inp = h_new
    y = net.p["head.weight"] @ inp + net.p["head.bias"]
    return ref.step_loss(loss, y, target)


@pytest.mark.parametrize("cell", ref.CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_hidden_state_gradients_match_finite_differences(cell, layers, loss):
    D, H, O, T = 3, 4, 3, 6
    rng = np.random.default_rng(ref.CELLS.index(cell) * 10 + layers + (loss == "mse") * 100)
    net = ref.Net(cell, D, H, layers, O,
                  params=ref.random_params(cell, D, H, layers, O, seed=1, scale=0.7))
    X = rng.normal(size=(T, D))
    h0 = rng.normal(size=(layers, H)) * 0.3
    c0 = rng.normal(size=(layers, H)) * 0.3 if cell.startswith("lstm") else None
    target = 2 if loss == "cross_entropy" else rng.normal(size=O)
    dh = ref.hidden_state_gradients(net, h0, c0, X, target, loss=loss)
    assert dh.shape == (T, layers, H)
    eps = 1e-6
    num = np.empty_like(dh)
    for t in range(T):
        for k in range(layers):
            for j in range(H):
                num[t, k, j] = (_last_loss(net, X, h0, c0, target, loss, (t, k, j, eps))
                                - _last_loss(net, X, h0, c0, target, loss, (t, k, j, -eps))
                                ) / (2 * eps)
    np.testing.assert_allclose(dh, num, rtol=1e-6, atol=1e-9)
    assert np.abs(dh[0]).max() > 1e-6          # the curve is not trivially zero


def test_hidden_state_gradients_rejects_bad_input():
    net = ref.Net("gru", 2, 3, 1, 1, params=ref.random_params("gru", 2, 3, 1, 1, seed=0))
    h0, c0 = net.zero_state()
    with pytest.raises(ValueError, match="target"):
        ref.hidden_state_gradients(net, h0, c0, np.ones((4, 2)), None)
    with pytest.raises(ValueError, match="X must have shape"):
        ref.hidden_state_gradients(net, h0, c0, np.ones((4, 3)), [0.0])
    with pytest.raises(ValueError, match="loss"):
        ref.hidden_state_gradients(net, h0, c0, np.ones((4, 2)), [0.0], loss="l1")


def test_gradient_flow_example_runs(tmp_path):
    require_file(os.path.join(ROOT, "examples", "gradient_flow.py"),
                 "examples/gradient_flow.py")   # skips only in the installed-wheel run
    env = dict(os.environ, STREAMRNN_EXAMPLE_QUICK="1", MPLBACKEND="Agg")
    out = tmp_path / "flow.png"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "gradient_flow.py"),
                        "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    # the story the example tells, checked on its printed figures (not on its labels alone)
    num = r"([-+0-9.e]+|inf|nan)"
    rows = {(m[0], m[1]): ([float(v) for v in m[2:6]], m[6]) for m in re.findall(
        rf"^(RNN tanh|RNN relu|LSTM|GRU)\s+(PyTorch|radius 3|forget bias \+3)\s+{num}\s+"
        rf"{num}\s+{num}\s+{num}\s+(\w+)\s*$", text, re.M)}
    assert len(rows) == 9, text
    for key, (ratios, said) in rows.items():
        r25 = ratios[2]         # the ratio at distance 25, which the verdict is about
        expect = ("explodes" if not np.isfinite(r25) or r25 > 10 else
                  "vanishes" if r25 < 1e-3 else "carries")
        assert said == expect, (key, ratios, said)
        assert ratios[0] > 0, key
    assert rows[("RNN tanh", "PyTorch")][1] == "vanishes"
    assert rows[("RNN tanh", "radius 3")][1] == "explodes"
    assert rows[("RNN relu", "radius 3")][1] == "explodes"
    # the remedy: a forget-gate bias of +3 carries the LSTM's gradient much further back
    assert rows[("LSTM", "forget bias +3")][0][2] > 100 * rows[("LSTM", "PyTorch")][0][2]
    part2 = {m[0]: (float(m[1]), float(m[2]), float(m[3])) for m in re.findall(
        rf"^(no clipping|with clip_norm=1)\s+pre-clip grad norm median {num}, .*"
        rf"MSE over the last fifth {num}; max \|head weight\| {num}$", text, re.M)}
    assert set(part2) == {"no clipping", "with clip_norm=1"}, text
    (_, mse_free, w_free), (_, mse_clip, w_clip) = (part2["no clipping"],
                                                  part2["with clip_norm=1"])
    # without clipping the large-radius RNN blows up; clipping keeps it learning
    assert mse_clip < 1.0 < mse_free and w_clip < 1.0 < w_free, part2
