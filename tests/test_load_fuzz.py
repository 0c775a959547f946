"""Hostile checkpoint files: truncated at every length, every bit flipped, random byte
mutations (hypothesis), structure-aware mutations that get past the checksums (header
values replaced, array contents changed and re-signed), crafted headers (huge arrays, huge
header length, JSON bombs, non-UTF-8, wrong version, wrong type). Every file either gives a
clean ``sr.FileFormatError`` naming the path (``TypeError`` for a wrong ``expect``) or loads
into an object that works; the loader never allocates what a header claims before checking
it against the file's size (tracemalloc peak stays small) and never hangs.

Complements tests/test_io.py (which checks the specific messages). STREAMRNN_LONG=1 runs
20x more examples; tests/fuzz/fuzz_load.py is the atheris harness."""
from __future__ import annotations

import json
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamrnn as sr
from streamrnn import io as srio

from _figures import long_run, record
from _hostile_files import exercise, join, split, valid_files

SCALE = 20 if long_run() else 1
FUZZ = settings(max_examples=600 * SCALE, deadline=None, derandomize=False,
                suppress_health_check=list(HealthCheck))
COUNT = {"raw": 0, "structured": 0}


_FILES = {}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Valid files of every type (bytes by name); also kept in _FILES for the hypothesis
    tests, so that falsifying examples do not print them."""
    if not _FILES:
        _FILES.update(valid_files(tmp_path_factory.mktemp("valid")))
    return _FILES


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile") / "x.srnn"


def load_clean(path, raw, check=None):
    """Write raw, load: FileFormatError naming the path, or an object that passes
    check(obj) and then works."""
    path.write_bytes(raw)
    try:
        obj = sr.load(path)
    except sr.FileFormatError as e:
        assert str(path) in str(e)
        return None
    if check is not None:
        check(obj)
    exercise(obj)
    return obj


def test_truncated_at_every_length(files, scratch):
    n = 0
    rng = np.random.default_rng(0)
    for name, raw in files.items():
        if len(raw) < 4000 or long_run():
            lengths = range(len(raw))
        else:   # every length in the prefix and the header, then a sample of the data
            lengths = list(range(1024)) + sorted(rng.integers(1024, len(raw), 400))
        for k in lengths:
            scratch.write_bytes(raw[:k])
            with pytest.raises(sr.FileFormatError, match="truncated|empty|bad magic"):
                sr.load(scratch)
            n += 1
    record("truncations refused", n)


def test_every_byte_flipped(files, scratch):
    """Each byte of small files, one bit flipped (the bit rotates with the position): an
    error, except in padding (zeros nobody reads), where the object must be unchanged."""
    n = 0
    for name in ("rnn", "state", "trainer", "lstm32", "seq2seq"):
        raw = files[name]
        scratch.write_bytes(raw)
        ref = sr.load(scratch)
        for pos in range(len(raw)):
            b = bytearray(raw)
            b[pos] ^= 1 << (pos % 8)
            scratch.write_bytes(bytes(b))
            n += 1
            try:
                obj = sr.load(scratch)
            except sr.FileFormatError:
                continue
            assert raw[pos] == 0, f"{name}: undetected change at byte {pos}"
            assert same(obj, ref)
    record("single-bit flips detected", n)


def same(a, b):
    if isinstance(a, (sr.LSTM, sr.GRU, sr.RNN)):
        return a.parameters().tobytes() == b.parameters().tobytes()
    if isinstance(a, sr.OnlineTrainer):
        sa, sb = a._snapshot(), b._snapshot()
        return sa["counters"] == sb["counters"] and all(
            (sa[k] is None and sb[k] is None) or sa[k].tobytes() == sb[k].tobytes()
            for k in ("h", "c", "ring", "tags", "m1", "m2"))
    if isinstance(a, (sr.SequenceTrainer, sr.Seq2Seq)):
        nets = ((a.net, b.net) if isinstance(a, sr.SequenceTrainer)
                else ((a.encoder, b.encoder), (a.decoder, b.decoder)))
        pairs = [nets] if isinstance(a, sr.SequenceTrainer) else list(nets)
        sa, sb = a._upd._snapshot(), b._upd._snapshot()
        return (all(same(x, y) for x, y in pairs) and sa["counters"] == sb["counters"]
                and sa["m1"].tobytes() == sb["m1"].tobytes()
                and sa["m2"].tobytes() == sb["m2"].tobytes())
    return a.h.tobytes() == b.h.tobytes()


# ------------------------------------------------------------------ random byte mutations
names = st.sampled_from(["forecaster", "forecaster_per_key", "trainer", "trainer_xent", "rnn",
                         "lstm32", "state", "batch", "seq_trainer", "seq2seq"])
ops = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "cut", "append"]),
                         st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
               min_size=1, max_size=4)


def mutate(raw, oplist):
    b = bytearray(raw)
    for op, where, val in oplist:
        i = int(where * max(len(b), 1))
        if op == "flip" and b:
            b[i] ^= val or 1
        elif op == "set" and b:
            b[i] = val
        elif op == "insert":
            b[i:i] = bytes([val]) * (1 + val % 9)
        elif op == "delete" and b:
            del b[i:i + 1 + val % 9]
        elif op == "cut":
            del b[i:]
        elif op == "append":
            b += bytes([val]) * (1 + val)
    return bytes(b)


@FUZZ
@given(name=names, oplist=ops)
@pytest.mark.filterwarnings("ignore")
@pytest.mark.usefixtures("files")
def test_random_byte_mutations(scratch, name, oplist):
    files = _FILES
    raw = mutate(files[name], oplist)
    COUNT["raw"] += 1
    ref_path = scratch.with_name("ref.srnn")
    ref_path.write_bytes(files[name])
    ref = sr.load(ref_path)

    def check(obj):
        # only changes nobody reads (padding) can pass: the object is the original
        if not isinstance(obj, sr.Forecaster):
            assert same(obj, ref)
    load_clean(scratch, raw, check)


# ------------------------------------------- structure-aware mutations (re-signed)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
    | st.sampled_from([0, 1, 2, 3, -1, 10 ** 9, 2 ** 31, 2 ** 63, 2 ** 64])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "lstm", "gru", "rnn_tanh", "float32", "float64", "<f4", "<f8", "<i8",
                       "|O", "sgd", "adam", "mse", "cross_entropy", "per_key", "shared",
                       "LSTM", "Forecaster", "OnlineTrainer", "State", "StateBatch"])
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=8)


def paths(o, pre=()):
    out = [pre]
    if isinstance(o, dict):
        for k, v in o.items():
            out += paths(v, pre + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += paths(v, pre + (i,))
    return out


def set_path(o, path, value):
    if not path:
        return value
    cur = o
    for k in path[:-1]:
        cur = cur[k]
    if value is _DELETE:
        if isinstance(cur, dict):
            del cur[path[-1]]
        else:
            cur.pop(path[-1])
    else:
        cur[path[-1]] = value
    return o


_DELETE = object()


@FUZZ
@given(name=names, data=st.data())
@pytest.mark.usefixtures("files")
def test_structured_mutations(scratch, name, data):
    header, body = split(_FILES[name])
    body = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        kind = data.draw(st.sampled_from(["value", "value", "delete", "array_bytes"]))
        if kind == "array_bytes":
            arrs = header.get("arrays") if isinstance(header, dict) else None
            specs = [s for s in (arrs.values() if isinstance(arrs, dict) else [])
                     if isinstance(s, dict) and isinstance(s.get("nbytes"), int)
                     and s.get("nbytes", 0) > 0 and isinstance(s.get("offset"), int)]
            if specs and body:
                spec = data.draw(st.sampled_from(specs))
                i = spec["offset"] + data.draw(st.integers(0, spec["nbytes"] - 1))
                if i < len(body):
                    body[i] = data.draw(st.integers(0, 255))
            continue
        ps = paths(header)
        if kind == "delete" and len(ps) < 2:
            continue
        path = data.draw(st.sampled_from(ps[1:] if kind == "delete" else ps))
        value = _DELETE if kind == "delete" else data.draw(json_values)
        header = set_path(header, path, value)
    COUNT["structured"] += 1
    load_clean(scratch, join(header, bytes(body)))


@pytest.fixture(scope="module", autouse=True)
def _record_fuzz_counts():
    """The figures of the hypothesis tests, recorded after them (not a test: it asserts
    nothing)."""
    yield
    if COUNT["raw"]:
        record("random byte mutations", COUNT["raw"])
    if COUNT["structured"]:
        record("structure-aware mutations (re-signed)", COUNT["structured"])


# ------------------------------------------------------------------ crafted files
def peak_during(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def crafted_cases(files):
    h, body = split(files["forecaster"])
    cases = {}

    def edit(fn):
        hh = json.loads(json.dumps(h))
        fn(hh)
        return join(hh, body)

    def huge_ring(hh):
        spec = hh["arrays"]["streams.ring.g"]
        spec["shape"], spec["nbytes"] = [2, 10 ** 8, 10 ** 4], 8 * 2 * 10 ** 12
    cases["array claims 16 TB"] = edit(huge_ring)

    def huge_consistent(hh):
        hh["data_size"] = 10 ** 15
    cases["data section claims 1 PB"] = edit(huge_consistent)

    def many_streams(hh):
        hh["meta"]["keys"] = list(range(10 ** 5))
    cases["100000 streams claimed, arrays for 2"] = edit(many_streams)

    def net_sizes(hh):
        hh["meta"]["net"].update(hidden_size=10 ** 9, num_layers=10 ** 12)
        hh["meta"]["settings"].update(hidden_size=10 ** 9, num_layers=10 ** 12)
    cases["network of 10^12 layers"] = edit(net_sizes)

    def k2(hh):
        hh["meta"]["settings"]["k2"] = 10 ** 9
    cases["k2 = 10^9"] = edit(k2)
    cases["JSON bomb (nesting 10^6)"] = join(None, body, hbytes=b"[" * 10 ** 6 + b"]" * 10 ** 6)
    cases["JSON bomb in meta"] = join(None, body, hbytes=json.dumps(h).replace(
        '"meta": {', '"meta": {"x": ' + "[" * 200000 + "]" * 200000 + ", ", 1).encode())
    cases["non-UTF-8 header"] = join(None, body, hbytes=b'{"format": "\xff\xfe"}')
    cases["header is a list"] = join([1, 2, 3], body)
    cases["header is a number"] = join(None, body, hbytes=b"1e999999")
    cases["header with a 10^5-digit integer"] = join(None, body,
                                                     hbytes=b'{"data_size": ' + b"9" * 10 ** 5
                                                     + b"}")
    # scaler statistics (n, mean, var) rows that are finite but impossible: the next
    # learn_one would take sqrt of a negative variance or overflow (found by the fuzzer)
    # (this file's forecaster has no features, so streams.sx is empty; same check)
    for arr, row, value in (("streams.sy", 2, -1.0), ("streams.sd", 0, -3.0),
                            ("streams.sd", 2, -0.5), ("streams.sy", 1, 1e300),
                            ("streams.sy", 2, 1e305)):
        spec = h["arrays"][arr]
        a = np.frombuffer(body, dtype=spec["dtype"], count=spec["nbytes"] // 8,
                          offset=spec["offset"]).reshape(spec["shape"]).copy()
        a[0, row] = value
        b = bytearray(body)
        b[spec["offset"]:spec["offset"] + spec["nbytes"]] = a.tobytes()
        cases[f"{arr} row {row} = {value:g}"] = join(json.loads(json.dumps(h)), bytes(b))
    raw = bytearray(files["forecaster"])
    struct.pack_into("<Q", raw, 16, 2 ** 63)
    cases["header length 2^63"] = bytes(raw)
    raw = bytearray(files["forecaster"])
    struct.pack_into("<Q", raw, 16, len(raw))
    cases["header length past the end"] = bytes(raw)
    for v in (0, 2, 2 ** 32 - 1):
        raw = bytearray(files["forecaster"])
        struct.pack_into("<I", raw, 8, v)
        cases[f"version {v}"] = bytes(raw)
    cases["PNG magic"] = b"\x89PNG\r\n\x1a\n" + files["forecaster"][8:]
    cases["text-mode transfer (CRLF)"] = files["forecaster"].replace(b"\r\n", b"\n")
    cases["empty"] = b""
    cases["only the magic"] = srio.MAGIC
    return cases


def test_crafted_files_refused_with_small_memory(files, scratch):
    cases = crafted_cases(files)
    for label, raw in cases.items():
        scratch.write_bytes(raw)

        def attempt():
            with pytest.raises(sr.FileFormatError) as e:
                sr.load(scratch)
            assert str(scratch) in str(e.value), label
        peak = peak_during(attempt)
        # the loader may hold the file (header) in memory a few times, never what the
        # header claims
        assert peak < 16 * len(raw) + 4_000_000, (label, peak)
    record("crafted hostile files refused", len(cases))


def test_wrong_type_for_every_pair(files, scratch):
    kinds = {"forecaster": sr.Forecaster, "trainer": sr.OnlineTrainer, "rnn": sr.RNN,
             "lstm32": sr.LSTM, "state": sr.State, "batch": sr.StateBatch,
             "seq_trainer": sr.SequenceTrainer, "seq2seq": sr.Seq2Seq}
    n = 0
    for name, cls in kinds.items():
        scratch.write_bytes(files[name])
        assert isinstance(sr.load(scratch, cls), cls)
        for other_name, other in kinds.items():
            if other is not cls:
                with pytest.raises(TypeError, match="expected a"):
                    sr.load(scratch, other)
                n += 1
    with pytest.raises(TypeError):
        sr.load(scratch, sr.GRU)
    record("wrong-type loads refused", n)


def test_partial_and_temp_files_are_not_checkpoints(files, tmp_path):
    """What an interrupted save leaves (a prefix of the file, under the temporary name) is
    never loadable."""
    raw = files["trainer"]
    for k in np.linspace(0, len(raw) - 1, 40).astype(int):
        tmp = tmp_path / f".ckpt.srnn.{k}.tmp"
        tmp.write_bytes(raw[:k])
        with pytest.raises(sr.FileFormatError):
            sr.load(tmp)
