"""The cell variants PyTorch does not have (issue 17): GRU with the reset gate before the
recurrent product (``sr.GRU(reset_after=False)``, cell ``gru_reset_before``; ONNX
``linear_before_reset=0``, Keras ``reset_after=False``) and the LSTM with peepholes
(``sr.LSTM(peepholes=True)``, cell ``lstm_peephole``; ONNX's ``P``).

The C core against the NumPy reference, the reference against finite differences and the
training paths run in the suites parametrised over ``conftest.CELLS``, which holds the
variants. Here: the public API and its errors, copies and files, the refusals of the PyTorch
interop, and exactness against the frameworks that define the variant (ONNX's reference
evaluator on hand-built models, onnxruntime, Keras 3).
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import struct

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import io as srio

from conftest import assert_unchanged, make_net, snapshot

RB = "gru_reset_before"


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def gru_reset_before_numpy(W, R, B, X, h0):
    """ONNX's GRU equations, linear_before_reset=0, one direction, written from the operator
    spec in ONNX's layout (gates z, r, h; W (3H, D), R (3H, H), B (6H,) = [Wb | Rb]):
    z = sig(x Wz^T + h Rz^T + Wbz + Rbz), r = ..., ĥ = tanh(x Wh^T + (r*h) Rh^T + Rbh + Wbh),
    h' = (1 - z) ĥ + z h."""
    H = R.shape[1]
    Wz, Wr, Wh = W[:H], W[H:2 * H], W[2 * H:]
    Rz, Rr, Rh = R[:H], R[H:2 * H], R[2 * H:]
    wb, rb = B[:3 * H], B[3 * H:]
    h, out = h0.copy(), []
    for x in X:
        z = sig(Wz @ x + Rz @ h + wb[:H] + rb[:H])
        r = sig(Wr @ x + Rr @ h + wb[H:2 * H] + rb[H:2 * H])
        hh = np.tanh(Wh @ x + Rh @ (r * h) + rb[2 * H:] + wb[2 * H:])
        h = (1 - z) * hh + z * h
        out.append(h)
    return np.array(out)


# ------------------------------------------------------------------ API and errors
def test_reset_after_selects_the_cell():
    assert sr.GRU(2, 3).cell == "gru" and sr.GRU(2, 3).reset_after is True
    net = sr.GRU(2, 3, reset_after=False)
    assert net.cell == RB and net.reset_after is False
    assert repr(net) == ("GRU(input_size=2, hidden_size=3, num_layers=1, output_size=None, "
                         "dtype='float32', reset_after=False)")
    assert sr.GRU(2, 3, reset_after=np.bool_(False)).cell == RB
    # the same parameters and shapes as PyTorch's GRU
    assert [v.shape for v in (net.layers[0].weight_ih, net.layers[0].weight_hh,
                              net.layers[0].bias_ih, net.layers[0].bias_hh)] == [
        (9, 2), (9, 3), (9,), (9,)]


@pytest.mark.parametrize("bad", [0, 1, "False", None, 0.0])
def test_reset_after_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=r"reset_after must be True or False, got"):
        sr.GRU(2, 3, reset_after=bad)


def test_reset_after_is_read_only():
    net = sr.GRU(2, 3, reset_after=False, seed=0)
    before = snapshot(net)
    with pytest.raises(AttributeError, match="reset_after is read-only"):
        net.reset_after = True
    assert net.cell == RB
    assert_unchanged(before, net)


def test_the_variant_computes_another_function():
    """Same weights, the two GRUs differ (so every equality test elsewhere can fail)."""
    a = make_net("gru", 3, 4, 1, dtype="float64", seed=3)
    b = make_net(RB, 3, 4, 1, dtype="float64", seed=3)
    assert a.parameters().tobytes() == b.parameters().tobytes()
    X = np.random.default_rng(0).standard_normal((5, 3))
    assert np.abs(a.run(X) - b.run(X)).max() > 1e-3


def test_a_gru_state_does_not_fit_the_variant():
    net = sr.GRU(2, 3, reset_after=False, dtype="float64")
    s = sr.GRU(2, 3, dtype="float64").new_state()
    with pytest.raises(ValueError, match="state"):
        net.step(np.zeros(2), s)


# ------------------------------------------------------------------ copies and files
@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_copies_keep_the_variant(how):
    net = sr.GRU(3, 4, num_layers=2, output_size=1, dtype="float64", seed=1, reset_after=False)
    dup = {"pickle": lambda n: pickle.loads(pickle.dumps(n)), "copy": copy.copy,
           "deepcopy": copy.deepcopy}[how](net)
    assert dup.cell == RB and dup.reset_after is False
    assert dup.parameters().tobytes() == net.parameters().tobytes()
    X = np.random.default_rng(2).standard_normal((6, 3))
    assert np.array_equal(dup.run(X), net.run(X))


def _version(path):
    raw = open(path, "rb").read()
    header = json.loads(raw[56:56 + struct.unpack_from("<Q", raw, 16)[0]])
    return struct.unpack_from("<I", raw, 8)[0], header


def test_files_of_the_variant_are_version_2_and_others_stay_version_1(tmp_path):
    sr.save(sr.GRU(2, 3, seed=0), tmp_path / "g")
    assert _version(tmp_path / "g")[0] == 1           # older streamrnn still read these
    net = sr.GRU(2, 3, seed=0, reset_after=False)
    sr.save(net, tmp_path / "v")
    version, header = _version(tmp_path / "v")
    assert version == 2 and header["version"] == 2
    assert header["meta"]["reset_after"] is False
    for obj in (net.new_state(), net.new_states(3), sr.OnlineTrainer(sr.GRU(
            2, 3, output_size=1, reset_after=False)), sr.SequenceTrainer(net)):
        sr.save(obj, tmp_path / "o")
        assert _version(tmp_path / "o")[0] == 2, type(obj).__name__


def _rewrite_header(path, edit, version=None):
    """Change the JSON header (re-signed) and optionally the prefix version."""
    raw = bytearray(open(path, "rb").read())
    magic, v, res, hlen, _ = srio._PREFIX.unpack_from(raw)
    header = json.loads(bytes(raw[56:56 + hlen]))
    edit(header)
    v = header["version"] if version is None else version
    hb = json.dumps(header, separators=(",", ":")).encode()
    import hashlib
    head = srio._PREFIX.pack(magic, v, res, len(hb), hashlib.sha256(hb).digest()) + hb
    data_start = srio._align(56 + hlen)
    out = head + b"\0" * (srio._align(len(head)) - len(head)) + bytes(raw[data_start:])
    open(path, "wb").write(out)


def test_a_version_1_file_cannot_hold_a_variant(tmp_path):
    p = tmp_path / "v"
    sr.save(sr.GRU(2, 3, seed=0, reset_after=False), p)

    def to_v1(h):
        h["version"] = 1
    _rewrite_header(p, to_v1)
    with pytest.raises(sr.FileFormatError, match="reset_after=False in a version-1 file"):
        sr.load(p)
    s = tmp_path / "s"
    sr.save(sr.GRU(2, 3, reset_after=False).new_state(), s)
    _rewrite_header(s, to_v1)
    with pytest.raises(sr.FileFormatError, match="gru_reset_before state in a version-1"):
        sr.load(s)


@pytest.mark.parametrize("bad", ["no", 0, None])
def test_a_bad_reset_after_flag_is_refused(tmp_path, bad):
    p = tmp_path / "v"
    sr.save(sr.GRU(2, 3, seed=0, reset_after=False), p)

    def edit(h):
        h["meta"]["reset_after"] = bad
    _rewrite_header(p, edit)
    with pytest.raises(sr.FileFormatError, match="invalid network reset_after"):
        sr.load(p)


def test_reset_after_on_another_class_is_refused(tmp_path):
    p = tmp_path / "l"
    sr.save(sr.LSTM(2, 3, seed=0), p)

    def edit(h):
        h["meta"]["reset_after"] = False
        h["version"] = 2
    _rewrite_header(p, edit)
    with pytest.raises(sr.FileFormatError, match="invalid network reset_after"):
        sr.load(p)


def test_prefix_and_header_versions_must_agree(tmp_path):
    p = tmp_path / "g"
    sr.save(sr.GRU(2, 3, seed=0), p)
    _rewrite_header(p, lambda h: None, version=2)
    with pytest.raises(sr.FileFormatError, match="header says version 1, the file prefix 2"):
        sr.load(p)


def test_old_version_1_files_keep_loading():
    """The fixture written by the released code (a Forecaster, PyTorch cells) still loads."""
    path = os.path.join(os.path.dirname(__file__), "data", "v1_forecaster.srnn")
    if not os.path.exists(path):
        pytest.skip("fixture not next to the tests")
    assert _version(path)[0] == 1
    assert isinstance(sr.load(path), sr.Forecaster)


def test_trainer_of_the_variant_resumes_bit_for_bit(tmp_path):
    net = sr.GRU(2, 5, num_layers=2, output_size=1, dtype="float64", seed=0,
                 reset_after=False)
    tr = sr.OnlineTrainer(net, optimizer=sr.Adam(1e-2), k1=2, k2=6)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 2)), rng.standard_normal((40, 1))
    tr.learn_many(X[:17], Y[:17])
    sr.save(tr, tmp_path / "t")
    tr2 = sr.load(tmp_path / "t", sr.OnlineTrainer)
    assert tr2.net.cell == RB
    assert np.array_equal(tr.learn_many(X[17:], Y[17:]), tr2.learn_many(X[17:], Y[17:]))
    assert tr.net.parameters().tobytes() == tr2.net.parameters().tobytes()
    assert tr.updates > 0


# ------------------------------------------------------------------ PyTorch: refused
def test_state_dict_and_to_torch_refuse_the_variant():
    net = sr.GRU(2, 3, output_size=1, seed=0, reset_after=False)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"state_dict: .*gru_reset_before.* no PyTorch"):
        net.state_dict()
    with pytest.raises(ValueError, match=r"to_torch: .*gru_reset_before.* no PyTorch"):
        sr.to_torch(net)      # refused before torch is even imported
    with pytest.raises(ValueError, match="no PyTorch"):
        net.to_torch()
    assert_unchanged(before, net)


def test_load_state_dict_still_fills_the_variant():
    """Loading arrays under PyTorch's names works (it is how the importers build it)."""
    src = sr.GRU(2, 3, output_size=1, dtype="float64", seed=4)
    dst = sr.GRU(2, 3, output_size=1, dtype="float64", seed=5, reset_after=False)
    dst.load_state_dict(src.state_dict())
    assert dst.parameters().tobytes() == src.parameters().tobytes()


# ------------------------------------------------------------------ ONNX
def _onnx_gru_model(W, R, B, dtype, attrs, bidirectional=False, head=None):
    """A hand-built ONNX model (not by streamrnn): one GRU operator with ``attrs`` (ONNX's
    default linear_before_reset=0 when absent), X (T, 1, D) -> Y squeezed, optional head."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nd, H, D = W.shape[0], R.shape[2], W.shape[2]
    inits = [numpy_helper.from_array(a.astype(dtype), n) for n, a in
             (("W", W), ("R", R), ("B", B))]
    nodes = [helper.make_node("GRU", ["X", "W", "R", "B"], ["Y4", "hN"], hidden_size=H,
                              **attrs)]
    if bidirectional:
        inits.append(numpy_helper.from_array(np.array([0, 0, 2 * H], np.int64), "shape"))
        nodes += [helper.make_node("Transpose", ["Y4"], ["Y4t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["Y4t", "shape"], ["Ys"])]
    else:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
        nodes.append(helper.make_node("Squeeze", ["Y4", "axes"], ["Ys"]))
    out = "Ys"
    if head is not None:
        Wh, bh = head
        inits += [numpy_helper.from_array(Wh.T.astype(dtype).copy(), "HW"),
                  numpy_helper.from_array(bh.astype(dtype), "Hb")]
        nodes += [helper.make_node("MatMul", ["Ys", "HW"], ["Hm"]),
                  helper.make_node("Add", ["Hm", "Hb"], ["Yh"])]
        out = "Yh"
    width = head[0].shape[0] if head is not None else nd * H
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", elem,
                                                                       ["T", 1, D])],
                              [helper.make_tensor_value_info(out, elem, ["T", 1, width])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model, out


def _weights(nd, D, H, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.7, 0.7, (nd, 3 * H, D)), rng.uniform(-0.7, 0.7, (nd, 3 * H, H)),
            rng.uniform(-0.7, 0.7, (nd, 6 * H)))


@pytest.mark.parametrize("attrs", [{}, {"linear_before_reset": 0}])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_onnx_default_gru_imports_exactly(attrs, dtype):
    """ONNX's default GRU (linear_before_reset absent or 0), built by hand, against onnx's
    ReferenceEvaluator (float64 <= 1e-12, float32 <= 1e-5 relative) and against the
    operator's equations written here in NumPy."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    D, H, T = 3, 4, 9
    W, R, B = _weights(1, D, H, seed=1)
    head = (np.random.default_rng(2).uniform(-1, 1, (2, H)),
            np.random.default_rng(3).uniform(-1, 1, 2))
    model, out = _onnx_gru_model(W, R, B, dtype, attrs, head=head)
    net = sr.from_onnx(model)
    assert net.cell == RB and net.reset_after is False and net.dtype == dtype
    X = np.random.default_rng(4).standard_normal((T, D)).astype(dtype)
    Yo = ReferenceEvaluator(model).run(None, {"X": X[:, None, :]})[0][:, 0]
    Y = net.run(X, net.new_state())
    tol = 1e-12 if dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.abs(Yo).max()))
    np.testing.assert_allclose(Y, Yo, rtol=tol, atol=tol * scale)
    # the operator's equations (float64), then the head
    Ye = gru_reset_before_numpy(W[0].astype(dtype).astype(np.float64),
                                R[0].astype(dtype).astype(np.float64),
                                B[0].astype(dtype).astype(np.float64),
                                X.astype(np.float64), np.zeros(H))
    Ye = Ye @ head[0].astype(dtype).astype(np.float64).T + head[1].astype(dtype)
    np.testing.assert_allclose(Y, Ye, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_onnx_default_bidirectional_gru_imports_exactly(dtype):
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    D, H, T = 2, 3, 7
    W, R, B = _weights(2, D, H, seed=5)
    model, _ = _onnx_gru_model(W, R, B, dtype, {"direction": "bidirectional"},
                               bidirectional=True)
    net = sr.from_onnx(model)
    assert net.cell == RB and net.bidirectional
    X = np.random.default_rng(6).standard_normal((T, D)).astype(dtype)
    Yo = ReferenceEvaluator(model).run(None, {"X": X[:, None, :]})[0][:, 0]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(net.run(X), Yo, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_to_onnx_writes_linear_before_reset_0(dtype, bidirectional):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    net = sr.GRU(3, 4, num_layers=2, output_size=2, dtype=dtype, seed=7, reset_after=False,
                 bidirectional=bidirectional)
    model = sr.to_onnx(net)
    grus = [n for n in model.graph.node if n.op_type == "GRU"]
    assert len(grus) == 2
    for n in grus:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["linear_before_reset"] == 0
    X = np.random.default_rng(8).standard_normal((6, 3)).astype(dtype)
    Yo = ReferenceEvaluator(model).run(None, {"X": X[:, None, :]})[0][:, 0]
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(net.run(X), Yo, rtol=tol, atol=tol)
    back = sr.from_onnx(model)
    assert back.cell == RB and back.parameters().tobytes() == net.parameters().tobytes()


def test_onnxruntime_runs_the_export_float32():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net = sr.GRU(3, 5, num_layers=2, output_size=1, seed=2, reset_after=False)
    sess = ort.InferenceSession(sr.to_onnx(net).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    X = np.random.default_rng(1).standard_normal((20, 3)).astype(np.float32)
    Yo = sess.run(None, {"X": X[:, None, :]})[0][:, 0]
    np.testing.assert_allclose(net.run(X), Yo, rtol=1e-5, atol=1e-5)


def test_onnx_gru_into_a_net_of_the_other_kind_is_refused():
    pytest.importorskip("onnx")
    W, R, B = _weights(1, 2, 3, seed=9)
    model, _ = _onnx_gru_model(W, R, B, np.float32, {})
    into = sr.GRU(2, 3, seed=0)            # PyTorch's GRU: not the model's
    before = snapshot(into)
    with pytest.raises(ValueError, match="gru_reset_before"):
        sr.from_onnx(model, net=into)
    assert_unchanged(before, into)
    into = sr.GRU(2, 3, seed=0, reset_after=False)
    sr.from_onnx(model, net=into)
    assert into.parameters().tobytes() == sr.from_onnx(model).parameters().tobytes()


# ------------------------------------------------------------------ Keras 3
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    return pytest.importorskip("keras")


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("use_bias", [True, False])
def test_keras_reset_after_false_matches_keras_float32(use_bias):
    keras = _keras()
    D, H, T = 3, 5, 12
    model = keras.Sequential([keras.Input((None, D)),
                              keras.layers.GRU(H, reset_after=False, return_sequences=True,
                                               use_bias=use_bias),
                              keras.layers.GRU(H, reset_after=False, return_sequences=True,
                                               use_bias=use_bias),
                              keras.layers.Dense(2)])
    rng = np.random.default_rng(3)
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, tuple(w.shape)).astype(w.dtype))
    X = rng.standard_normal((T, D)).astype(np.float32)
    Yk = keras.ops.convert_to_numpy(model(X[None]))[0]
    net = sr.from_keras(model)
    assert net.cell == RB and net.dtype == np.float32 and net.num_layers == 2
    np.testing.assert_allclose(net.run(X), Yk, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_float64_reset_after_false():
    """Keras' own float64 GRU(reset_after=False) runs keras.ops.matmul, which Keras 3
    computes in float32 (its type promotion turns 64-bit into 32-bit), so it is only
    float32-exact; the float64 comparison is then with Keras' equations (test_interop_keras,
    keras_equations, 1e-12). Should Keras compute float64 products in float64, this test
    compares with Keras itself at 1e-12."""
    keras = _keras()
    D, H, T = 4, 6, 9
    layer = keras.layers.GRU(H, reset_after=False, return_sequences=True, dtype="float64")
    layer.build((None, None, D))
    rng = np.random.default_rng(7)
    for w in layer.weights:
        w.assign(rng.uniform(-0.6, 0.6, tuple(w.shape)))
    X = rng.standard_normal((1, T, D))
    Yk = keras.ops.convert_to_numpy(layer(X))[0]
    net = sr.from_keras(layer)
    assert net.cell == RB and net.dtype == np.float64
    Y = net.run(X[0], net.new_state())
    a = rng.standard_normal((3, 4))
    exact = keras.ops.convert_to_numpy(keras.ops.matmul(a, a.T)).dtype == np.float64
    np.testing.assert_allclose(Y, Yk, rtol=1e-12 if exact else 1e-5,
                               atol=1e-12 if exact else 1e-5)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_reset_after_false_bias_shape_is_checked():
    keras = _keras()
    layer = keras.layers.GRU(3, reset_after=False)
    layer.build((None, None, 2))
    assert tuple(layer.cell.bias.shape) == (9,)
    net = sr.from_keras(layer)
    # one Keras bias: PyTorch's b_ih (z, r, h reordered to r, z, n), b_hh = 0
    assert not net.layers[0].bias_hh.any()


# ================================================================== LSTM peepholes
PH = "lstm_peephole"


def lstm_peephole_numpy(W, R, B, P, X, h0, c0):
    """ONNX's LSTM equations with peepholes, one direction, written from the operator spec in
    ONNX's layout (gates i, o, f, c; W (4H, D), R (4H, H), B (8H,), P (3H,) = [Pi | Po | Pf]):
    i = sig(. + Pi*C_{t-1}), f = sig(. + Pf*C_{t-1}), c = tanh(.), C = f*C_{t-1} + i*c,
    o = sig(. + Po*C), h = o*tanh(C)."""
    H = R.shape[1]
    Pi, Po, Pf = P[:H], P[H:2 * H], P[2 * H:]
    h, C, out = h0.copy(), c0.copy(), []
    for x in X:
        a = W @ x + R @ h + B[:4 * H] + B[4 * H:]
        ai, ao, af, ac = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        i = sig(ai + Pi * C)
        f = sig(af + Pf * C)
        C = f * C + i * np.tanh(ac)
        o = sig(ao + Po * C)
        h = o * np.tanh(C)
        out.append(h)
    return np.array(out)


def test_peepholes_select_the_cell():
    net = sr.LSTM(2, 3, num_layers=2, output_size=1, seed=0, peepholes=True)
    assert net.cell == PH and net.peepholes is True and sr.LSTM(2, 3).peepholes is False
    assert repr(net).endswith("peepholes=True)")
    for layer in net.layers:
        assert layer.weight_peephole.shape == (9,)
        assert np.shares_memory(layer.weight_peephole, net.parameters())
    assert sr.LSTM(2, 3).layers[0].weight_peephole is None
    assert sr.GRU(2, 3).layers[0].weight_peephole is None
    # one more parameter block per layer: 3H
    assert net.parameters().size == sr.LSTM(2, 3, num_layers=2, output_size=1).parameters(
    ).size + 2 * 9


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_peepholes_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=r"peepholes must be True or False, got"):
        sr.LSTM(2, 3, peepholes=bad)


def test_peepholes_matter():
    """Zero peepholes are the plain LSTM; non-zero ones change the output."""
    a = sr.LSTM(3, 4, num_layers=2, dtype="float64", seed=3)
    b = sr.LSTM(3, 4, num_layers=2, dtype="float64", seed=3, peepholes=True)
    for la, lb in zip(a.layers, b.layers):
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lb, n)[...] = getattr(la, n)
        lb.weight_peephole[...] = 0
    X = np.random.default_rng(0).standard_normal((6, 3))
    np.testing.assert_array_equal(b.run(X), a.run(X))
    b.layers[1].weight_peephole[...] = 0.5
    assert np.abs(b.run(X) - a.run(X)).max() > 1e-3


def test_peephole_network_files_and_copies(tmp_path):
    net = sr.LSTM(2, 3, num_layers=2, output_size=1, dtype="float64", seed=0, peepholes=True)
    sr.save(net, tmp_path / "n")
    version, header = _version(tmp_path / "n")
    assert version == 2 and header["meta"]["peepholes"] is True
    back = sr.load(tmp_path / "n")
    assert back.cell == PH and back.parameters().tobytes() == net.parameters().tobytes()
    assert pickle.loads(pickle.dumps(net)).cell == PH
    sr.save(sr.LSTM(2, 3, seed=0), tmp_path / "plain")
    assert _version(tmp_path / "plain")[0] == 1
    s = net.new_state()
    net.run(np.ones((3, 2)), s)
    sr.save(s, tmp_path / "s")
    s2 = sr.load(tmp_path / "s")
    assert s2.cell == PH and np.array_equal(s2.c, s.c)

    def to_v1(h):
        h["version"] = 1
    _rewrite_header(tmp_path / "n", to_v1)
    with pytest.raises(sr.FileFormatError, match="peepholes=True in a version-1 file"):
        sr.load(tmp_path / "n")


def test_peephole_trainer_resumes_bit_for_bit(tmp_path):
    net = sr.LSTM(2, 4, output_size=1, dtype="float64", seed=1, peepholes=True)
    tr = sr.OnlineTrainer(net, optimizer=sr.SGD(0.05, momentum=0.9), k1=1, k2=5)
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((30, 2)), rng.standard_normal((30, 1))
    p0 = net.layers[0].weight_peephole.copy()
    tr.learn_many(X[:11], Y[:11])
    assert np.abs(net.layers[0].weight_peephole - p0).max() > 0   # the peepholes learn
    sr.save(tr, tmp_path / "t")
    tr2 = sr.load(tmp_path / "t")
    assert np.array_equal(tr.learn_many(X[11:], Y[11:]), tr2.learn_many(X[11:], Y[11:]))
    assert tr.net.parameters().tobytes() == tr2.net.parameters().tobytes()


def test_peepholes_refused_by_pytorch_paths():
    net = sr.LSTM(2, 3, seed=0, peepholes=True)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"state_dict: .*lstm_peephole.* no PyTorch"):
        net.state_dict()
    with pytest.raises(ValueError, match=r"to_torch: .*lstm_peephole.*no peepholes"):
        sr.to_torch(net)
    assert_unchanged(before, net)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_lstm_into_a_peephole_net_is_refused():
    keras = _keras()
    layer = keras.layers.LSTM(3, return_sequences=True)
    layer.build((None, None, 2))
    net = sr.LSTM(2, 3, peepholes=True)
    before = snapshot(net)
    with pytest.raises(ValueError, match="lstm_peephole"):
        sr.from_keras(layer, net=net)
    assert_unchanged(before, net)


def _onnx_lstm_model(W, R, B, P, dtype, bidirectional=False):
    """A hand-built ONNX LSTM operator with peepholes P (input 7), X (T, 1, D) -> Y."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    nd, H, D = W.shape[0], R.shape[2], W.shape[2]
    inits = [numpy_helper.from_array(a.astype(dtype), n) for n, a in
             (("W", W), ("R", R), ("B", B), ("P", P))]
    attrs = {"direction": "bidirectional"} if bidirectional else {}
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y4"],
                              hidden_size=H, **attrs)]
    if bidirectional:
        inits.append(numpy_helper.from_array(np.array([0, 0, 2 * H], np.int64), "shape"))
        nodes += [helper.make_node("Transpose", ["Y4"], ["Y4t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["Y4t", "shape"], ["Y"])]
    else:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
        nodes.append(helper.make_node("Squeeze", ["Y4", "axes"], ["Y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", elem,
                                                                       ["T", 1, D])],
                              [helper.make_tensor_value_info("Y", elem, ["T", 1, nd * H])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _lstm_weights(nd, D, H, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.6, 0.6, (nd, 4 * H, D)), rng.uniform(-0.6, 0.6, (nd, 4 * H, H)),
            rng.uniform(-0.6, 0.6, (nd, 8 * H)), rng.uniform(-0.9, 0.9, (nd, 3 * H)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_onnx_lstm_with_peepholes_imports_exactly(dtype):
    """A hand-built ONNX LSTM with P against onnx's ReferenceEvaluator (float64 <= 1e-12,
    float32 <= 1e-5) and against the operator's equations written here."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    D, H, T = 3, 4, 10
    W, R, B, P = _lstm_weights(1, D, H, seed=11)
    model = _onnx_lstm_model(W, R, B, P, dtype)
    net = sr.from_onnx(model)
    assert net.cell == PH and net.peepholes and net.dtype == dtype
    X = np.random.default_rng(12).standard_normal((T, D)).astype(dtype)
    Yo = ReferenceEvaluator(model).run(None, {"X": X[:, None, :]})[0][:, 0]
    Y = net.run(X, net.new_state())
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(Y, Yo, rtol=tol, atol=tol)
    f64 = [a[0].astype(dtype).astype(np.float64) for a in (W, R, B, P)]
    Ye = lstm_peephole_numpy(*f64, X.astype(np.float64), np.zeros(H), np.zeros(H))
    np.testing.assert_allclose(Y, Ye, rtol=tol, atol=tol)
    # the peepholes are there (zeroing them changes the result)
    zero = _onnx_lstm_model(W, R, B, 0 * P, dtype)
    assert np.abs(ReferenceEvaluator(zero).run(None, {"X": X[:, None, :]})[0][:, 0]
                  - Yo).max() > 1e-3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_onnx_bidirectional_lstm_with_peepholes(dtype):
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    D, H, T = 2, 3, 8
    W, R, B, P = _lstm_weights(2, D, H, seed=13)
    model = _onnx_lstm_model(W, R, B, P, dtype, bidirectional=True)
    net = sr.from_onnx(model)
    assert net.cell == PH and net.bidirectional
    X = np.random.default_rng(14).standard_normal((T, D)).astype(dtype)
    Yo = ReferenceEvaluator(model).run(None, {"X": X[:, None, :]})[0][:, 0]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(net.run(X), Yo, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_to_onnx_writes_p(dtype):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    net = sr.LSTM(3, 4, num_layers=2, output_size=2, dtype=dtype, seed=5, peepholes=True)
    for layer in net.layers:
        layer.weight_peephole[...] = np.random.default_rng(6).uniform(-1, 1, 12)
    model = sr.to_onnx(net, initial_state=True)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    lstms = [n for n in model.graph.node if n.op_type == "LSTM"]
    for k, n in enumerate(lstms):
        P = inits[n.input[7]]
        p = net.layers[k].weight_peephole
        assert P.shape == (1, 12)      # ONNX's order p_i, p_o, p_f
        assert np.array_equal(P[0], np.concatenate([p[:4], p[8:], p[4:8]]))
    X = np.random.default_rng(8).standard_normal((7, 3)).astype(dtype)
    s = net.new_state()
    s.h[...] = 0.3
    s.c[...] = -0.2
    feeds = {"X": X[:, None, :], "h0": s.h[:, None, :].copy(), "c0": s.c[:, None, :].copy()}
    Yo, hN, cN = ReferenceEvaluator(model).run(None, feeds)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(net.run(X, s), Yo[:, 0], rtol=tol, atol=tol)
    np.testing.assert_allclose(s.c, cN[:, 0], rtol=tol, atol=tol)
    back = sr.from_onnx(model)
    assert back.cell == PH and back.parameters().tobytes() == net.parameters().tobytes()
    assert onnx.checker.check_model(model, full_check=True) is None


def test_onnx_p_of_a_wrong_shape_is_refused():
    pytest.importorskip("onnx")
    W, R, B, P = _lstm_weights(1, 2, 3, seed=1)
    model = _onnx_lstm_model(W, R, B, P[:, :6], np.float64)
    with pytest.raises(ValueError, match=r"P must have shape \(1, 9\)"):
        sr.from_onnx(model)


# ================================================================== official ONNX cases
def _official(name):
    """An official ONNX backend node case (onnx.backend.test.case.node, material this project
    did not write) as a model whose weights W, R, B (and P) are initializers; inputs that
    change nothing here (sequence_lens equal to T, zero initial states) are dropped from the
    node, so that the case runs with the constructs streamrnn imports. Returns (model, X,
    expected first output, node)."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    from onnx.backend.test.case.node import collect_testcases
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # other operators' generators warn
        case = next(c for c in collect_testcases(None) if c.name == name)
    ins, outs = case.data_sets[0]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    node = model.graph.node[0]
    given = dict(zip([i.name for i in model.graph.input], ins))
    X = given[node.input[0]]
    T = X.shape[1] if any(a.name == "layout" and a.i == 1 for a in node.attribute) else X.shape[0]
    for pos, n in enumerate(node.input):
        if pos == 0 or not n:
            continue
        v = np.asarray(given[n])
        if pos == 4:
            assert (v == T).all()           # every sequence is the whole window
            node.input[4] = ""
        elif pos in (5, 6):
            assert not v.any()              # zero initial states
            node.input[pos] = ""
        else:
            model.graph.initializer.append(numpy_helper.from_array(v, n))
    for i in list(model.graph.input):
        if i.name != node.input[0]:
            model.graph.input.remove(i)
    return model, X, outs[0], node


@pytest.mark.parametrize("name, cell", [("test_gru_defaults", RB),
                                        ("test_gru_with_initial_bias", RB),
                                        ("test_gru_seq_length", RB),
                                        ("test_lstm_with_peepholes", PH)])
def test_official_onnx_cases_of_the_variants(name, cell):
    model, X, expected, node = _official(name)
    net = sr.from_onnx(model)
    assert net.cell == cell and net.dtype == X.dtype == np.float32
    Y = np.stack([net.run(X[:, b], net.new_state()) for b in range(X.shape[1])], axis=1)
    if node.output[0]:      # Y (T, 1, batch, H)
        got, want = Y, expected[:, 0]
    else:                   # Y_h only (1, batch, H)
        got, want = Y[-1], expected[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
