"""The bad-input matrix: every public entry point, every kind of bad argument.

Each bad input must raise the right exception (TypeError for a wrong type or dtype,
ValueError for a wrong shape or value, a non-finite number, an unusable ``out``, a state of
another network kind, a bad stream index) with a message that names the argument, and after
every error the parameters and every state involved must be unchanged bit for bit.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import streamrnn as sr

from conftest import CELLS, DTYPES, assert_unchanged, make_net, named_params, snapshot

D, H, L = 3, 5, 2


def arg(name):
    """A regex that finds the argument's name as a whole word (case-sensitive: x vs X)."""
    return rf"(?<!\w){re.escape(name)}(?!\w)"


def raises(exc, name, fn, *objs):
    """fn() raises exc naming `name`; objs (nets, states, batches) are unchanged after."""
    before = snapshot(*objs)
    with pytest.raises(exc, match=arg(name)) as info:
        fn()
    assert_unchanged(before, *objs)
    return info.value


def warm_state(net, seed=0):
    s = net.new_state()
    rng = np.random.default_rng(seed)
    s.h[...] = rng.uniform(-0.5, 0.5, s.h.shape)
    if s.c is not None:
        s.c[...] = rng.uniform(-1, 1, s.c.shape)
    return s


def warm_batch(net, n=4, seed=0):
    b = net.new_states(n)
    rng = np.random.default_rng(seed)
    b.h[...] = rng.uniform(-0.5, 0.5, b.h.shape)
    if b.c is not None:
        b.c[...] = rng.uniform(-1, 1, b.c.shape)
    return b


@pytest.fixture(params=[(c, d) for c in CELLS for d in DTYPES],
                ids=[f"{c}-{d}" for c in CELLS for d in DTYPES])
def net(request):
    cell, dtype = request.param
    return make_net(cell, D, H, L, dtype=dtype, seed=1)


def other_dtype(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.float32


# =====================================================================================
# step: x
# =====================================================================================

def bad_x_values(net):
    dt = net.dtype
    od = other_dtype(dt)
    cases = [
        # (label, x, exception)
        ("too long", np.zeros(D + 1, dt), ValueError),
        ("too short", np.zeros(D - 1, dt), ValueError),
        ("empty", np.zeros(0, dt), ValueError),
        ("2-D", np.zeros((1, D), dt), ValueError),
        ("2-D transposed", np.zeros((D, 1), dt), ValueError),
        ("0-d", np.array(1.0, dt), ValueError),
        ("list too long", [0.0] * (D + 1), ValueError),
        ("nested list", [[0.0] * D], ValueError),
        ("scalar", 1.0, ValueError),
        ("other float dtype", np.zeros(D, od), TypeError),
        ("float16", np.zeros(D, np.float16), TypeError),
        ("int array", np.arange(D), TypeError),
        ("int32 array", np.arange(D, dtype=np.int32), TypeError),
        ("bool array", np.ones(D, bool), TypeError),
        ("bool list", [True] * D, TypeError),
        ("complex array", np.zeros(D, complex), TypeError),
        ("complex list", [1j] * D, TypeError),
        ("byte-swapped", np.zeros(D, np.dtype(dt).newbyteorder()), TypeError),
        ("string", "abc", TypeError),
        ("bytes", b"abc", TypeError),
        ("string list", ["1", "2", "3"], TypeError),
        ("None", None, TypeError),
        ("None in list", [1.0, None, 2.0], TypeError),
        ("dict", {"a": 1.0}, TypeError),
        ("object", object(), TypeError),
        ("NaN first", np.array([np.nan] + [0.0] * (D - 1), dt), ValueError),
        ("NaN last", np.array([0.0] * (D - 1) + [np.nan], dt), ValueError),
        ("inf", np.array([np.inf] + [0.0] * (D - 1), dt), ValueError),
        ("-inf", np.array([0.0] * (D - 1) + [-np.inf], dt), ValueError),
        ("NaN in list", [0.0, float("nan"), 0.0], ValueError),
        ("inf in list", [float("inf"), 0.0, 0.0], ValueError),
        ("int too large for any float", [0, 10 ** 400, 0], TypeError),
    ]
    if dt == np.float32:
        # a finite Python number that overflows float32 must not become an inf input
        cases.append(("overflowing list", [0.0, 1e39, 0.0], ValueError))
    return cases


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_step_bad_x(net):
    s = warm_state(net)
    bystander = warm_state(net, seed=9)
    for label, x, exc in bad_x_values(net):
        try:
            raises(exc, "x", lambda: net.step(x, s), net, s, bystander)
        except BaseException as e:  # name the failing case
            raise AssertionError(f"case {label!r}: {e}") from e


def test_step_bad_x_with_out_given_writes_nothing_to_out(net):
    s = warm_state(net)
    out = np.full(H, 7.0, net.dtype)
    x = np.array([0.0, np.nan, 0.0], net.dtype)
    raises(ValueError, "x", lambda: net.step(x, s, out=out), net, s)
    assert np.all(out == 7.0)


def test_step_accepts_harmless_variants(net):
    """Read-only, strided and list inputs of the right shape are fine (no error, same y)."""
    dt = net.dtype
    x = np.array([0.5, -1.0, 2.0], dt)
    ro = x.copy()
    ro.flags.writeable = False
    strided = np.zeros(2 * D, dt)[::2]
    strided[...] = x
    s0 = warm_state(net)
    y = net.step(x, s0.copy())
    for variant in (ro, strided, x.tolist(), tuple(x.tolist())):
        assert np.array_equal(net.step(variant, s0.copy()), y)


# =====================================================================================
# step: out
# =====================================================================================

def test_step_bad_out(net):
    dt = net.dtype
    s = warm_state(net)
    x = np.ones(D, dt)
    ro = np.zeros(H, dt)
    ro.flags.writeable = False
    cases = [
        ("other dtype", np.zeros(H, other_dtype(dt)), TypeError),
        ("int dtype", np.zeros(H, np.int64), TypeError),
        ("byte-swapped", np.zeros(H, np.dtype(dt).newbyteorder()), TypeError),
        ("list", [0.0] * H, TypeError),
        ("too long", np.zeros(H + 1, dt), ValueError),
        ("too short", np.zeros(H - 1, dt), ValueError),
        ("2-D", np.zeros((1, H), dt), ValueError),
        ("non-contiguous", np.zeros(2 * H, dt)[::2], ValueError),
        ("read-only", ro, ValueError),
        ("is the state's h row", s.h[0], ValueError),
        ("is the state's top h", s.h[-1], ValueError),
        ("overlaps the parameters", net.parameters()[3:3 + H], ValueError),
    ]
    if s.c is not None:
        cases.append(("is the state's c", s.c[1], ValueError))
    for label, out, exc in cases:
        try:
            raises(exc, "out", lambda: net.step(x, s, out=out), net, s)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e


def test_step_out_overlapping_state_partially(net):
    """out straddling the two layers' rows of h (flat view) also overlaps the state."""
    s = warm_state(net)
    flat_h = s.h.reshape(-1)
    assert np.shares_memory(flat_h, s.h)
    out = flat_h[2:2 + H]
    raises(ValueError, "out", lambda: net.step(np.ones(D, net.dtype), s, out=out), net, s)


# =====================================================================================
# step: state
# =====================================================================================

def mismatched_states(net):
    dt = net.dtype.name
    other_cell = {"lstm": "gru", "gru": "rnn_tanh", "rnn_tanh": "rnn_relu",
                  "rnn_relu": "lstm", "gru_reset_before": "gru",
                  "lstm_peephole": "lstm"}[net.cell]
    return [
        ("hidden size", make_net(net.cell, D, H + 1, L, dtype=dt).new_state()),
        ("layers", make_net(net.cell, D, H, L + 1, dtype=dt).new_state()),
        ("fewer layers", make_net(net.cell, D, H, 1, dtype=dt).new_state()),
        ("cell", make_net(other_cell, D, H, L, dtype=dt).new_state()),
        ("dtype", make_net(net.cell, D, H, L, dtype=other_dtype(dt)).new_state()),
    ]


def test_step_state_of_another_network_kind(net):
    x = np.ones(D, net.dtype)
    for label, s in mismatched_states(net):
        s.h[...] = 0.25
        if s.c is not None:
            s.c[...] = -0.25
        try:
            raises(ValueError, "state", lambda: net.step(x, s), net, s)
            raises(ValueError, "state", lambda: net.run(x[None, :], s), net, s)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e


def test_step_state_wrong_type(net):
    x = np.ones(D, net.dtype)
    b = warm_batch(net)
    for bad in (None, b, "state", (np.zeros((L, H)),), np.zeros((L, H), net.dtype)):
        raises(TypeError, "state", lambda: net.step(x, bad), net, b)
        if bad is not None:     # run(X) without a state runs from zeros (test_habits_*)
            raises(TypeError, "state", lambda: net.run(x[None, :], bad), net, b)


def test_state_of_another_network_with_the_same_sizes_works(net):
    """Allowed: a state only depends on cell, layers, hidden size and dtype."""
    twin = make_net(net.cell, D, H, L, dtype=net.dtype.name, seed=77)
    other_in = make_net(net.cell, D + 4, H, L, output_size=2, dtype=net.dtype.name, seed=78)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, D)).astype(net.dtype)
    for donor in (twin, other_in):
        s_foreign = donor.new_state()
        s_own = net.new_state()
        assert np.array_equal(net.run(X, s_foreign), net.run(X, s_own))
        assert np.array_equal(s_foreign.h, s_own.h)
        assert np.array_equal(net.step(X[0], s_foreign), net.step(X[0], s_own))
    b = twin.new_states(3)
    assert np.array_equal(net.step_many(X[:3], b), net.step_many(X[:3], net.new_states(3)))


# =====================================================================================
# run
# =====================================================================================

def test_run_bad_X(net):
    dt = net.dtype
    s = warm_state(net)
    T = 6
    nan_last = np.zeros((T, D), dt)
    nan_last[-1, -1] = np.nan
    inf_last = np.zeros((T, D), dt)
    inf_last[-1, 0] = -np.inf
    nan_first = np.zeros((T, D), dt)
    nan_first[0, 1] = np.nan
    cases = [
        ("1-D", np.zeros(D, dt), ValueError),
        ("3-D", np.zeros((T, D, 1), dt), ValueError),
        ("wrong width", np.zeros((T, D + 1), dt), ValueError),
        ("transposed", np.zeros((D, T), dt), ValueError),
        ("other dtype", np.zeros((T, D), other_dtype(dt)), TypeError),
        ("int", np.zeros((T, D), np.int64), TypeError),
        ("bool", np.zeros((T, D), bool), TypeError),
        ("string", "abc", TypeError),
        ("None", None, TypeError),
        ("ragged", [[0.0] * D, [0.0] * (D - 1)], TypeError),
        ("NaN in the last row", nan_last, ValueError),
        ("-inf in the last row", inf_last, ValueError),
        ("NaN in the first row", nan_first, ValueError),
    ]
    for label, X, exc in cases:
        try:
            raises(exc, "X", lambda: net.run(X, s), net, s)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e


def test_run_nonfinite_last_row_writes_nothing(net):
    """X is checked in full before the first step: not the state, not a single row of out."""
    dt = net.dtype
    s = warm_state(net)
    T = 9
    X = np.random.default_rng(0).standard_normal((T, D)).astype(dt)
    X[-1, 1] = np.inf
    out = np.full((T, H), 3.5, dt)
    raises(ValueError, "X", lambda: net.run(X, s, out=out), net, s)
    assert np.all(out == 3.5)


def test_run_bad_out(net):
    dt = net.dtype
    s = warm_state(net)
    T = L  # so that s.h itself has the shape of out
    X = np.ones((T, D), dt)
    ro = np.zeros((T, H), dt)
    ro.flags.writeable = False
    cases = [
        ("other dtype", np.zeros((T, H), other_dtype(dt)), TypeError),
        ("list", [[0.0] * H] * T, TypeError),
        ("too many rows", np.zeros((T + 1, H), dt), ValueError),
        ("1-D", np.zeros(T * H, dt), ValueError),
        ("non-contiguous", np.zeros((T, 2 * H), dt)[:, ::2], ValueError),
        ("Fortran order", np.zeros((T, H), dt, order="F"), ValueError),
        ("read-only", ro, ValueError),
        ("is the state's h", s.h, ValueError),
    ]
    if s.c is not None:
        cases.append(("is the state's c", s.c, ValueError))
    for label, out, exc in cases:
        try:
            raises(exc, "out", lambda: net.run(X, s, out=out), net, s)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e


# =====================================================================================
# new_states, batch[i]
# =====================================================================================

def test_new_states_bad_n(net):
    for n, exc in [(0, ValueError), (-1, ValueError), (-100, ValueError), (1.5, TypeError),
                   (2.0, TypeError), (True, TypeError), (False, TypeError), ("3", TypeError),
                   (None, TypeError), ([3], TypeError), (np.float64(3), TypeError)]:
        raises(exc, "n", lambda: net.new_states(n), net)
    assert len(net.new_states(np.int64(3))) == 3


def test_batch_getitem_bad_index(net):
    b = warm_batch(net, n=4)
    for i, exc in [(4, IndexError), (5, IndexError), (-5, IndexError), (1.0, TypeError),
                   ("0", TypeError), (True, TypeError), (None, TypeError),
                   (slice(0, 2), TypeError), (np.float64(0), TypeError)]:
        try:
            raises(exc, "index", lambda: b[i], net, b)
        except BaseException as e:
            raise AssertionError(f"case {i!r}: {e}") from e
    assert np.shares_memory(b[np.int64(3)].h, b.h[3]) and np.shares_memory(b[-4].h, b.h[0])


# =====================================================================================
# step_many
# =====================================================================================

def test_step_many_bad_X(net):
    dt = net.dtype
    n = 4
    b = warm_batch(net, n)
    nan_last = np.zeros((n, D), dt)
    nan_last[-1, -1] = np.nan
    cases = [
        ("too many rows", np.zeros((n + 1, D), dt), ValueError, None),
        ("too few rows", np.zeros((n - 1, D), dt), ValueError, None),
        ("1-D", np.zeros(D, dt), ValueError, None),
        ("wrong width", np.zeros((n, D + 1), dt), ValueError, None),
        ("rows != len(index)", np.zeros((3, D), dt), ValueError, [0, 1]),
        ("other dtype", np.zeros((n, D), other_dtype(dt)), TypeError, None),
        ("int", np.zeros((n, D), np.int32), TypeError, None),
        ("None", None, TypeError, None),
        ("NaN in the last row", nan_last, ValueError, None),
        ("inf with index", np.array([[0.0] * D, [np.inf] * D], dt), ValueError, [3, 0]),
    ]
    for label, X, exc, index in cases:
        try:
            raises(exc, "X", lambda: net.step_many(X, b, index=index), net, b)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e


def test_step_many_bad_index(net):
    dt = net.dtype
    n = 5
    b = warm_batch(net, n)
    X2 = np.ones((2, D), dt)
    cases = [
        ("== n", [0, n], ValueError),
        ("> n", [n + 3, 1], ValueError),
        ("negative", [-1, 2], ValueError),
        ("huge", [0, 2 ** 62], ValueError),
        ("repeated", [3, 3], ValueError),
        ("valid, unsorted (control)", np.array([4, 1], np.int64), None),
        ("float", np.array([0.0, 1.0]), TypeError),
        ("bool", [True, False], TypeError),
        ("string", ["0", "1"], TypeError),
        ("2-D", np.array([[0, 1]]), ValueError),
        ("0-d", np.int64(1), ValueError),
    ]
    X = X2
    for label, index, exc in cases:
        try:
            if exc is None:
                net.step_many(X, b.copy(), index=index)
                continue
            raises(exc, "index", lambda: net.step_many(X, b, index=index), net, b)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e
    # a repeat further down a longer index, after valid distinct entries
    X4 = np.ones((4, D), dt)
    raises(ValueError, "index", lambda: net.step_many(X4, b, index=[4, 0, 2, 0]), net, b)
    raises(ValueError, "index", lambda: net.step_many(X4, b, index=[4, 0, 2, 5]), net, b)
    # the batch still works after all those errors (no stale duplicate marks): streams that
    # appeared in rejected indexes can step again, and agree with single steps
    ref = b.copy()
    y = net.step_many(np.ones((3, D), dt), b, index=[0, 4, 3])
    for row, i in enumerate([0, 4, 3]):
        np.testing.assert_allclose(y[row], net.step(np.ones(D, dt), ref[i]),
                                   rtol=1e-5, atol=1e-6)


def test_step_many_bad_states(net):
    dt = net.dtype.name
    X = np.ones((3, D), net.dtype)
    s = warm_state(net)
    for bad in (None, s, "states", np.zeros((3, L, H), net.dtype)):
        raises(TypeError, "states", lambda: net.step_many(X, bad), net, s)
    other_cell = {"lstm": "gru", "gru": "lstm", "rnn_tanh": "rnn_relu",
                  "rnn_relu": "rnn_tanh", "gru_reset_before": "gru",
                  "lstm_peephole": "lstm"}[net.cell]
    for other in (make_net(net.cell, D, H + 1, L, dtype=dt),
                  make_net(net.cell, D, H, L + 1, dtype=dt),
                  make_net(other_cell, D, H, L, dtype=dt),
                  make_net(net.cell, D, H, L, dtype=other_dtype(dt))):
        b = warm_batch(other, 3)
        raises(ValueError, "states", lambda: net.step_many(X, b), net, b)


def test_step_many_bad_out(net):
    dt = net.dtype
    n = 3
    b = warm_batch(net, n)
    X = np.ones((n, D), dt)
    ro = np.zeros((n, H), dt)
    ro.flags.writeable = False
    cases = [
        ("other dtype", np.zeros((n, H), other_dtype(dt)), TypeError),
        ("wrong shape", np.zeros((n, H + 1), dt), ValueError),
        ("1-D", np.zeros(n * H, dt), ValueError),
        ("non-contiguous", np.zeros((n, 2 * H), dt)[:, ::2], ValueError),
        ("read-only", ro, ValueError),
        ("inside the batch's h", b.h.reshape(-1)[:n * H].reshape(n, H), ValueError),
        ("overlaps the parameters", net.parameters()[:n * H].reshape(n, H), ValueError),
    ]
    if b.c is not None:
        cases.append(("inside the batch's c", b.c.reshape(-1)[H:H + n * H].reshape(n, H),
                      ValueError))
    for label, out, exc in cases:
        try:
            raises(exc, "out", lambda: net.step_many(X, b, out=out), net, b)
        except BaseException as e:
            raise AssertionError(f"case {label!r}: {e}") from e


# =====================================================================================
# constructors
# =====================================================================================

CLASSES = {"LSTM": sr.LSTM, "GRU": sr.GRU, "RNN": sr.RNN}
SIZE_ARGS = ("input_size", "hidden_size", "num_layers", "output_size")


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("argname", SIZE_ARGS)
@pytest.mark.parametrize("value,exc", [
    (0, ValueError), (-1, ValueError), (-(2 ** 40), ValueError),
    (2.0, TypeError), (1.5, TypeError), (np.float32(3), TypeError),
    (True, TypeError), (False, TypeError), (np.bool_(True), TypeError),
    ("3", TypeError), ([3], TypeError), (1 + 0j, TypeError),
])
def test_constructor_bad_sizes(cls, argname, value, exc):
    kwargs = dict(input_size=2, hidden_size=3, num_layers=1, output_size=None)
    kwargs[argname] = value
    with pytest.raises(exc, match=arg(argname)):
        CLASSES[cls](**kwargs)


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("argname", ("input_size", "hidden_size", "num_layers"))
def test_constructor_none_size(cls, argname):
    kwargs = dict(input_size=2, hidden_size=3, num_layers=1)
    kwargs[argname] = None
    with pytest.raises(TypeError, match=arg(argname)):
        CLASSES[cls](**kwargs)


def test_constructor_too_large_size():
    # Regression: a size beyond the C int range (2**31) used to pass _check_size and then
    # raise OverflowError ("value too large to convert to int") from the Cython signature of
    # _Network._init_core instead of a ValueError naming the argument (fixed in 0421744).
    for cls in CLASSES.values():
        for argname in SIZE_ARGS:
            for big in (2 ** 31, 2 ** 64):
                kwargs = dict(input_size=2, hidden_size=3, num_layers=1, output_size=None)
                kwargs[argname] = big
                with pytest.raises(ValueError, match=arg(argname)):
                    cls(**kwargs)


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("dtype", ["int32", "int64", "float16", "complex128", "bool", "foo",
                                   np.int32, object, 3, ">f8" if np.little_endian else "<f8"])
def test_constructor_bad_dtype(cls, dtype):
    with pytest.raises(TypeError, match=arg("dtype")):
        CLASSES[cls](2, 3, dtype=dtype)


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.dtype("f8"), "f4"])
def test_constructor_good_dtype(cls, dtype):
    assert CLASSES[cls](2, 3, dtype=dtype).parameters().dtype == np.dtype(dtype)


@pytest.mark.parametrize("cls", list(CLASSES))
@pytest.mark.parametrize("seed,exc", [(-1, ValueError), (1.5, TypeError), ("1", TypeError),
                                      (True, TypeError), ([1], TypeError)])
def test_constructor_bad_seed(cls, seed, exc):
    with pytest.raises(exc, match=arg("seed")):
        CLASSES[cls](2, 3, seed=seed)


@pytest.mark.parametrize("nl", ["sigmoid", "TANH", "Relu", "", "rnn_tanh", None, 1])
def test_rnn_unknown_nonlinearity(nl):
    exc = ValueError if isinstance(nl, str) else (ValueError, TypeError)
    with pytest.raises(exc, match=arg("nonlinearity")):
        sr.RNN(2, 3, nonlinearity=nl)


def test_default_dtype_is_float32_and_nonlinearities():
    assert sr.LSTM(2, 3).parameters().dtype == np.float32
    assert sr.RNN(2, 3).cell == "rnn_tanh"
    assert sr.RNN(2, 3, nonlinearity="relu").cell == "rnn_relu"


def test_states_cannot_be_constructed_directly():
    with pytest.raises(TypeError):
        sr.State()
    with pytest.raises(TypeError):
        sr.StateBatch()


# =====================================================================================
# load_state_dict
# =====================================================================================

def last_key(net):
    return list(named_params(net))[-1]


@pytest.fixture(params=[None, 2], ids=["no-head", "head"])
def head_net(request, net):
    if request.param is None:
        return net
    return make_net(net.cell, D, H, L, output_size=request.param, dtype=net.dtype.name,
                    seed=2)


def test_load_state_dict_not_a_mapping(net):
    s = warm_state(net)
    sd = named_params(net)
    for bad in (None, [], list(sd.items()), np.zeros(3), "weights", 3):
        raises(TypeError, "state_dict", lambda: net.load_state_dict(bad), net, s)


def test_load_state_dict_bad_values(head_net):
    net = head_net
    s = warm_state(net)
    keys = list(named_params(net))
    first, last = keys[0], keys[-1]
    top = f"weight_peephole_l{L - 1}" if net.cell == "lstm_peephole" else f"bias_hh_l{L - 1}"
    assert last == ("head.bias" if net.output_size else top)

    def mutate(key, fn):
        sd = {k: v + 0.5 for k, v in named_params(net).items()}  # every value differs
        sd[key] = fn(sd[key])
        return sd

    def with_nan(a):
        a = a.astype(np.float64)
        a.reshape(-1)[-1] = np.nan
        return a

    def with_inf(a):
        a = a.copy()
        a.reshape(-1)[0] = np.inf
        return a

    cases = [
        ("wrong shape", lambda a: np.zeros(a.size + 1, a.dtype), ValueError),
        ("transposed/flattened", lambda a: a.reshape(-1)[None, :], ValueError),
        ("int dtype", lambda a: np.zeros(a.shape, np.int64), TypeError),
        ("bool dtype", lambda a: np.zeros(a.shape, bool), TypeError),
        ("complex dtype", lambda a: a.astype(complex), TypeError),
        ("string", lambda a: "abc", TypeError),
        ("None", lambda a: None, TypeError),
        ("NaN", with_nan, ValueError),
        ("inf", with_inf, ValueError),
    ]
    for key in (first, last):
        for label, fn, exc in cases:
            sd = mutate(key, fn)
            try:
                raises(exc, key, lambda: net.load_state_dict(sd), net, s)
            except BaseException as e:
                raise AssertionError(f"key {key!r}, case {label!r}: {e}") from e


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_load_state_dict_value_overflowing_float32():
    """A float64 value too large for a float32 network would become inf on conversion.
    The loaded weights must stay finite: the load must raise and change nothing."""
    # Regression: load_state_dict used to check np.isfinite on the given value only *before*
    # converting it to the network's dtype, so a float64 1e39 (finite) was loaded into a
    # float32 network as inf (fixed in 0421744).
    for cell in CELLS:
        net = make_net(cell, D, H, L, output_size=2, dtype="float32", seed=1)
        s = warm_state(net)
        sd = {k: v.astype(np.float64) for k, v in named_params(net).items()}
        key = last_key(net)
        sd[key][0] = 1e39
        raises(ValueError, key, lambda: net.load_state_dict(sd), net, s)
        assert np.all(np.isfinite(net.parameters()))


def test_load_state_dict_missing_and_extra_keys(head_net):
    net = head_net
    s = warm_state(net)
    keys = list(named_params(net))
    for key in (keys[0], keys[-1]):
        sd = {k: v + 0.5 for k, v in named_params(net).items()}
        del sd[key]
        raises(ValueError, key, lambda: net.load_state_dict(sd), net, s)
    for extra in ("weight_ih_l9", "head.weight" if not net.output_size else "head.scale",
                  "bias_ih_l0 ", "zzz_last"):
        sd = {k: v + 0.5 for k, v in named_params(net).items()}
        sd[extra] = np.zeros(3, net.dtype)
        raises(ValueError, extra.strip(), lambda: net.load_state_dict(sd), net, s)
    # a non-string key
    sd = {k: v + 0.5 for k, v in named_params(net).items()}
    sd[0] = np.zeros(3)
    raises(ValueError, "unexpected", lambda: net.load_state_dict(sd), net, s)
    raises(ValueError, "state_dict", lambda: net.load_state_dict({}), net, s)


def test_load_state_dict_good_after_errors(head_net):
    """After all errors, a good load still works and is complete."""
    net = head_net
    sd = {k: (v + 0.25).astype(np.float64) for k, v in named_params(net).items()}
    bad = dict(sd)
    bad[last_key(net)] = np.full(bad[last_key(net)].shape, np.nan)
    with pytest.raises(ValueError):
        net.load_state_dict(bad)
    net.load_state_dict(sd)
    for k, v in named_params(net).items():
        assert np.array_equal(v, sd[k].astype(net.dtype)), k
