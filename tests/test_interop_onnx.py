"""sr.to_onnx / sr.from_onnx, checked with onnxruntime (float32), onnx's ReferenceEvaluator
(float64) and models exported by torch.onnx.export."""
from __future__ import annotations

import copy
import os
import threading
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import streamrnn as sr  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnx.reference.ops.op_rnn import RNN_14  # noqa: E402

from conftest import CELLS, TORCH_CELLS, assert_unchanged, make_net, snapshot  # noqa: E402


class RNN(RNN_14):
    """onnx's reference RNN knows only Tanh (and Affine); add Relu, nothing else changes."""

    def choose_act(self, name, alpha, beta):
        if name in ("Relu", "relu"):
            return lambda x: np.maximum(x, 0)
        return super().choose_act(name, alpha, beta)


def close(a, b, tol, what=""):
    b = np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tol, atol=tol * scale,
                               err_msg=what)


def feeds_and_expected(net, T, initial_state, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, net.input_size)).astype(net.dtype)
    s = net.new_state()
    feeds = {"X": X[:, None, :]}
    if initial_state:
        s.h[...] = rng.uniform(-0.5, 0.5, s.h.shape)
        feeds["h0"] = s.h[:, None, :].copy()
        if s.c is not None:
            s.c[...] = rng.uniform(-1, 1, s.c.shape)
            feeds["c0"] = s.c[:, None, :].copy()
    Y = net.run(X, s)
    expected = [Y, s.h.copy()] + ([s.c.copy()] if s.c is not None else [])
    return feeds, expected


def check_outputs(outs, expected, tol):
    assert len(outs) == len(expected)
    Y, h, *c = outs
    assert Y.shape[1] == 1 and h.shape[1] == 1
    close(Y[:, 0], expected[0], tol, "Y")
    close(h[:, 0], expected[1], tol, "h_n")
    if c:
        close(c[0][:, 0], expected[2], tol, "c_n")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("O", [None, 2])
@pytest.mark.parametrize("initial_state", [False, True])
def test_onnxruntime_float32(cell, L, O, initial_state):
    ort = pytest.importorskip("onnxruntime")
    net = make_net(cell, 3, 6, L, O, dtype="float32", seed=L)
    model = sr.to_onnx(net, initial_state=initial_state)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    op = {"lstm": "LSTM", "gru": "GRU", "gru_reset_before": "GRU",
          "lstm_peephole": "LSTM"}.get(cell, "RNN")
    assert ops.count(op) == L
    assert ("MatMul" in ops) == (O is not None)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds, expected = feeds_and_expected(net, 25, initial_state)
    check_outputs(sess.run(None, feeds), expected, 1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("O", [None, 3])
def test_reference_evaluator_float64(cell, O):
    net = make_net(cell, 4, 5, 2, O, dtype="float64", seed=11)
    model = sr.to_onnx(net, initial_state=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    feeds, expected = feeds_and_expected(net, 12, True, seed=3)
    outs = ReferenceEvaluator(model, new_ops=[RNN]).run(None, feeds)
    check_outputs(outs, expected, 1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("O", [None, 2])
def test_round_trip_exact(cell, dtype, O, tmp_path):
    net = make_net(cell, 3, 4, 2, O, dtype=dtype, seed=5)
    path = tmp_path / "m.onnx"
    model = sr.to_onnx(net, path)
    assert onnx.load(str(path)) == model
    for src in (model, str(path), path, model.SerializeToString()):
        back = sr.from_onnx(src)
        assert type(back) is type(net) and back.cell == net.cell
        assert back.dtype == net.dtype and back.output_size == net.output_size
        assert back.parameters().tobytes() == net.parameters().tobytes()
    other = "float32" if dtype == "float64" else "float64"
    conv = sr.from_onnx(model, dtype=other)
    assert np.array_equal(conv.parameters(), net.parameters().astype(other))


def test_opset_argument():
    net = sr.LSTM(2, 3, seed=0)
    assert sr.to_onnx(net, opset=14).opset_import[0].version == 14
    with pytest.raises(ValueError, match="opset"):
        sr.to_onnx(net, opset=13)
    with pytest.raises(TypeError, match="opset"):
        sr.to_onnx(net, opset="17")
    with pytest.raises(TypeError, match="net must be"):
        sr.to_onnx(object())


def torch_exported(torch, cell, L, head, batch_first=False, bidirectional=False,
                   dtype="float32"):
    """A torch rnn (+ Linear head) of 3 inputs and 5 hidden, exported by torch.onnx.export."""
    torch.manual_seed(40 + L if bidirectional else L)
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    kw = dict(num_layers=L, batch_first=batch_first, bidirectional=bidirectional)
    if cell == "lstm":
        rnn = torch.nn.LSTM(3, 5, **kw)
    elif cell == "gru":
        rnn = torch.nn.GRU(3, 5, **kw)
    else:
        rnn = torch.nn.RNN(3, 5, nonlinearity=cell[4:], **kw)
    lin = torch.nn.Linear(10 if bidirectional else 5, 2) if head else None

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.lin = rnn, lin

        def forward(self, x):
            y = self.rnn(x)[0]
            return self.lin(y) if self.lin is not None else y

    m = M().to(tdt).eval()
    x = torch.zeros((1, 7, 3) if batch_first else (7, 1, 3), dtype=tdt)
    import io
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), buf, dynamo=False, opset_version=17)
    return m, onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("cell, L, head, batch_first", [
    ("lstm", 2, True, False), ("gru", 2, True, True), ("rnn_tanh", 1, False, False),
    ("rnn_relu", 2, True, False)])
def test_from_torch_onnx_export(cell, L, head, batch_first):
    torch = pytest.importorskip("torch")
    m, model = torch_exported(torch, cell, L, head, batch_first)
    net = sr.from_onnx(model)
    assert net.cell == cell and net.num_layers == L
    assert net.output_size == (2 if head else None)
    X = np.random.default_rng(0).standard_normal((9, 3)).astype(np.float32)
    with torch.no_grad():
        x = torch.from_numpy(X)[None] if batch_first else torch.from_numpy(X)
        Yt = m(x).numpy().reshape(9, -1)
    close(net.run(X, net.new_state()), Yt, 2e-6)


def set_attr(model, name, value):
    """A copy of model with the first recurrent node's attribute set (None: removed)."""
    model = copy.deepcopy(model)
    node = next(n for n in model.graph.node if n.op_type in ("LSTM", "GRU", "RNN"))
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    if value is not None:
        node.attribute.append(helper.make_attribute(name, value))
    return model


@pytest.mark.parametrize("cell, attr, value, match", [
    ("lstm", "direction", "bidirectional", r"W and R must have shape \(2, "),
    ("lstm", "direction", "reverse", "direction='reverse' reads the window backwards.*"
                                     "time_reversed=True"),
    ("gru", "direction", "sideways", "forward, reverse or bidirectional"),
    ("gru", "activations", ["Sigmoid", "Relu"], "activations"),
    ("rnn_tanh", "activations", ["Sigmoid"], "activations"),
    ("lstm", "clip", 3.0, "clip"),
    ("lstm", "input_forget", 1, "input_forget"),
    ("gru", "linear_before_reset", 2, r"linear_before_reset=2 \(0 or 1\)"),
    ("rnn_tanh", "activation_alpha", [1.0], "activation_alpha"),
    ("gru", "hidden_size", 7, "hidden_size"),
    ("lstm", "something_else", 1, "unsupported attributes"),
])
def test_from_onnx_unsupported_attributes(cell, attr, value, match):
    model = sr.to_onnx(make_net(cell, 2, 3, 1, dtype="float32", seed=0))
    sr.from_onnx(model)
    with pytest.raises(ValueError, match=match):
        sr.from_onnx(set_attr(model, attr, value))


def test_from_onnx_rejects_other_graphs():
    net = sr.LSTM(2, 3, num_layers=2, output_size=1, seed=0)
    model = sr.to_onnx(net)
    # an extra operator after the head
    m = copy.deepcopy(model)
    m.graph.node.append(helper.make_node("Sigmoid", ["Y"], ["Z"]))
    with pytest.raises(ValueError, match="operator Sigmoid"):
        sr.from_onnx(m)
    # an unused float initializer
    m = copy.deepcopy(model)
    m.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "extra"))
    with pytest.raises(ValueError, match="unused.*extra"):
        sr.from_onnx(m)
    # weights that are graph inputs, not constants
    m = copy.deepcopy(model)
    m.graph.node[0].input[1] = "X"
    with pytest.raises(ValueError, match="constant"):
        sr.from_onnx(m)
    # peepholes, sequence_lens
    for pos, name, match in ((7, "P", "peephole"), (4, "X", "sequence_lens")):
        m = copy.deepcopy(model)
        node = m.graph.node[0]
        while len(node.input) <= pos:
            node.input.append("")
        node.input[pos] = name
        if name == "P":
            m.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 9), np.float32),
                                                               "P"))
        with pytest.raises(ValueError, match=match):
            sr.from_onnx(m)
    # layer 2 not reading layer 1
    m = copy.deepcopy(model)
    rec = [n for n in m.graph.node if n.op_type == "LSTM"]
    rec[1].input[0] = "X"
    with pytest.raises(ValueError, match="previous layer"):
        sr.from_onnx(m)
    # mixed kinds
    m = copy.deepcopy(model)
    g = sr.to_onnx(sr.GRU(2, 3, seed=0))
    rec = [n for n in m.graph.node if n.op_type == "LSTM"]
    rec[1].op_type = "GRU"
    with pytest.raises(ValueError, match="mixed"):
        sr.from_onnx(m)
    assert sr.from_onnx(g).cell == "gru"
    with pytest.raises(TypeError, match="ModelProto"):
        sr.from_onnx(12)


def test_from_onnx_into_existing_net_is_all_or_nothing():
    src = sr.GRU(3, 4, num_layers=2, output_size=2, seed=1)
    net = sr.GRU(3, 4, num_layers=2, output_size=2, seed=2)
    before = snapshot(net)
    for bad, match in [(sr.GRU(3, 4, num_layers=1, output_size=2, seed=0), "num_layers"),
                       (sr.GRU(3, 4, num_layers=2, seed=0), "output_size"),
                       (sr.LSTM(3, 4, num_layers=2, output_size=2, seed=0), "cell")]:
        with pytest.raises(ValueError, match=match):
            sr.from_onnx(sr.to_onnx(bad), net=net)
        assert_unchanged(before, net)
    # a shape mismatch in the last tensor read (the head bias): nothing written
    model = sr.to_onnx(src)
    for t in model.graph.initializer:
        if t.name == "head_bias":
            t.CopyFrom(numpy_helper.from_array(np.zeros(3, np.float32), "head_bias"))
    with pytest.raises(ValueError, match="head bias"):
        sr.from_onnx(model, net=net)
    assert_unchanged(before, net)
    # a non-finite weight in the last layer: nothing written
    model = sr.to_onnx(src)
    for t in model.graph.initializer:
        if t.name == "R_l1":
            a = numpy_helper.to_array(t).copy()
            a[0, -1, -1] = np.inf
            t.CopyFrom(numpy_helper.from_array(a, "R_l1"))
    with pytest.raises(ValueError, match="finite"):
        sr.from_onnx(model, net=net)
    assert_unchanged(before, net)
    assert sr.from_onnx(sr.to_onnx(src), net=net) is net
    assert net.parameters().tobytes() == src.parameters().tobytes()


# ---------------------------------------------------------------- bidirectional networks
def make_bi(cell, D, H, L, O, dtype, seed):
    kw = dict(dtype=dtype, seed=seed, bidirectional=True)
    if cell in ("lstm", "lstm_peephole"):
        return sr.LSTM(D, H, L, O, peepholes=cell == "lstm_peephole", **kw)
    if cell in ("gru", "gru_reset_before"):
        return sr.GRU(D, H, L, O, reset_after=cell == "gru", **kw)
    return sr.RNN(D, H, L, O, nonlinearity=cell[4:], **kw)


def bi_feeds_and_expected(net, T, initial_state, seed=0):
    """Feeds and (Y, h_n[, c_n]) of the C core's whole-window forward (net.run(X) from zero
    states; with initial_state, from random states, final states included)."""
    from streamrnn import _core
    rng = np.random.default_rng(seed)
    L, H = net.num_layers, net.hidden_size
    X = rng.standard_normal((T, net.input_size)).astype(net.dtype)
    feeds = {"X": X[:, None, :]}
    h0 = c0 = None
    if initial_state:
        h0 = rng.uniform(-0.5, 0.5, (L, 2, H)).astype(net.dtype)
        feeds["h0"] = h0.reshape(2 * L, 1, H)
        if net.cell.startswith("lstm"):
            c0 = rng.uniform(-1, 1, (L, 2, H)).astype(net.dtype)
            feeds["c0"] = c0.reshape(2 * L, 1, H)
    Y, hT, cT = _core._SeqWork(net).forward(X, h0, c0, final=True)
    if not initial_state:
        np.testing.assert_array_equal(Y, net.run(X))
    expected = [Y, hT.reshape(2 * L, H)] + ([cT.reshape(2 * L, H)] if cT is not None else [])
    return feeds, expected


def check_bi_model(model, net):
    onnx.checker.check_model(model, full_check=True)
    op = {"lstm": "LSTM", "gru": "GRU", "gru_reset_before": "GRU",
          "lstm_peephole": "LSTM"}.get(net.cell, "RNN")
    rec = [n for n in model.graph.node if n.op_type == op]
    assert len(rec) == net.num_layers
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    G = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "lstm_peephole": 4}.get(net.cell, 1)
    H = net.hidden_size
    for k, node in enumerate(rec):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["direction"] == b"bidirectional"
        assert attrs.get("linear_before_reset", 1) == (net.cell != "gru_reset_before")
        din = net.input_size if k == 0 else 2 * H
        assert inits[node.input[1]].shape == (2, G * H, din)
        assert inits[node.input[2]].shape == (2, G * H, H)
        assert inits[node.input[3]].shape == (2, 2 * G * H)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Transpose") == ops.count("Reshape") == net.num_layers
    assert "Squeeze" not in ops


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("O", [None, 2])
@pytest.mark.parametrize("initial_state", [False, True])
def test_bidirectional_onnxruntime_float32(cell, L, O, initial_state):
    ort = pytest.importorskip("onnxruntime")
    net = make_bi(cell, 3, 5, L, O, "float32", seed=20 + L)
    model = sr.to_onnx(net, initial_state=initial_state)
    check_bi_model(model, net)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds, expected = bi_feeds_and_expected(net, 19, initial_state, seed=L)
    outs = sess.run(None, feeds)
    assert outs[0].shape == (19, 1, O or 10) and outs[1].shape == (2 * L, 1, 5)
    check_outputs(outs, expected, 1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("O", [None, 3])
def test_bidirectional_reference_evaluator_float64(cell, L, O):
    net = make_bi(cell, 4, 5, L, O, "float64", seed=30 + L)
    for initial_state in (False, True):
        model = sr.to_onnx(net, initial_state=initial_state)
        check_bi_model(model, net)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
        feeds, expected = bi_feeds_and_expected(net, 11, initial_state, seed=4)
        outs = ReferenceEvaluator(model, new_ops=[RNN]).run(None, feeds)
        check_outputs(outs, expected, 1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bidirectional_round_trip_and_loading_into_a_net(cell, dtype, tmp_path):
    net = make_bi(cell, 3, 4, 2, 2, dtype, seed=6)
    path = tmp_path / "bi.onnx"
    model = sr.to_onnx(net, path)
    back = sr.from_onnx(str(path))
    assert type(back) is type(net) and back.bidirectional and back.cell == cell
    assert back.dtype == net.dtype and back.output_size == 2
    assert back.parameters().tobytes() == net.parameters().tobytes()
    into = make_bi(cell, 3, 4, 2, 2, dtype, seed=7)
    assert sr.from_onnx(model, net=into) is into
    assert into.parameters().tobytes() == net.parameters().tobytes()
    # a bidirectional model into a unidirectional net and the reverse: nothing written
    uni = make_net(cell, 3, 4, 2, 2, dtype=dtype, seed=8)
    for src, dst in ((model, uni), (sr.to_onnx(uni), into)):
        before = snapshot(dst)
        with pytest.raises(ValueError, match="bidirectional"):
            sr.from_onnx(src, net=dst)
        assert_unchanged(before, dst)


@pytest.mark.parametrize("cell", TORCH_CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bidirectional_from_torch_onnx_export(cell, L, dtype):
    torch = pytest.importorskip("torch")
    head, batch_first = L == 2, cell in ("gru", "rnn_relu")
    m, model = torch_exported(torch, cell, L, head, batch_first, bidirectional=True,
                              dtype=dtype)
    assert any(a.s == b"bidirectional" for n in model.graph.node for a in n.attribute
               if a.name == "direction")
    net = sr.from_onnx(model)
    assert net.bidirectional and net.cell == cell and net.num_layers == L
    assert net.dtype == np.dtype(dtype) and net.output_size == (2 if head else None)
    sd = net.state_dict()
    for k, v in m.rnn.state_dict().items():
        assert np.array_equal(sd[k], v.numpy()), k
    X = np.random.default_rng(1).standard_normal((9, 3)).astype(dtype)
    with torch.no_grad():
        x = torch.from_numpy(X)[None] if batch_first else torch.from_numpy(X)[:, None]
        Yt = m(x).numpy().reshape(9, -1)
    close(net.run(X), Yt, 2e-6 if dtype == "float32" else 1e-12)


def test_bidirectional_merge_must_be_the_concatenation():
    net = sr.GRU(2, 3, num_layers=2, output_size=1, bidirectional=True, seed=0)
    model = sr.to_onnx(net)
    assert sr.from_onnx(model).parameters().tobytes() == net.parameters().tobytes()

    def node(m, name):
        return next(n for n in m.graph.node if n.name == name)

    # a Transpose that puts the direction axis before time: rejected
    m = copy.deepcopy(model)
    t = node(m, "transpose_l0")
    t.ClearField("attribute")
    t.attribute.append(helper.make_attribute("perm", [1, 2, 0, 3]))
    with pytest.raises(ValueError, match="Reshape 'reshape_l0'.*would merge the T axis.*must "
                                         "stay .time, batch, features."):
        sr.from_onnx(m)
    # layout=1 (batch first): Y is (1, T, 2, H) and perm [0, 2, 1, 3] would swap time and
    # direction
    m = set_attr(model, "layout", 1)
    with pytest.raises(ValueError, match="Reshape 'reshape_l0'.*must stay .time, batch, "
                                         "features."):
        sr.from_onnx(m)
    # the next layer reading Y through a Squeeze-free, Reshape-free path: rejected
    m = copy.deepcopy(model)
    node(m, "gru_l1").input[0] = "Y4t_l0"
    with pytest.raises(ValueError, match="its input X holds the previous layer's Y as axes"):
        sr.from_onnx(m)
    # a Reshape that does not merge the directions' h: rejected
    m = copy.deepcopy(model)
    m.graph.initializer.append(numpy_helper.from_array(np.array([0, 2, 3], np.int64),
                                                       "other_shape"))
    node(m, "reshape_l1").input[1] = "other_shape"
    with pytest.raises(ValueError, match="reads the top Y as axes .*its last axis must hold"):
        sr.from_onnx(m)
    # forward and bidirectional layers mixed
    m = set_attr(model, "direction", "forward")
    with pytest.raises(ValueError, match=r"W and R must have shape \(1, "):
        sr.from_onnx(m)
    m = copy.deepcopy(model)
    rec = [n for n in m.graph.node if n.op_type == "GRU"]
    for a in list(rec[1].attribute):
        if a.name == "direction":
            rec[1].attribute.remove(a)
    with pytest.raises(ValueError, match="differs from layer 0's"):
        sr.from_onnx(m)
    # the directions' activations must agree
    rnn = sr.to_onnx(sr.RNN(2, 3, bidirectional=True, seed=0))
    assert sr.from_onnx(rnn).bidirectional
    with pytest.raises(ValueError, match="differ between the directions"):
        sr.from_onnx(set_attr(rnn, "activations", ["Tanh", "Relu"]))
    with pytest.raises(ValueError, match="reverse"):
        sr.from_onnx(set_attr(rnn, "direction", "reverse"))


# ---------------------------------------------------------------------- files and hostile models
def with_external_data(net, tmp_path):
    """to_onnx's model with every initializer in tmp_path/"w.bin" (as onnx.save writes it).
    Returns (model with external references, the model file's path)."""
    from onnx.external_data_helper import convert_model_to_external_data
    model = sr.to_onnx(net)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="w.bin",
                                   size_threshold=0)
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path))       # writes w.bin next to it
    assert (tmp_path / "w.bin").stat().st_size > 0
    return onnx.load(str(path), load_external_data=False), path


def test_bytes_never_read_external_data_unless_given_a_directory(tmp_path, monkeypatch):
    net = sr.LSTM(2, 3, output_size=1, seed=3)
    model, path = with_external_data(net, tmp_path)
    data = model.SerializeToString()
    # w.bin is right here, in the working directory, where onnx would look for it (and a
    # reader of it would succeed): it must not be read
    monkeypatch.chdir(tmp_path)
    for src in (data, model):
        with pytest.raises(ValueError, match="external_data_dir"):
            sr.from_onnx(src)
    for src in (data, model):
        back = sr.from_onnx(src, external_data_dir=tmp_path)
        assert back.parameters().tobytes() == net.parameters().tobytes()
    assert onnx.external_data_helper.uses_external_data(model.graph.initializer[0])  # unchanged
    # a path reads its own directory's files (as onnx.load), or the one given
    monkeypatch.chdir("/")
    assert sr.from_onnx(path).parameters().tobytes() == net.parameters().tobytes()
    with pytest.raises(ValueError, match="external data"):
        sr.from_onnx(path, external_data_dir=tmp_path / "elsewhere")
    with pytest.raises(TypeError, match="external_data_dir"):
        sr.from_onnx(data, external_data_dir=3)


def test_bad_bytes_and_checker_errors_are_value_errors():
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        sr.from_onnx(b"\xff\x00 definitely not protobuf \xff")
    model = sr.to_onnx(sr.GRU(2, 3, seed=0))
    model.ir_version = 10_000                   # passes streamrnn's checks, not onnx's
    with pytest.raises(ValueError, match="onnx's checker"):
        sr.from_onnx(model)


def _in_thread(call):
    """call() in a thread; fails (instead of hanging) when it has not ended after a
    generous limit: the limit turns an endless loop into a failure, it proves nothing."""
    got = []

    def run():
        try:
            call()
            got.append(None)
        except BaseException as e:      # noqa: BLE001
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive(), "from_onnx did not end (an endless walk of the graph)"
    return got[0]


@pytest.mark.parametrize("where", ["X", "W", "head"])
def test_cycles_are_refused(where):
    model = sr.to_onnx(sr.LSTM(2, 3, output_size=1, seed=0))
    g = model.graph
    rec = next(n for n in g.node if n.op_type == "LSTM")
    if where == "X":                # the LSTM reads X through an Identity reading itself
        node = helper.make_node("Identity", ["loop"], ["loop"], name="self_loop")
        rec.input[0] = "loop"
    elif where == "W":              # the weights through two Identities reading each other
        node = helper.make_node("Identity", ["b"], ["a"], name="a")
        g.node.insert(0, helper.make_node("Identity", ["a"], ["b"], name="b"))
        rec.input[1] = "a"
    else:                           # the head's input through a cycle
        node = helper.make_node("Identity", ["c"], ["c"], name="c")
        head = next(n for n in g.node if n.op_type in ("MatMul", "Gemm"))
        head.input[0] = "c"
    g.node.insert(0, node)
    e = _in_thread(lambda: sr.from_onnx(model))
    assert isinstance(e, ValueError) and "before any node produces it" in str(e), e


def test_a_name_produced_twice_is_refused():
    model = sr.to_onnx(sr.LSTM(2, 3, seed=0))
    g = model.graph
    rec = next(n for n in g.node if n.op_type == "LSTM")
    x = rec.input[0]
    # y = Identity(X); X = Identity(y): X "produced" again, a loop for a walk back from X
    g.node.insert(0, helper.make_node("Identity", ["y"], [x], name="back"))
    g.node.insert(0, helper.make_node("Identity", [x], ["y"], name="fwd"))
    e = _in_thread(lambda: sr.from_onnx(model))
    assert isinstance(e, ValueError) and "produced twice" in str(e), e


def test_a_deep_chain_of_identities_terminates():
    model = sr.to_onnx(sr.GRU(2, 3, seed=0))
    g = model.graph
    rec = next(n for n in g.node if n.op_type == "GRU")
    prev = rec.input[0]
    chain = []
    for k in range(20000):
        chain.append(helper.make_node("Identity", [prev], [f"id{k}"], name=f"id{k}"))
        prev = f"id{k}"
    rec.input[0] = prev
    for n in reversed(chain):
        g.node.insert(0, n)
    e = _in_thread(lambda: sr.from_onnx(model))
    assert e is None, e


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and FIFOs")
def test_to_onnx_shares_the_checkpoint_writer(tmp_path):
    net = sr.LSTM(2, 3, seed=0)
    old = os.umask(0o027)
    try:
        sr.to_onnx(net, tmp_path / "new.onnx")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "new.onnx").st_mode & 0o777 == 0o640
    os.chmod(tmp_path / "new.onnx", 0o604)
    sr.to_onnx(net, tmp_path / "new.onnx")
    assert os.stat(tmp_path / "new.onnx").st_mode & 0o777 == 0o604
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="FIFO, not a regular file"):
        sr.to_onnx(net, tmp_path / "fifo")
