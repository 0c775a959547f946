"""Shared test configuration: hypothesis profiles and small helpers.

Hypothesis profile: set ``STREAMRNN_HYPOTHESIS_PROFILE`` to ``dev`` (default: few examples,
quick local runs) or ``ci`` (more examples). Both have no deadline (the C core is fast, but
the NumPy reference and first-call overheads are not predictable enough for one).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=500, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("STREAMRNN_HYPOTHESIS_PROFILE", "dev"))

# The tests import streamrnn like any user: from wherever Python finds it. .ci/wheel (and
# cibuildwheel) copy tests/ out of the source tree and set STREAMRNN_EXPECT_INSTALLED=1,
# so that the installed wheel, never the checkout, is what is tested.
def _streamrnn_dir():
    try:
        import streamrnn
    except ImportError:  # not built: the tests that need it fail on their own
        return None
    return Path(streamrnn.__file__).resolve().parent


def pytest_configure(config):
    where = _streamrnn_dir()
    if (where is not None and os.environ.get("STREAMRNN_EXPECT_INSTALLED")
            and (where.parent / "src_c").is_dir()):
        raise pytest.UsageError(f"streamrnn was imported from a source tree ({where}), "
                                "expected an installed wheel")


def pytest_report_header(config):
    return (f"streamrnn imported from {_streamrnn_dir()}; required optional packages: "
            f"{sorted(REQUIRED) or 'none'}; missing files next to the tests: "
            f"{'skip' if _SKIP_MISSING_FILES else 'fail'}")


# Optional packages (torch, onnx, onnxruntime, keras, ...): a test that needs one skips when
# it is not installed, EXCEPT when STREAMRNN_REQUIRE names it (comma-separated; .ci/run sets
# it for the packages CI installs): then the test fails, so that a comparison suite cannot
# skip silently in CI. Tests use pytest.importorskip (patched below) or optional_missing().
REQUIRED = frozenset(m.strip() for m in os.environ.get("STREAMRNN_REQUIRE", "").split(",")
                     if m.strip())
_importorskip = pytest.importorskip


def _required_failure(modname, err):
    __tracebackhide__ = True
    pytest.fail(f"{modname} is required here (STREAMRNN_REQUIRE="
                f"{os.environ.get('STREAMRNN_REQUIRE')!r}) but cannot be imported: {err}",
                pytrace=False)


def importorskip(modname, *args, **kwargs):
    """pytest.importorskip, failing instead of skipping for a package in STREAMRNN_REQUIRE."""
    __tracebackhide__ = True      # skips and failures are reported at the caller's line
    if modname.split(".")[0] in REQUIRED:
        try:
            importlib.import_module(modname)
        except ImportError as e:
            _required_failure(modname, e)
    return _importorskip(modname, *args, **kwargs)


pytest.importorskip = importorskip


def optional_missing(module):
    """True when the optional package ``module`` is not installed (the caller skips);
    fails the test instead when STREAMRNN_REQUIRE names it."""
    __tracebackhide__ = True
    try:
        missing = importlib.util.find_spec(module) is None
    except ImportError:  # a missing parent package
        missing = True
    if missing and module.split(".")[0] in REQUIRED:
        _required_failure(module, "not installed")
    return missing


# Files next to the tests (README.md, examples/, benchmarks/): a test that needs one fails
# when it is missing, unless the run asks to skip such tests (STREAMRNN_SKIP_MISSING_FILES=1,
# set by .ci/wheel_test.py for the installed-wheel run, whose copy of the tests may lack them).
_SKIP_MISSING_FILES = os.environ.get("STREAMRNN_SKIP_MISSING_FILES") == "1"


def require_file(path, what=None):
    """Skip (installed-wheel run) or fail when ``path`` is not next to the tests."""
    __tracebackhide__ = True
    if not os.path.exists(path):
        msg = f"{what or path} is not available next to the tests ({path})"
        if _SKIP_MISSING_FILES:
            pytest.skip(msg, allow_module_level=True)
        pytest.fail(msg + "; only the installed-wheel run (STREAMRNN_SKIP_MISSING_FILES=1) "
                    "may skip it", pytrace=False)


CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "gru_reset_before", "lstm_peephole")
# the cells PyTorch has (the others are variants: no torch module, state_dict refuses)
TORCH_CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
DTYPES = ("float32", "float64")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3,
         "lstm_peephole": 4}


def make_net(cell, input_size, hidden_size, num_layers=1, output_size=None, dtype="float64",
             seed=None, bidirectional=False):
    """The public network of a cell name ('lstm', 'lstm_peephole', 'gru', 'gru_reset_before',
    'rnn_tanh', 'rnn_relu')."""
    import streamrnn as sr
    kw = dict(dtype=dtype, seed=seed, bidirectional=bidirectional)
    if cell in ("lstm", "lstm_peephole"):
        return sr.LSTM(input_size, hidden_size, num_layers, output_size,
                       peepholes=cell == "lstm_peephole", **kw)
    if cell in ("gru", "gru_reset_before"):
        return sr.GRU(input_size, hidden_size, num_layers, output_size,
                      reset_after=cell == "gru", **kw)
    if cell in ("rnn_tanh", "rnn_relu"):
        return sr.RNN(input_size, hidden_size, num_layers, output_size,
                      nonlinearity=cell[4:], **kw)
    raise ValueError(cell)


def named_params(net):
    """Copies of a network's parameters by name (``_core.param_layout``, PyTorch's names):
    what ``state_dict()`` returns, also for the variants whose ``state_dict`` refuses."""
    from streamrnn import _core
    flat = net.parameters()
    return {name: flat[off:off + int(np.prod(shape))].reshape(shape).copy()
            for name, off, shape in _core.param_layout(
                net.cell, net.input_size, net.hidden_size, net.num_layers, net.output_size,
                2 if net.bidirectional else 1)}


def window_ref(net):
    """The NumPy reference (streamrnn.reference.WindowNet) of a network, same weights."""
    from streamrnn import reference
    return reference.WindowNet(net.cell, net.input_size, net.hidden_size, net.num_layers,
                               net.output_size, net.num_directions, net.parameters().copy())


def tol(dtype):
    """(rtol, atol-per-unit-magnitude) for comparing the core with a float64 computation."""
    return (1e-12, 1e-12) if np.dtype(dtype) == np.float64 else (1e-5, 1e-5)


def assert_close(actual, desired, dtype, what=""):
    """assert_allclose with the dtype's tolerance; atol scaled to the magnitude of desired."""
    rtol, atol = tol(dtype)
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), desired, rtol=rtol,
                               atol=atol * scale, err_msg=what)


def _counters(c):
    return np.array([float(c[k]) for k in sorted(c)], dtype=np.float64)


def snapshot(*objs):
    """Copies of everything that must not change: nets' parameters, states' h/c, batches;
    for an OnlineTrainer also its network, state, ring, tags, optimizer moments and counters;
    for a SequenceTrainer or Seq2Seq its network(s), moments and counters."""
    out = []
    for o in objs:
        if hasattr(o, "_upd"):                      # SequenceTrainer, Seq2Seq
            nets = [o.encoder, o.decoder] if hasattr(o, "encoder") else [o.net]
            snap = o._upd._snapshot()
            out += [n.parameters().copy() for n in nets]
            out += [snap["m1"], snap["m2"], _counters(snap["counters"])]
        elif hasattr(o, "_snapshot") and hasattr(o, "net"):   # OnlineTrainer
            snap = o._snapshot()
            out.append(o.net.parameters().copy())
            out += [snap[k] for k in ("h", "c", "ring", "tags", "m1", "m2")]
            out.append(_counters(snap["counters"]))
        elif hasattr(o, "parameters"):
            out.append(o.parameters().copy())
        else:
            out.append(o.h.copy())
            out.append(None if o.c is None else o.c.copy())
    return out


def assert_unchanged(before, *objs):
    """Bit-for-bit equality with a snapshot() of the same objects."""
    after = snapshot(*objs)
    assert len(before) == len(after)
    for b, a in zip(before, after):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and a.shape == b.shape
            # compare bytes: equal even for -0.0 vs 0.0 differences, which must not occur
            assert a.tobytes() == b.tobytes(), "an object changed after an error"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
