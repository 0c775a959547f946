"""from_onnx follows the data between layers axis by axis: graphs whose data flow is the one
streamrnn computes import exactly (checked against onnxruntime or onnx's reference
evaluator); graphs that swap or mix time and batch (which imported as sequence models, off
by 0.19-0.32) are refused, naming the operator. Also sequence_lens, layout=1 stacks and
PyTorch's batch_first export."""
from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import streamrnn as sr  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def ort_run(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def two_layer(kind="LSTM"):
    """A 2-layer network and its to_onnx model with only the output Y (no h_n/c_n, whose
    Concat would fail at run time on the batch-swapped graphs below)."""
    net = {"LSTM": sr.LSTM, "GRU": sr.GRU, "RNN": sr.RNN}[kind](2, 3, num_layers=2, seed=0)
    model = sr.to_onnx(net)
    keep = [n for n in model.graph.node if n.op_type != "Concat"]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    del model.graph.output[1:]
    return net, model


def reroute(model, between, nodes, inits=()):
    """Replace the Squeeze between layer 0 and 1 (``squeeze_l0``: Y4_l0 -> Y_l0) by
    ``nodes`` reading ``Y4_l0`` and writing ``Y_l0``."""
    m = copy.deepcopy(model)
    keep = [n for n in m.graph.node if n.name != between]
    pos = [n.name for n in m.graph.node].index(between)
    del m.graph.node[:]
    m.graph.node.extend(keep[:pos] + nodes + keep[pos:])
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in inits)
    return m


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_time_batch_swap_between_layers_is_refused(kind):
    net, model = two_layer(kind)
    X = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
    # (T, 1, 1, H) -Squeeze-> (T, 1, H) -Transpose[1,0,2]-> (1, T, H): the next layer reads
    # one time step of T batch elements
    swapped = reroute(model, "squeeze_l0", [
        helper.make_node("Squeeze", ["Y4_l0", "axes_1"], ["sq"], name="sq"),
        helper.make_node("Transpose", ["sq"], ["Y_l0"], name="swap", perm=[1, 0, 2])])
    Y = ort_run(swapped, {"X": X[:, None]})[0]
    assert np.abs(Y.reshape(-1, 3) - net.run(X)).max() > 1e-2   # really another function
    with pytest.raises(ValueError, match=r"input X holds the previous layer's Y as axes "
                                         r"\[\(\), \('T',\), \('H',\)\], not \(time, batch"):
        sr.from_onnx(swapped)
    # the same through a Reshape to (1, T, H)
    reshaped = reroute(model, "squeeze_l0", [
        helper.make_node("Reshape", ["Y4_l0", "to_1TH"], ["Y_l0"], name="to_batch")],
        [("to_1TH", np.array([1, -1, 3], np.int64))])
    Y = ort_run(reshaped, {"X": X[:, None]})[0]
    assert np.abs(Y.reshape(-1, 3) - net.run(X)).max() > 1e-2
    with pytest.raises(ValueError, match="input X holds the previous layer's Y as axes"):
        sr.from_onnx(reshaped)


@pytest.mark.parametrize("path", ["reshape_0_0_-1", "reshape_-1_1_H", "unsqueeze_squeeze",
                                  "transpose_twice"])
def test_paths_that_keep_time_and_batch_are_accepted_and_exact(path):
    net, model = two_layer("GRU")
    X = np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32)
    if path == "reshape_0_0_-1":
        nodes, inits = [helper.make_node("Reshape", ["Y4_l0", "s"], ["Y_l0"], name="r")], \
            [("s", np.array([0, 0, -1], np.int64))]
    elif path == "reshape_-1_1_H":
        nodes, inits = [helper.make_node("Reshape", ["Y4_l0", "s"], ["Y_l0"], name="r")], \
            [("s", np.array([-1, 1, 3], np.int64))]
    elif path == "unsqueeze_squeeze":
        nodes = [helper.make_node("Unsqueeze", ["Y4_l0", "a0"], ["u"], name="u"),
                 helper.make_node("Squeeze", ["u", "a02"], ["Y_l0"], name="s")]
        inits = [("a0", np.array([0], np.int64)), ("a02", np.array([0, 2], np.int64))]
    else:
        nodes = [helper.make_node("Squeeze", ["Y4_l0", "axes_1"], ["sq"], name="sq"),
                 helper.make_node("Transpose", ["sq"], ["t"], name="t1", perm=[1, 0, 2]),
                 helper.make_node("Transpose", ["t"], ["Y_l0"], name="t2", perm=[1, 0, 2])]
        inits = []
    m = reroute(model, "squeeze_l0", nodes, inits)
    Y = ort_run(m, {"X": X[:, None]})[0][:, 0]
    np.testing.assert_allclose(Y, net.run(X), rtol=1e-5, atol=1e-6)
    back = sr.from_onnx(m)
    assert back.parameters().tobytes() == net.parameters().tobytes()


def test_merging_time_and_a_free_batch_is_refused():
    """With a batch axis of free size, Reshape(-1, 1, H) merges time and batch."""
    torch = pytest.importorskip("torch")
    m = torch.nn.LSTM(2, 3, num_layers=2)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.zeros(4, 1, 2),), f, dynamo=False, input_names=["X"],
                          dynamic_axes={"X": {0: "T", 1: "B"}})
    model = onnx.load_from_string(f.getvalue())
    assert sr.from_onnx(model).num_layers == 2
    squeeze = next(n for n in model.graph.node if n.op_type == "Squeeze")
    bad = copy.deepcopy(model)
    node = next(n for n in bad.graph.node if n.name == squeeze.name)
    node.op_type = "Reshape"
    del node.input[1:]
    del node.attribute[:]
    node.input.append("merge_shape")
    bad.graph.initializer.append(numpy_helper.from_array(np.array([-1, 1, 3], np.int64),
                                                         "merge_shape"))
    with pytest.raises(ValueError, match="Y as axes \\[\\('T', 'B'\\), \\(\\), \\('H',\\)\\]"):
        sr.from_onnx(bad)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_batch_first_pytorch_export_is_exact(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    m = getattr(torch.nn, kind)(2, 3, num_layers=2, batch_first=True)
    head = torch.nn.Linear(3, 1)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m, self.head = m, head

        def forward(self, x):
            return self.head(self.m(x)[0])
    x = torch.randn(2, 5, 2)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(M(), (x,), f, dynamo=False, input_names=["X"],
                          dynamic_axes={"X": {0: "B", 1: "T"}})
    net = sr.from_onnx(onnx.load_from_string(f.getvalue()))
    with torch.no_grad():
        ref = M()(x).numpy()
    for b in range(2):
        np.testing.assert_allclose(net.run(x[b].numpy()), ref[b], rtol=1e-5, atol=1e-6)


def layout1_stack(kind="LSTM", L=2, H=3, D=2):
    """L operators with layout=1 (batch first), Y (B, T, 1, H) squeezed on axis 2."""
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    rng = np.random.default_rng(0)
    nodes, inits = [], [numpy_helper.from_array(np.array([2], np.int64), "ax2")]
    x = "X"
    for k in range(L):
        d = D if k == 0 else H
        for n, shp in (("W", (1, G * H, d)), ("R", (1, G * H, H)), ("B", (1, 2 * G * H))):
            inits.append(numpy_helper.from_array(rng.uniform(-.6, .6, shp), f"{n}{k}"))
        attrs = {"hidden_size": H, "layout": 1}
        if kind == "GRU":
            attrs["linear_before_reset"] = 1
        nodes.append(helper.make_node(kind, [x, f"W{k}", f"R{k}", f"B{k}"], [f"Y4_{k}"],
                                      name=f"op{k}", **attrs))
        x = "Y" if k == L - 1 else f"Y{k}"
        nodes.append(helper.make_node("Squeeze", [f"Y4_{k}", "ax2"], [x], name=f"sq{k}"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "X", TensorProto.DOUBLE, ["B", "T", D])], [helper.make_tensor_value_info(
            "Y", TensorProto.DOUBLE, ["B", "T", H])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_layout_1_stacks_are_exact(kind):
    from onnx.reference import ReferenceEvaluator
    model = layout1_stack(kind)
    net = sr.from_onnx(model)
    assert net.num_layers == 2 and net.dtype == np.float64
    X = np.random.default_rng(2).standard_normal((3, 6, 2))
    Y = ReferenceEvaluator(model).run(None, {"X": X})[0]
    for b in range(3):
        np.testing.assert_allclose(net.run(X[b]), Y[b], rtol=1e-12, atol=1e-13)
    # the second layer reading (B, T, H) as if time came first: refused
    bad = copy.deepcopy(model)
    op1 = next(n for n in bad.graph.node if n.name == "op1")
    for a in list(op1.attribute):
        if a.name == "layout":
            op1.attribute.remove(a)
    with pytest.raises(ValueError, match="op1.*its input X holds the previous layer's Y"):
        sr.from_onnx(bad)


def lens_model(lens, T=4, static_T=True, runtime=False):
    rng = np.random.default_rng(0)
    H, D, nb = 3, 2, len(lens)
    inits = [numpy_helper.from_array(rng.uniform(-.5, .5, (1, 4 * H, D)), "W"),
             numpy_helper.from_array(rng.uniform(-.5, .5, (1, 4 * H, H)), "R")]
    inputs = [helper.make_tensor_value_info("X", TensorProto.DOUBLE,
                                            [T if static_T else "T", nb, D])]
    if runtime:
        inputs.append(helper.make_tensor_value_info("L", TensorProto.INT32, [nb]))
    else:
        inits.append(numpy_helper.from_array(np.asarray(lens, np.int32), "L"))
    node = helper.make_node("LSTM", ["X", "W", "R", "", "L"], ["Y"], hidden_size=H)
    g = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info(
        "Y", TensorProto.DOUBLE, [T if static_T else "T", 1, nb, H])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_sequence_lens():
    from onnx.reference import ReferenceEvaluator
    model = lens_model([4, 4])
    net = sr.from_onnx(model)
    X = np.random.default_rng(3).standard_normal((4, 2, 2))
    Y = ReferenceEvaluator(model).run(None, {"X": X})[0]
    for b in range(2):
        np.testing.assert_allclose(net.run(X[:, b]), Y[:, 0, b], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match=r"sequence_lens \[4, 2\] are unequal.*"
                                         r"net.run\(X\[:sequence_lens\[b\], b\]\)"):
        sr.from_onnx(lens_model([4, 2]))
    with pytest.raises(ValueError, match=r"sequence_lens \[3, 3\] must equal the window length"
                                         r" T of the input \(4\)"):
        sr.from_onnx(lens_model([3, 3]))
    with pytest.raises(ValueError, match=r"must equal the window length T of the input "
                                         r"\(not fixed\)"):
        sr.from_onnx(lens_model([4, 4], static_T=False))
    with pytest.raises(ValueError, match="sequence_lens is a graph input"):
        sr.from_onnx(lens_model([4, 4], runtime=True))
    # given as a value: accepted when equal to T
    net2 = sr.from_onnx(lens_model([4, 4], runtime=True),
                        inputs={"L": np.array([4, 4], np.int32)})
    assert net2.parameters().tobytes() == net.parameters().tobytes()


def test_head_must_read_features_on_the_last_axis():
    net = sr.RNN(2, 3, num_layers=1, output_size=1, seed=0)
    model = sr.to_onnx(net)
    m = copy.deepcopy(model)
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    # the head reads Y (T, 1, H) transposed to (H, 1, T): time on the last axis
    m.graph.node.insert(list(m.graph.node).index(mm), helper.make_node(
        "Transpose", [mm.input[0]], ["yt"], name="yt", perm=[2, 1, 0]))
    mm.input[0] = "yt"
    with pytest.raises(ValueError, match="the head MatMul 'head_matmul' reads the top Y as "
                                         "axes .*its last axis must hold"):
        sr.from_onnx(m)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_dynamo_export_is_exact(kind, bidirectional, batch_first):
    """torch.onnx.export's default (dynamo) exporter: static shapes, Transpose + Reshape
    between every pair of layers (even unidirectional ones)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    torch.manual_seed(3)
    rnn = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=bidirectional,
                                  batch_first=batch_first)
    head = torch.nn.Linear(8 if bidirectional else 4, 2)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnn, head

        def forward(self, x):
            return self.head(self.rnn(x)[0])
    m = M()
    x = torch.randn(1, 5, 3) if batch_first else torch.randn(5, 1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.onnx.export(m, (x,), dynamo=True, input_names=["X"],
                                  verbose=False).model_proto
    net = sr.from_onnx(model)
    assert net.bidirectional == bidirectional
    with torch.no_grad():
        ref = m(x).numpy()
    ref, xs = (ref[0], x[0]) if batch_first else (ref[:, 0], x[:, 0])
    np.testing.assert_allclose(net.run(xs.numpy()), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_stacked_reverse_layers_with_time_reversed(kind):
    """Every layer direction='reverse': Y == net.run(X[::-1])[::-1] (each layer's Y is in
    time order, so the flips between layers cancel)."""
    net = {"LSTM": sr.LSTM, "GRU": sr.GRU, "RNN": sr.RNN}[kind](2, 3, num_layers=3,
                                                                output_size=2, seed=4)
    model = sr.to_onnx(net)
    for n in model.graph.node:
        if n.op_type == kind:
            n.attribute.append(helper.make_attribute("direction", "reverse"))
    X = np.random.default_rng(5).standard_normal((7, 2)).astype(np.float32)
    Y = ort_run(model, {"X": X[:, None]})[0][:, 0]
    with pytest.raises(ValueError, match="time_reversed=True"):
        sr.from_onnx(model)
    back = sr.from_onnx(model, time_reversed=True)
    np.testing.assert_allclose(back.run(np.ascontiguousarray(X[::-1]))[::-1], Y, rtol=1e-5,
                               atol=1e-6)
    assert np.abs(back.run(X) - Y).max() > 1e-3
    # one reverse layer among forward ones: refused either way
    mixed = copy.deepcopy(model)
    rec = [n for n in mixed.graph.node if n.op_type == kind]
    for a in list(rec[1].attribute):
        if a.name == "direction":
            rec[1].attribute.remove(a)
    with pytest.raises(ValueError, match="direction='forward' differs from layer 0's"):
        sr.from_onnx(mixed, time_reversed=True)
