"""PyFlink job tests (mini-cluster): equivalence with plain per-key Forecasters, bad records."""
import math
import os
import random
import sys

import pytest

pytest.importorskip("pyflink")

import streamrnn as sr  # noqa: E402
from streamrnn import flink as srf  # noqa: E402
from pyflink.common import Types  # noqa: E402
from pyflink.datastream import StreamExecutionEnvironment  # noqa: E402
from pyflink.datastream.functions import MapFunction  # noqa: E402

SETTINGS = {"hidden_size": 4, "seed": 0, "k2": 4}
END = 10_000        # time stamps of the end-of-stream marker rows


def _records(n_keys=200, n_per=6, seed=0):
    rng = random.Random(seed)
    queues = {f"k{i}": [(t, 3 * math.sin(0.5 * t + i) + i % 5) for t in range(n_per)]
              for i in range(n_keys)}
    out = []
    while queues:                       # interleaved arrivals, per-key order kept
        k = rng.choice(sorted(queues))
        t, y = queues[k].pop(0)
        out.append((k, t, repr(y)))
        if not queues[k]:
            del queues[k]
    return out


def _env(par=2):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_python_executable(sys.executable)
    env.set_parallelism(par)
    return env


def _model(**kw):
    """A shared model trained in plain Python (sr.dumps bytes)."""
    m = sr.Forecaster(hidden_size=4, seed=1, k2=4, **kw)
    for t in range(60):
        m.learn_one(math.sin(0.3 * t) + 0.1 * (t % 4))
    return sr.dumps(m)


def _expected(recs, per_key_settings=None, model=None, horizon=1):
    """Independent reference, records in arrival order. per_key: one Forecaster per key fed
    only its records. shared: ONE frozen twin of the model (its settings with SGD(lr=0.0),
    so its weights never move) fed all records, key by key: with frozen weights every
    key's outputs are independent of the other keys' records."""
    exp, per = {}, {}
    twin = None if model is None else srf.frozen_twin(sr.loads(model))
    for k, t, y in recs:
        if twin is None:
            f = per.setdefault(k, sr.Forecaster(**per_key_settings))
            f.learn_one(float(y))
            v = f.forecast(horizon)[-1]
        else:
            twin.learn_one(float(y), key=k)
            v = twin.forecast(horizon, key=k)[-1]
        exp.setdefault(k, []).append((t, v))
    return exp


def test_job_equals_sequential_forecasters_and_bad_records_go_aside():
    recs = _records(n_per=12)
    # every kind of bad record (the validator's cases: tests/test_flink_records.py),
    # including the ones that used to raise out of process_element and fail the job
    bad = ["1,1.0", "kx,2,abc", ",3,2", "ky,4,inf", "kt,inf,2", "ku,1.5,2", "kv,5,1e400",
           "kw,6,1e300"]
    rows = [f"{k},{t},{y}" for k, t, y in recs[:100]] + bad \
        + [f"{k},{t},{y}" for k, t, y in recs[100:]]
    model, seasonal = _model(), _model(season=4)

    env = _env()
    ds = env.from_collection(rows, type_info=Types.STRING())
    out1, bad1 = srf.forecast_stream(ds, "per_key", settings=SETTINGS)
    out2, _ = srf.forecast_stream(ds, "shared", model=model, uid="shared")
    out3, _ = srf.forecast_stream(ds, "shared", model=seasonal, uid="seasonal", horizon=2)
    tagged = out1.map(lambda r: ("p",) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .union(out2.map(lambda r: ("s",) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY())) \
        .union(out3.map(lambda r: ("m",) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY())) \
        .union(bad1.map(lambda r: ("b",) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY()))
    got = list(tagged.execute_and_collect())

    exp = {"p": _expected(recs, SETTINGS), "s": _expected(recs, model=model),
           "m": _expected(recs, model=seasonal, horizon=2)}
    gotm = {"p": {}, "s": {}, "m": {}}
    got_b = []
    for r in got:
        if r[0] == "b":
            got_b.append(r[1:])
        else:
            gotm[r[0]].setdefault(r[1], []).append((r[2], r[3]))
    for tag in exp:
        assert gotm[tag] == exp[tag], tag          # every key: same outputs, same order
    reasons = sorted(r for _, r in got_b)
    assert reasons == sorted(["not a (key, timestamp, value) record", "missing key",
                              "non-numeric value 'abc'", "infinite value 'inf'",
                              "non-integer timestamp 'inf'", "non-integer timestamp '1.5'",
                              "infinite value '1e400'",
                              "ValueError: y must have magnitude <= 1e+150, got 1e+300"])


class _KeyedState:
    """Stand-in for Flink's runtime context and keyed ValueStates: the driver sets ``key``
    before each record, as Flink does. ``store``: the forecaster state by key; ``last``: the
    last accepted timestamp by key."""

    def __init__(self):
        self.store, self.last, self.key = {}, {}, None

    def get_state(self, descriptor):
        return _Value(self, "store" if descriptor.name == "streamrnn" else "last")

    def snapshot(self):
        return dict(self.store), dict(self.last)

    def restore(self, snap):
        self.store, self.last = dict(snap[0]), dict(snap[1])


class _Value:
    def __init__(self, ks, which):
        self.ks, self.which = ks, which

    def value(self):
        return getattr(self.ks, self.which).get(self.ks.key)

    def update(self, v):
        getattr(self.ks, self.which)[self.ks.key] = bytes(v) if self.which == "store" else v


def _drive(fn, rows, ks=None):
    """Feed rows to fn (opened on first use) with keyed state ks (new if None)."""
    ks = _KeyedState() if ks is None else ks
    if fn._f is None:
        fn.open(ks)
    fn._state, fn._last = _Value(ks, "store"), _Value(ks, "last")
    out = []
    for r in rows:
        ks.key = srf._raw_key(r)
        out += list(fn.process_element(r, None))
    return out, ks


def _by_key(out):
    d = {}
    for k, t, v in out:
        d.setdefault(k, []).append((t, v))
    return d


@pytest.mark.parametrize("season", [None, 4])
@pytest.mark.parametrize("horizon", [1, 3])
def test_shared_mode_is_the_frozen_model_per_key(season, horizon):
    """The bug this catches: the shared mode's key state lacked the season history, the
    smoothing, the combination and conformal state (keys restarted them every record and
    a seasonal model crashed)."""
    recs = _records(n_keys=15, n_per=25, seed=3)
    model = _model(season=season)
    out, ks = _drive(srf.ForecastFunction("shared", model=model, horizon=horizon),
                     [f"{k},{t},{y}" for k, t, y in recs])
    assert _by_key(out) == _expected(recs, model=model, horizon=horizon)
    assert sorted(ks.store) == sorted({k for k, _, _ in recs})


def test_per_key_mode_is_a_forecaster_per_key():
    recs = _records(n_keys=10, n_per=20, seed=4)
    settings = {**SETTINGS, "season": 3}
    out, _ = _drive(srf.ForecastFunction("per_key", settings=settings),
                    [f"{k},{t},{y}" for k, t, y in recs])
    assert _by_key(out) == _expected(recs, settings)


@pytest.mark.parametrize("mode", ["per_key", "shared"])
def test_key_state_that_does_not_load_fails_the_job(mode):
    """A corrupted key state, or one of another model configuration, raises FileFormatError
    out of process_element (the job fails and restarts from its checkpoint) instead of
    restarting the key or sending its records to the bad-records output."""
    kw = {"settings": SETTINGS} if mode == "per_key" else {"model": _model()}
    other = {"settings": {**SETTINGS, "hidden_size": 5}} if mode == "per_key" \
        else {"model": _model(season=4)}
    rows = [f"a,{t},{math.sin(t)}" for t in range(5)]
    _, ks = _drive(srf.ForecastFunction(mode, **kw), rows)
    _, ks_other = _drive(srf.ForecastFunction(mode, **other), rows)
    good = ks.store["a"]
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 1
    for broken in (bytes(flipped), good[:-3], b"junk", ks_other.store["a"]):
        ks.store["a"] = broken
        fn = srf.ForecastFunction(mode, **kw)
        with pytest.raises(sr.FileFormatError, match="state of key 'a' cannot be restored"):
            _drive(fn, ["a,9,1.0"], ks)
        assert ks.store["a"] == broken             # nothing written
        assert "a" not in fn._f                    # nothing left in the worker
    ks.store["a"] = good
    out, _ = _drive(srf.ForecastFunction(mode, **kw), ["a,9,1.0"], ks)
    assert [r[:2] for r in out] == [("a", 9)]


class _FileSink:
    """Appends every output to a file per task (a test sink that survives the job)."""

    def __init__(self, d):
        self.d = d

    def tagged(self, tag):
        return _Write(self.d, tag)


class _Write(MapFunction):
    def __init__(self, d, tag):
        self.d, self.tag = d, tag

    def open(self, ctx):
        self.f = open(f"{self.d}/{self.tag}-{os.getpid()}-{id(self)}", "a")

    def map(self, r):
        self.f.write(f"{r[0]},{r[1]},{r[2]!r}\n")
        self.f.flush()
        return r


def test_stop_with_savepoint_and_restore_continue_exactly(tmp_path):
    """Run 1 reads a.csv and stops with a savepoint; run 2 restores it and reads b.csv:
    run 2's outputs equal the tail of an uninterrupted run (per-key forecasters in Python)."""
    import glob
    import os
    import time

    from pyflink.common import Configuration, Duration, WatermarkStrategy
    from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
    from pyflink.java_gateway import get_gateway

    d = str(tmp_path)
    os.makedirs(d + "/in")
    os.makedirs(d + "/out")
    rows = [(f"k{i % 7}", i, round(math.sin(0.4 * i) * 3 + i % 3, 6)) for i in range(120)]
    with open(d + "/in/a.csv", "w") as fh:
        fh.writelines(f"{k},{t},{y}\n" for k, t, y in rows[:60])
    sink = _FileSink(d + "/out")

    def job(tag, restore=None):
        conf = Configuration()
        if restore:
            conf.set_string("execution.savepoint.path", restore)
        env = StreamExecutionEnvironment.get_execution_environment(conf)
        env.set_python_executable(sys.executable)
        env.set_parallelism(2)
        env.enable_checkpointing(1000)
        src = FileSource.for_record_stream_format(StreamFormat.text_line_format(), d + "/in") \
            .monitor_continuously(Duration.of_millis(300)).build()
        ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "csv").uid("csv")
        out, _ = srf.forecast_stream(ds, "per_key", settings=SETTINGS)
        out.map(sink.tagged(tag), output_type=srf.OUTPUT_TYPE).uid("sink")
        return env.execute_async("restore-" + tag)

    def lines(tag):
        out = []
        for p in glob.glob(f"{d}/out/{tag}-*"):
            with open(p) as fh:
                out += [ln.split(",") for ln in fh.read().splitlines()]
        return out

    def wait(tag, n):
        # polls the sink files until n outputs are there; the clock only guards against a
        # hung job (no result depends on it)
        t0 = time.monotonic()
        while len(lines(tag)) < n:
            assert time.monotonic() - t0 < 600, f"run {tag}: {len(lines(tag))} of {n} outputs"
            time.sleep(0.2)

    c1 = job("one")
    wait("one", 60)
    # PyFlink 2.3's JobClient.stop_with_savepoint calls a Java signature that no longer
    # exists (no SavepointFormatType): call the Java client directly
    fmt = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    sp = c1._j_job_client.stopWithSavepoint(False, d + "/sp", fmt).get()
    # run 2's input directory holds only b.csv: a.csv is out of reach (Flink's own record of
    # processed files is not what this test is about), so its outputs can be counted exactly
    os.replace(d + "/in/a.csv", d + "/a.csv")
    with open(d + "/in/b.csv", "w") as fh:
        fh.writelines(f"{k},{t},{y}\n" for k, t, y in rows[60:])
    c2 = job("two", sp)
    wait("two", 60)
    # end of stream, per key: one marker row per key in a file written after b.csv was
    # consumed; a key's marker output comes after all of that key's earlier outputs, so once
    # every marker is out the count is final (60 + markers), with no waiting on a clock
    keys = sorted({k for k, _, _ in rows})
    with open(d + "/in/c.csv", "w") as fh:
        fh.writelines(f"{k},{END + i},0.0\n" for i, k in enumerate(keys))
    wait("two", 60 + len(keys))
    c2.cancel().result()
    two = lines("two")
    assert sorted(k for k, t, _ in two if int(t) >= END) == keys
    assert len(two) == 60 + len(keys)

    ref, exp = {}, {}
    for k, t, y in rows:
        f = ref.setdefault(k, sr.Forecaster(**SETTINGS))
        f.learn_one(float(repr(y)))
        exp[(k, t)] = f.forecast(1)[0]
    for tag, part in (("one", rows[:60]), ("two", rows[60:])):
        out = [(k, int(t), v) for k, t, v in lines(tag) if int(t) < END]
        got = {(k, t): float(v) for k, t, v in out}
        assert len(out) == len(part)
        assert sorted(got) == sorted((k, t) for k, t, _ in part)
        for kt, v in got.items():
            assert v == pytest.approx(exp[kt], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("mode", ["per_key", "shared"])
@pytest.mark.parametrize("live_keys", [0, 3, 1024])
def test_live_keys_never_change_outputs_even_after_a_rollback(mode, live_keys):
    """Keys stay live in the worker between records; a key whose Flink state is not what the
    worker wrote last (here: the state rolled back to a checkpoint while the worker lived
    on, as after a failure) is read back from the state. Refused records change nothing."""
    recs = _records(n_keys=8, n_per=16, seed=5)
    rows = [f"{k},{t},{y}" for k, t, y in recs]
    rows.insert(40, f"{recs[39][0]},99,1e300")          # refused: a bad record, no change
    kw = {"settings": SETTINGS} if mode == "per_key" else {"model": _model()}
    fn = srf.ForecastFunction(mode, live_keys=live_keys, **kw)
    first, ks = _drive(fn, rows[:60])
    checkpoint = ks.snapshot()
    second, _ = _drive(fn, rows[60:], ks)
    ks.restore(checkpoint)                              # failover: back to the checkpoint
    replay, _ = _drive(fn, rows[60:], ks)
    assert replay == second
    good = [r for r in first + second if r[0] is not srf.BAD_RECORDS]
    assert len(good) == len(recs)
    exp = _expected(recs, SETTINGS) if mode == "per_key" else _expected(recs, model=kw["model"])
    assert _by_key(good) == exp
    assert len(fn._f) <= live_keys


@pytest.mark.parametrize("in_order", [True, False])
def test_late_and_replayed_records_go_aside(in_order):
    """Order policy: a record whose timestamp is not after its key's last accepted one goes
    to the bad-records output and changes nothing; a refused record does not move the last
    timestamp. in_order=False learns from every record in arrival order."""
    good = [("a", t, math.sin(0.5 * t)) for t in range(8)] + [("b", 3, 1.0), ("b", 4, 2.0)]
    extra = [("a", 5, 9.0), ("a", 7, 9.0), ("b", 2, 9.0)]     # replays / late
    rows = [f"{k},{t},{y}" for k, t, y in good[:8]] + ["a,8,1e300"] \
        + [f"{k},{t},{y}" for k, t, y in good[8:] + extra] + ["a,8,0.25"]
    fn = srf.ForecastFunction("per_key", settings=SETTINGS, in_order=in_order)
    out, ks = _drive(fn, rows)
    aside = [r[1] for r in out if r[0] is srf.BAD_RECORDS]
    kept = [r for r in out if r[0] is not srf.BAD_RECORDS]
    accepted = good + ([] if in_order else extra) + [("a", 8, 0.25)]
    accepted.sort(key=lambda r: [f"{k},{t},{y}" for k, t, y in good + extra
                                 + [("a", 8, 0.25)]].index(f"{r[0]},{r[1]},{r[2]}"))
    assert _by_key(kept) == _expected(accepted, SETTINGS)
    reasons = {d: r for d, r in aside}
    assert reasons.pop("a,8,1e300").startswith("ValueError")
    if in_order:
        assert reasons == {
            "a,5,9.0": "late or replayed: timestamp 5, the key's last is 7",
            "a,7,9.0": "late or replayed: timestamp 7, the key's last is 7",
            "b,2,9.0": "late or replayed: timestamp 2, the key's last is 4"}
        assert ks.last == {"a": 8, "b": 4}
    else:
        assert reasons == {}
