"""Initial states as part of a network (set_initial_state): where streams start, saving,
and every interop path (PyTorch's learned h0 through from_torch, to_torch, both ONNX
exporters, to_onnx/from_onnx, constant initial_h/initial_c in ONNX graphs)."""
from __future__ import annotations

import copy
import io
import pickle
import warnings

import numpy as np
import pytest

import streamrnn as sr

from conftest import assert_unchanged, snapshot  # noqa: E402

CLASSES = [("lstm", sr.LSTM), ("gru", sr.GRU), ("rnn", sr.RNN)]


def net_with_initial(cls, dtype="float64", L=2, H=4, D=3, O=2, seed=0):
    net = cls(D, H, num_layers=L, output_size=O, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    h = rng.uniform(-1, 1, (L, H))
    c = rng.uniform(-1, 1, (L, H)) if cls is sr.LSTM else None
    net.set_initial_state(h, c)
    return net, h, c


def run_from(net, X, h, c):
    """The reference: run from a zero state whose h/c are written by hand."""
    s = type(net)(net.input_size, net.hidden_size, net.num_layers, net.output_size,
                  dtype=net.dtype.name).new_state()
    s.h[...] = h
    if c is not None:
        s.c[...] = c
    return net.run(X, s)


@pytest.mark.parametrize("name, cls", CLASSES)
def test_streams_start_from_the_initial_state(name, cls):
    net, h, c = net_with_initial(cls)
    X = np.random.default_rng(5).standard_normal((7, 3))
    want = run_from(net, X, h, c)
    s = net.new_state()
    np.testing.assert_array_equal(s.h, h)
    if c is not None:
        np.testing.assert_array_equal(s.c, c)
    np.testing.assert_array_equal(net.run(X, s), want)
    np.testing.assert_array_equal(net.run(X), want)          # run without a state
    b = net.new_states(3)
    np.testing.assert_array_equal(b.h, np.broadcast_to(h, (3,) + h.shape))
    Y = np.stack([net.step_many(np.repeat(x[None], 3, 0), b) for x in X])
    np.testing.assert_array_equal(Y[:, 1], want)
    # it differs from a zero start (so the checks above can fail)
    assert np.abs(net.run(X, type(net)(3, 4, 2, 2, dtype="float64").new_state())
                  - want).max() > 1e-3
    # reset_state: a stream back to the initial state; state.reset(): zeros
    net.reset_state(s)
    np.testing.assert_array_equal(s.h, h)
    s.reset()
    assert not s.h.any()
    b.reset()
    net.reset_state(b, [2])
    np.testing.assert_array_equal(b.h[2], h)
    assert not b.h[:2].any()


@pytest.mark.parametrize("name, cls", CLASSES)
def test_trainers_start_and_reset_to_the_initial_state(name, cls):
    net, h, c = net_with_initial(cls)
    tr = sr.OnlineTrainer(net, optimizer=sr.SGD(lr=0.0))
    np.testing.assert_array_equal(tr.state.h, h)
    X = np.random.default_rng(1).standard_normal((4, 3))
    ys = [tr.learn_one(x, np.zeros(2)) for x in X]
    np.testing.assert_allclose(ys, run_from(net, X, h, c), rtol=0, atol=0)
    tr.reset()
    np.testing.assert_array_equal(tr.state.h, h)
    if c is not None:
        np.testing.assert_array_equal(tr.state.c, c)


@pytest.mark.parametrize("name, cls", CLASSES)
def test_pickles_copies_and_files_keep_it(name, cls, tmp_path):
    net, h, c = net_with_initial(cls, dtype="float32")
    X = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    want = net.run(X)
    for other in (pickle.loads(pickle.dumps(net)), copy.copy(net), copy.deepcopy(net),
                  sr.loads(sr.dumps(net))):
        assert other.initial_state is not None
        np.testing.assert_array_equal(other.initial_state[0], net.initial_state[0])
        np.testing.assert_array_equal(other.run(X), want)
    p = tmp_path / "tr.srnn"
    sr.save(sr.OnlineTrainer(net), p)
    np.testing.assert_array_equal(sr.load(p).state.h, net.initial_state[0])
    # a network without one saves and loads as before: zeros, no field in the header
    plain = cls(3, 4, dtype="float32", seed=0)
    assert "initial_h" not in sr.dumps(plain).decode("latin-1")
    assert sr.loads(sr.dumps(plain)).initial_state is None


def test_set_initial_state_checks_and_changes_nothing_on_error():
    net, h, c = net_with_initial(sr.LSTM)
    before = net.initial_state
    for args, exc, match in [
        ((np.zeros((3, 4)),), ValueError, r"h must have shape \(2, 4\) or \(2, 1, 4\)"),
        ((np.zeros((2, 4), np.int64),), TypeError, "h must be a real floating array"),
        ((np.full((2, 4), np.nan),), ValueError, "h must be finite"),
        ((h, np.zeros(5)), ValueError, "c must have shape"),
        ((np.full((2, 4), 1e300),), ValueError, None),
    ]:
        target = net if args[0].dtype != np.float64 or args[0].max() < 1e200 else \
            sr.LSTM(3, 4, 2, 2, dtype="float32")
        t_before = target.initial_state
        with pytest.raises(exc, match=match):
            target.set_initial_state(*args)
        after = target.initial_state
        assert (after is None) == (t_before is None)
        if after is not None:
            np.testing.assert_array_equal(after[0], t_before[0])
    np.testing.assert_array_equal(net.initial_state[0], before[0])
    with pytest.raises(ValueError, match="c is only for an LSTM"):
        sr.GRU(3, 4).set_initial_state(np.zeros((1, 4)), np.ones((1, 4)))
    with pytest.raises(ValueError, match="bidirectional network .* no initial state"):
        sr.GRU(3, 4, bidirectional=True).set_initial_state(np.ones((1, 4)))
    net.set_initial_state(None, None)
    assert net.initial_state is None
    assert not net.new_state().h.any()
    # the returned arrays are copies
    net.set_initial_state(h)
    net.initial_state[0][...] = 7
    np.testing.assert_array_equal(net.new_state().h, h)


# ------------------------------------------------------------------------------ PyTorch
@pytest.mark.parametrize("name, cls", CLASSES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_with_learned_h0_and_back(name, cls, dtype):
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    torch.manual_seed(0)
    m = getattr(torch.nn, name.upper())(3, 4, num_layers=2, dtype=tdt)
    h0 = torch.nn.Parameter(torch.randn(2, 1, 4, dtype=tdt))
    c0 = torch.nn.Parameter(torch.randn(2, 1, 4, dtype=tdt)) if name == "lstm" else None
    x = torch.randn(6, 1, 3, dtype=tdt)
    with torch.no_grad():
        ref = m(x, (h0, c0) if c0 is not None else h0)[0][:, 0].numpy()
    net = sr.from_torch(m, h0=h0, c0=c0)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(net.run(x[:, 0].numpy()), ref, rtol=tol, atol=tol)
    back = sr.to_torch(net)
    with torch.no_grad():
        np.testing.assert_array_equal(back(x)[0][:, 0].numpy(), ref)   # same torch code
        np.testing.assert_array_equal(back(x[:, 0])[0].numpy(), ref)   # unbatched
        two = back(x.expand(-1, 2, -1))[0].numpy()                     # batch of 2
    np.testing.assert_allclose(two[:, 1], ref, rtol=tol, atol=tol)  # torch's batched gemm
    again = sr.from_torch(back)
    np.testing.assert_array_equal(again.initial_state[0], net.initial_state[0])
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\) or \(2, 1, 4\)"):
        sr.from_torch(m, h0=torch.zeros(3, 4, dtype=tdt))
    with pytest.raises(ValueError, match="bidirectional"):
        sr.from_torch(getattr(torch.nn, name.upper())(3, 4, bidirectional=True),
                      h0=torch.zeros(2, 4))


def _torch_learned_h0_model(torch, kind, tdt, L=2):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(3, 4, num_layers=L, dtype=tdt)
            self.h0 = torch.nn.Parameter(torch.randn(L, 1, 4, dtype=tdt))
            self.c0 = torch.nn.Parameter(torch.randn(L, 1, 4, dtype=tdt))
            self.head = torch.nn.Linear(4, 2, dtype=tdt)

        def forward(self, x):
            n = x.shape[1]
            h0 = self.h0.expand(-1, n, -1).contiguous()
            if kind == "LSTM":
                y, _ = self.rnn(x, (h0, self.c0.expand(-1, n, -1).contiguous()))
            else:
                y, _ = self.rnn(x, h0)
            return self.head(y)
    return M()


def _export(torch, onnx, m, x, dynamo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(m, (x,), dynamo=True, input_names=["X"],
                                     verbose=False).model_proto
        f = io.BytesIO()
        torch.onnx.export(m, (x,), f, dynamo=False, input_names=["X"],
                          dynamic_axes={"X": {0: "T", 1: "B"}})
        return onnx.load_from_string(f.getvalue())


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_export_of_a_learned_h0_imports_exactly(kind, dynamo, dtype):
    """The issue's silent wrong result: a PyTorch model passing a learned nn.Parameter h0 to
    its nn.LSTM/GRU/RNN, exported with either exporter, imports off by 0.48 if the constant
    initial state is ignored. Now it is the network's initial state."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    tdt = getattr(torch, dtype)
    torch.manual_seed(1)
    m = _torch_learned_h0_model(torch, kind, tdt)
    x = torch.randn(5, 1, 3, dtype=tdt)
    model = _export(torch, onnx, m, x, dynamo)
    with torch.no_grad():
        ref = m(x)[:, 0].numpy()
    if dynamo and kind == "RNN":
        # torch 2.13's dynamo exporter unrolls nn.RNN into MatMul/Add/Tanh over the fixed T
        assert "RNN" not in {n.op_type for n in model.graph.node}
        with pytest.raises(ValueError, match="unrolled over a fixed number of steps.*dynamo"
                                             r".*dynamo=False.*sr.from_torch"):
            sr.from_onnx(model)
        return
    net = sr.from_onnx(model)
    assert net.initial_state is not None
    tol = 1e-5 if dtype == "float32" else 1e-12
    got = net.run(x[:, 0].numpy())
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())
    # without the initial state the outputs are far off (what the bug did)
    net.set_initial_state(None, None)
    assert np.abs(net.run(x[:, 0].numpy()) - ref).max() > 1e-2


# ---------------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("name, cls", CLASSES)
@pytest.mark.parametrize("initial_inputs", [False, True])
def test_to_onnx_writes_the_initial_state(name, cls, initial_inputs):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator
    for dtype in ("float32", "float64"):
        net, h, c = net_with_initial(cls, dtype=dtype)
        X = np.random.default_rng(3).standard_normal((6, 3)).astype(dtype)
        model = sr.to_onnx(net, initial_state=initial_inputs)
        onnx.checker.check_model(model, full_check=True)
        want = net.run(X)
        if dtype == "float32":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sess = ort.InferenceSession(model.SerializeToString(),
                                            providers=["CPUExecutionProvider"])
            Y = sess.run(None, {"X": X[:, None]})[0][:, 0]
            np.testing.assert_allclose(Y, want, rtol=1e-5, atol=1e-6)
        elif name != "rnn":  # the reference evaluator's RNN knows no Relu; tanh is fine
            Y = ReferenceEvaluator(model).run(None, {"X": X[:, None]})[0][:, 0]
            np.testing.assert_allclose(Y, want, rtol=1e-12, atol=1e-13)
        back = sr.from_onnx(model)
        np.testing.assert_array_equal(back.initial_state[0], net.initial_state[0])
        np.testing.assert_array_equal(back.run(X), want)


def _single_op_model(kind="LSTM", H=3, D=2, init=None, batch=1, T=None, seq_lens=None,
                     as_constant_node=False, initial_c=None):
    """One LSTM/GRU/RNN operator, weights as initializers, optional constant initial_h."""
    from onnx import TensorProto, helper, numpy_helper
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-.5, .5, (1, G * H, D)).astype(np.float32),
                                     "W"),
             numpy_helper.from_array(rng.uniform(-.5, .5, (1, G * H, H)).astype(np.float32),
                                     "R"),
             numpy_helper.from_array(rng.uniform(-.5, .5, (1, 2 * G * H)).astype(np.float32),
                                     "B")]
    nodes = []
    ins = ["X", "W", "R", "B", "", ""]
    if seq_lens is not None:
        inits.append(numpy_helper.from_array(np.asarray(seq_lens, np.int32), "lens"))
        ins[4] = "lens"
    for name, val in (("init_h", init), ("init_c", initial_c)):
        if val is None:
            continue
        arr = np.asarray(val, np.float32)
        if as_constant_node:
            nodes.append(helper.make_node("Constant", [], [name],
                                          value=numpy_helper.from_array(arr)))
        else:
            inits.append(numpy_helper.from_array(arr, name))
        if name == "init_h":
            ins[5] = name
        else:
            ins.append(name)
    attrs = {"hidden_size": H}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    nodes.append(helper.make_node(kind, ins, ["Y", "Y_h"], **attrs))
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                         [T or "T", batch, D])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT,
                                                         [T or "T", 1, batch, H])],
                          initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("as_constant_node", [False, True], ids=["initializer", "Constant"])
def test_constant_initial_h_is_imported_not_ignored(kind, as_constant_node):
    """The issue's first silent wrong result: a constant initial_h/initial_c was ignored
    (off by 0.15-0.55). Compared with onnxruntime on a batch of 2."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(4)
    h0 = np.repeat(rng.uniform(-1, 1, (1, 1, 3)), 2, axis=1)
    c0 = np.repeat(rng.uniform(-1, 1, (1, 1, 3)), 2, axis=1) if kind == "LSTM" else None
    model = _single_op_model(kind, init=h0, batch=2, as_constant_node=as_constant_node,
                             initial_c=c0)
    net = sr.from_onnx(model)
    X = rng.standard_normal((5, 2, 2)).astype(np.float32)
    Y = ort.InferenceSession(model.SerializeToString(),
                             providers=["CPUExecutionProvider"]).run(None, {"X": X})[0]
    for b in range(2):
        np.testing.assert_allclose(net.run(np.ascontiguousarray(X[:, b])), Y[:, 0, b],
                                   rtol=1e-5, atol=1e-6)
    net.set_initial_state(None, None)
    assert np.abs(net.run(np.ascontiguousarray(X[:, 0])) - Y[:, 0, 0]).max() > 1e-2


def test_initial_states_streamrnn_cannot_hold_are_refused():
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    rng = np.random.default_rng(0)
    # different per batch element
    h0 = rng.uniform(-1, 1, (1, 2, 3))
    with pytest.raises(ValueError, match="initial_h differs between the batch elements"):
        sr.from_onnx(_single_op_model("GRU", init=h0, batch=2))
    # computed from the input's values: X is (1, 1, 3) and initial_h = X
    model = _single_op_model("RNN", H=3, D=3, batch=1, T=1)
    node = model.graph.node[-1]
    node.input[5] = "X_copy"
    model.graph.node.insert(0, helper.make_node("Identity", ["X"], ["X_copy"]))
    with pytest.raises(ValueError, match="depends on the values of the input 'X'"):
        sr.from_onnx(model)
    # a nonzero constant initial state of a bidirectional operator
    bi = sr.to_onnx(sr.GRU(2, 3, bidirectional=True, seed=0))
    from onnx import numpy_helper
    bi.graph.initializer.append(numpy_helper.from_array(np.ones((2, 1, 3), np.float32),
                                                        "h0c"))
    gru = next(n for n in bi.graph.node if n.op_type == "GRU")
    while len(gru.input) < 6:
        gru.input.append("")
    gru.input[5] = "h0c"
    with pytest.raises(ValueError, match="nonzero constant initial_h of a bidirectional"):
        sr.from_onnx(bi)
    # zeros are fine there (the same as none)
    bi.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.zeros((2, 1, 3),
                                                                       np.float32), "h0c"))
    assert sr.from_onnx(bi).bidirectional


def test_from_onnx_into_net_replaces_the_initial_state_or_changes_nothing():
    pytest.importorskip("onnx")
    net, h, c = net_with_initial(sr.LSTM, dtype="float32")
    model = sr.to_onnx(net)
    other = sr.LSTM(3, 4, 2, 2, dtype="float32", seed=9)
    assert sr.from_onnx(model, net=other) is other
    np.testing.assert_array_equal(other.initial_state[0], net.initial_state[0])
    # a model without one clears it
    plain = sr.to_onnx(sr.LSTM(3, 4, 2, 2, dtype="float32", seed=3))
    sr.from_onnx(plain, net=other)
    assert other.initial_state is None
    # a refused model changes nothing (weights and initial state)
    other.set_initial_state(h, c)
    before = snapshot(other)
    init_before = other.initial_state
    bad = _single_op_model("LSTM", init=np.stack([h[:1], -h[:1]], 1)[:, :, :3], batch=2)
    with pytest.raises(ValueError):
        sr.from_onnx(bad, net=other)
    assert_unchanged(before, other)
    np.testing.assert_array_equal(other.initial_state[0], init_before[0])


def test_a_bad_constant_initial_state_changes_nothing():
    pytest.importorskip("onnx")
    from onnx import numpy_helper
    src = sr.LSTM(3, 4, 2, 2, dtype="float32", seed=0)
    src.set_initial_state(np.ones((2, 4)))
    model = sr.to_onnx(src)
    for t in model.graph.initializer:
        if t.name == "h0_l1":
            t.CopyFrom(numpy_helper.from_array(np.full((1, 1, 4), np.nan, np.float32), t.name))
    other, h, c = net_with_initial(sr.LSTM, dtype="float32")
    before = snapshot(other)
    init_before = other.initial_state
    with pytest.raises(ValueError, match="initial_h holds NaN or inf"):
        sr.from_onnx(model, net=other)
    assert_unchanged(before, other)
    np.testing.assert_array_equal(other.initial_state[0], init_before[0])
    np.testing.assert_array_equal(other.initial_state[1], init_before[1])
    # a float64 initial state too large for a float32 network: refused before loading
    big = sr.LSTM(3, 4, 2, 2, dtype="float64", seed=0)
    big.set_initial_state(np.full((2, 4), 1e300))
    with pytest.raises(ValueError, match="initial state.*too large for float32"):
        sr.from_onnx(sr.to_onnx(big), net=other)
    assert_unchanged(before, other)


def test_computed_initial_states_are_bounded():
    """A hostile model cannot make the import allocate without limit or run loops: computed
    initial states are evaluated with bounded ConstantOfShape/Expand and a fixed set of
    operators."""
    pytest.importorskip("onnx")
    from onnx import helper, numpy_helper
    model = sr.to_onnx(sr.GRU(2, 3, seed=0))
    model.graph.initializer.extend([
        numpy_helper.from_array(np.ones((1, 1, 3), np.float32), "h"),
        numpy_helper.from_array(np.array([1, 10**6, 10**6, 3], np.int64), "big")])
    model.graph.node.insert(0, helper.make_node("Expand", ["h", "big"], ["hb"], name="huge"))
    gru = next(n for n in model.graph.node if n.op_type == "GRU")
    while len(gru.input) < 6:
        gru.input.append("")
    gru.input[5] = "hb"
    with pytest.raises(ValueError, match=r"GRU 'gru_l0' initial_h \('hb'\) cannot be computed"
                                         r".*Expand of shape \[1, 1000000, 1000000, 3\]"):
        sr.from_onnx(model)
    other = copy.deepcopy(model)
    node = next(n for n in other.graph.node if n.name == "huge")
    node.op_type = "Tile"
    with pytest.raises(ValueError, match=r"initial_h \('hb'\) is computed with \['Tile'\]"):
        sr.from_onnx(other)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_unbatched_export_with_learned_h0_imports_exactly(kind, dynamo):
    """Streaming users call modules unbatched: X (T, D), h0 (L, H). The graph input is then
    rank 2 (time, features), unsqueezed to (T, 1, D) before the first operator."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(2)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(3, 4, num_layers=2)
            self.h0 = torch.nn.Parameter(torch.randn(2, 4))
            self.c0 = torch.nn.Parameter(torch.randn(2, 4))
            self.head = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.rnn(x, (self.h0, self.c0) if kind == "LSTM"
                                      else self.h0)[0])
    m = M()
    x = torch.randn(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            model = torch.onnx.export(m, (x,), dynamo=True, input_names=["X"],
                                      verbose=False).model_proto
        else:
            f = io.BytesIO()
            torch.onnx.export(m, (x,), f, dynamo=False, input_names=["X"],
                              dynamic_axes={"X": {0: "T"}})
            model = onnx.load_from_string(f.getvalue())
    with torch.no_grad():
        ref = m(x).numpy()
    if dynamo and kind == "RNN":
        with pytest.raises(ValueError, match="unrolled"):
            sr.from_onnx(model)
        return
    net = sr.from_onnx(model)
    np.testing.assert_allclose(net.run(x.numpy()), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(net.initial_state[0], m.h0.detach().numpy())


def test_reset_state_checks_first():
    net, h, c = net_with_initial(sr.LSTM)
    s = net.new_state()
    net.step(np.ones(3), s)
    other = sr.LSTM(3, 5, 2).new_state()
    with pytest.raises(ValueError, match="does not fit this network"):
        net.reset_state(sr.LSTM(3, 5, 2, dtype="float64").new_state())
    b = net.new_states(2)
    net.step_many(np.ones((2, 3)), b)
    before = snapshot(b)
    with pytest.raises(ValueError):
        net.reset_state(b, [0, 5])
    assert_unchanged(before, b)
    with pytest.raises(TypeError, match="index is only for a StateBatch"):
        net.reset_state(s, [0])
    with pytest.raises(TypeError, match="State or StateBatch"):
        net.reset_state(other.h)
    gru_state = sr.GRU(3, 4, 2, dtype="float64").new_state()
    with pytest.raises(ValueError, match="does not fit"):
        net.reset_state(gru_state)
