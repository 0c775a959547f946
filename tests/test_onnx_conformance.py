"""The official ONNX backend node test cases for LSTM, GRU and RNN, through streamrnn.

The cases come from ``onnx.backend.test.case.node.collect_testcases`` (generated in memory:
no data folders): each is one operator whose weights ``W``, ``R`` (and ``B``, ``P``,
``initial_h``, ``initial_c``, ``sequence_lens``) are graph inputs, with inputs and expected
outputs computed by ONNX's own NumPy reference. streamrnn imports each with
``from_onnx(model, inputs={...})`` (``time_reversed=True`` for ``direction="reverse"``)
and must reproduce every expected output (``Y``, ``Y_h``, ``Y_c``) for every batch element,
float32 within 1e-5 relative; the same cases in float64 (the model's types switched to
double, expected outputs from ``onnx.reference.ReferenceEvaluator``) within 1e-12.

Every case runs; none is skipped. The GRU cases (ONNX's default ``linear_before_reset=0``)
and ``test_lstm_with_peepholes`` (also ``sequence_lens`` and ``initial_h``/``initial_c``
given as inputs) run through the cell variants ``GRU(reset_after=False)`` and
``LSTM(peepholes=True)``. ONNX Runtime is checked against streamrnn on the
cases it runs (it has no kernels for ``layout=1``: the three ``*_batchwise`` cases).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import streamrnn as sr

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # unrelated cases warn about casts while generated
    from onnx.backend.test.case.node import collect_testcases
    _ALL = collect_testcases(None)

CASES = {c.name: c for c in _ALL if any(k in c.name for k in ("lstm", "gru", "rnn"))}
NAMES = sorted(CASES)
# ONNX Runtime refuses layout=1 ("Batchwise recurrent operations (layout == 1) are not
# supported"): its agreement is checked on the other cases
ORT_NAMES = [n for n in NAMES if "batchwise" not in n]


def test_the_eighteen_cases_are_there():
    assert len(NAMES) == 18, NAMES


def _attrs(node: Any) -> Dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _split(net: Any, reverse: bool) -> "sr.LSTM | sr.GRU | sr.RNN":
    """One direction of a 1-layer bidirectional network as a unidirectional network (the
    same cell kind; weights copied through the layer views)."""
    kw: Dict[str, Any] = dict(dtype=net.dtype.name)
    if net.cell.startswith("rnn"):
        kw["nonlinearity"] = net.cell[4:]
    if hasattr(net, "reset_after"):
        kw["reset_after"] = net.reset_after
    if hasattr(net, "peepholes"):
        kw["peepholes"] = net.peepholes
    one = type(net)(net.input_size, net.hidden_size, **kw)
    assert one.cell == net.cell
    src = (net.layers_reverse if reverse else net.layers)[0]
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole"):
        if getattr(src, name, None) is not None:
            getattr(one.layers[0], name)[...] = getattr(src, name)
    return one


def streamrnn_outputs(case_model: Any, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The operator's outputs (by output name) computed by streamrnn, one batch element at a
    time, from the network imported with ``inputs=`` all non-data inputs."""
    node = case_model.graph.node[0]
    attrs = _attrs(node)
    direction = attrs.get("direction", b"forward").decode()
    layout = attrs.get("layout", 0)
    feeds = dict(feeds)
    X = feeds.pop("X")
    net = sr.from_onnx(case_model, inputs=feeds, time_reversed=direction == "reverse")
    Xs = X.transpose(1, 0, 2) if layout else X          # (T, batch, D)
    T, nb, _ = Xs.shape
    H = net.hidden_size
    nd = 2 if direction == "bidirectional" else 1
    assert net.bidirectional == (nd == 2)
    Y = np.zeros((T, nd, nb, H), X.dtype)
    Yh = np.zeros((nd, nb, H), X.dtype)
    Yc = np.zeros((nd, nb, H), X.dtype)
    for b in range(nb):
        x = np.ascontiguousarray(Xs[:, b])
        if nd == 2:
            y = net.run(x)
            Y[:, 0, b], Y[:, 1, b] = y[:, :H], y[:, H:]
            Yh[0, b], Yh[1, b] = y[-1, :H], y[0, H:]
            # the cell states are not outputs of run(): each direction as its own network
            for r, xs in ((0, x), (1, np.ascontiguousarray(x[::-1]))):
                one = _split(net, reverse=r == 1)
                s = one.new_state()
                yr = one.run(xs, s)
                np.testing.assert_array_equal(yr if r == 0 else yr[::-1],
                                              Y[:, r, b])  # the split is net itself
                if s.c is not None:
                    Yc[r, b] = s.c[-1]
        else:
            s = net.new_state()
            if direction == "reverse":
                y = net.run(np.ascontiguousarray(x[::-1]), s)[::-1]
            else:
                y = net.run(x, s)
            Y[:, 0, b] = y
            Yh[0, b] = s.h[-1]
            if s.c is not None:
                Yc[0, b] = s.c[-1]
    if layout:
        Y, Yh, Yc = Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
    names = list(node.output) + [""] * 3
    got = {}
    for name, val in zip(names[:3], (Y, Yh, Yc)):
        if name:
            got[name] = val
    return got


def _feeds(case: Any) -> Tuple[Dict[str, np.ndarray], List[np.ndarray]]:
    (ins, outs), = case.data_sets[:1]
    names = [i.name for i in case.model.graph.input]
    return dict(zip(names, ins)), list(outs)


def _compare(got: Dict[str, np.ndarray], model: Any, outs: List[np.ndarray], rtol: float,
             atol: float) -> float:
    worst = 0.0
    for out, exp in zip(model.graph.output, outs):
        g = got[out.name]
        assert g.shape == exp.shape, (out.name, g.shape, exp.shape)
        np.testing.assert_allclose(g, exp, rtol=rtol, atol=atol, err_msg=out.name)
        worst = max(worst, float(np.max(np.abs(g - exp) / np.maximum(np.abs(exp), atol))))
    return worst


@pytest.mark.parametrize("name", NAMES)
def test_official_case_float32(name):
    case = CASES[name]
    assert len(case.data_sets) >= 1
    for ins, expected in case.data_sets:
        feeds = dict(zip([i.name for i in case.model.graph.input], ins))
        got = streamrnn_outputs(case.model, feeds)
        _compare(got, case.model, list(expected), rtol=1e-5, atol=1e-6)


def _as_float64(model: Any) -> Any:
    m = copy.deepcopy(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    return m


@pytest.mark.parametrize("name", NAMES)
def test_official_case_float64(name):
    """The same operator in double precision, against ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator
    case = CASES[name]
    model = _as_float64(case.model)
    feeds, _ = _feeds(case)
    feeds = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()}
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = streamrnn_outputs(model, feeds)
    for v in got.values():
        assert v.dtype == np.float64
    _compare(got, model, list(expected), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ORT_NAMES)
def test_onnxruntime_agrees(name):
    """ONNX Runtime runs the same models (float32) to what streamrnn computes."""
    ort = pytest.importorskip("onnxruntime")
    case = CASES[name]
    feeds, _ = _feeds(case)
    sess = ort.InferenceSession(case.model.SerializeToString(),
                                providers=["CPUExecutionProvider"])
    expected = sess.run(None, feeds)
    got = streamrnn_outputs(case.model, feeds)
    _compare(got, case.model, list(expected), rtol=1e-5, atol=1e-6)


def test_weights_as_inputs_are_required_and_checked():
    case = CASES["test_lstm_defaults"]
    feeds, _ = _feeds(case)
    feeds.pop("X")
    with pytest.raises(ValueError, match=r"W \('W'\) is a graph input, not a constant: pass "
                                         r"its value with inputs=\{'W': array\}"):
        sr.from_onnx(case.model)
    with pytest.raises(ValueError, match=r"R \('R'\) is a graph input"):
        sr.from_onnx(case.model, inputs={"W": feeds["W"]})
    with pytest.raises(ValueError, match=r"inputs\['R'\] must have shape \[1, 12, 3\].*"
                                         r"got \(1, 12, 4\)"):
        sr.from_onnx(case.model, inputs={"W": feeds["W"], "R": np.zeros((1, 12, 4),
                                                                          np.float32)})
    with pytest.raises(TypeError, match=r"inputs\['R'\] must have dtype float32"):
        sr.from_onnx(case.model, inputs={"W": feeds["W"], "R": feeds["R"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"inputs\['Q'\]: the graph has no input"):
        sr.from_onnx(case.model, inputs={**feeds, "Q": feeds["W"]})
    with pytest.raises(TypeError, match="inputs must be a mapping"):
        sr.from_onnx(case.model, inputs=[feeds["W"]])
    net = sr.from_onnx(case.model, inputs=feeds)
    assert net.state_dict()["weight_ih_l0"].shape == (12, 2)


def test_reverse_needs_time_reversed():
    case = CASES["test_simple_rnn_reverse"]
    feeds, _ = _feeds(case)
    feeds.pop("X")
    with pytest.raises(ValueError, match="direction='reverse' reads the window backwards.*"
                                         r"time_reversed=True.*net.run\(X\[::-1\]\)\[::-1\]"):
        sr.from_onnx(case.model, inputs=feeds)
