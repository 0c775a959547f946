"""PyFlink job tests (mini-cluster): equivalence with plain Forecasters in every mode,
record-at-a-time and micro-batched, thousands of keys through PyFlink's small caches, bad and
late records, recovery after an injected failure, stop with a savepoint and rescale, the
shared model learning across a restart, thread mode refused. The state engine alone:
tests/test_flink_state.py."""
import glob
import math
import os
import sys
import time

import pytest

pytest.importorskip("pyflink")

import streamrnn as sr  # noqa: E402
from streamrnn import _flink_state as fs  # noqa: E402
from streamrnn import flink as srf  # noqa: E402
from pyflink.common import Configuration, Types  # noqa: E402
from pyflink.datastream import StreamExecutionEnvironment  # noqa: E402
from pyflink.datastream.functions import FlatMapFunction, MapFunction  # noqa: E402

from test_flink_state import SETTINGS, _decode, _expected, _model, _records  # noqa: E402

END = 10_000        # time stamps of the end-of-stream marker rows


def _env(par=2, conf=None):
    c = Configuration()
    for k, v in (conf or {}).items():
        c.set_string(k, str(v))
    env = StreamExecutionEnvironment.get_execution_environment(c)
    env.set_python_executable(sys.executable)
    env.set_parallelism(par)
    return env


def _tagged(stream, tag, batched=False):
    if batched:
        return stream.flat_map(lambda b: [(tag,) + tuple(r) for r in b],
                               output_type=Types.PICKLED_BYTE_ARRAY())
    return stream.map(lambda r: (tag,) + tuple(r), output_type=Types.PICKLED_BYTE_ARRAY())


def _split(got):
    out = {}
    for r in got:
        out.setdefault(r[0], []).append(r[1:])
    return out


def _by_key(rows):
    d = {}
    for k, t, v in rows:
        d.setdefault(k, []).append((t, v))
    return d


def test_jobs_equal_plain_forecasters_in_every_mode_and_bad_records_go_aside():
    """One job, parallelism 2, bundles of 20 records: per-key, frozen shared (seasonal,
    horizon 2), learning shared, and micro-batched per-key and learning shared; every key's
    outputs, in order, are those of the independent plain reference; every bad record of the
    validator's kinds, a late record and a refused value go to the side output."""
    recs = _records(n_keys=40, n_per=10)
    bad = ["1,1.0", "kx,2,abc", ",3,2", "ky,4,inf", "kt,inf,2", "ku,1.5,2", "kv,5,1e400",
           "kw,6,1e300"]
    k0 = recs[0].split(",")[0]
    late = k0 + ",0,1.0"            # timestamp 0 again: refused (the key's last is later)
    last0 = max(int(r.split(",")[1]) for r in recs[:100] if r.split(",")[0] == k0)
    rows = recs[:100] + bad + [late] + recs[100:]
    model, seasonal = _model(), _model(season=4)
    batches = ["\n".join(rows[i:i + 37]) for i in range(0, len(rows), 37)]

    env = _env(2, {"python.fn-execution.bundle.size": 20})
    ds = env.from_collection(rows, type_info=Types.STRING())
    bs = env.from_collection(batches, type_info=Types.STRING())
    p, pbad = srf.forecast_stream(ds, "per_key", settings=SETTINGS, shards=16)
    # (an hour's state TTL: Flink's TTL state in the way, no key expires during the job)
    m, _ = srf.forecast_stream(ds, "shared", model=seasonal, uid="seasonal", horizon=2,
                               state_ttl_ms=3_600_000)
    s, _ = srf.forecast_stream(ds, "shared", model=model, learn=True, uid="learn",
                               shards=16)
    bp, bpbad = srf.forecast_batches(bs, "per_key", settings=SETTINGS, uid="bp")
    bl, _ = srf.forecast_batches(bs, "shared", model=model, learn=True, uid="bl",
                                 shards=16)
    tagged = _tagged(p, "p").union(_tagged(m, "m"), _tagged(s, "s"),
                                   _tagged(bp, "bp", True), _tagged(bl, "bl", True),
                                   _tagged(pbad, "b"), _tagged(bpbad, "bb"))
    got = _split(tagged.execute_and_collect())

    exp_p = _expected(recs)[0]
    assert _by_key(got["p"]) == exp_p
    assert _by_key(got["bp"]) == exp_p
    assert _by_key(got["m"]) == _expected(recs, "shared", seasonal, horizon=2)[0]
    exp_s = _expected(recs, "shared", model, learn=True, shards=16)[0]
    assert _by_key(got["s"]) == exp_s
    assert _by_key(got["bl"]) == exp_s
    reasons = sorted(["not a (key, timestamp, value) record", "missing key",
                      "non-numeric value 'abc'", "infinite value 'inf'",
                      "non-integer timestamp 'inf'", "non-integer timestamp '1.5'",
                      "infinite value '1e400'",
                      "ValueError: y must have magnitude <= 1e+150, got 1e+300",
                      f"late or replayed: timestamp 0, the key's last is {last0}"])
    assert sorted(r for _, r in got["b"]) == reasons
    assert sorted(r for _, r in got["bb"]) == reasons


def test_thousands_of_keys_through_small_caches():
    """2,000 keys; PyFlink keeps 4 shards and 16 keys per shard cached, the worker 100 keys
    live: streams are encoded, evicted, decoded and imported all the time, and every key's
    outputs stay those of its own Forecaster."""
    small = {"hidden_size": 2, "seed": 0, "k2": 2}
    rows = [f"s{i % 2000},{i // 2000},{math.sin(0.1 * i)!r}" for i in range(6000)]
    env = _env(1, {"python.state.cache-size": 4, "python.map-state.read-cache-size": 16,
                   "python.fn-execution.bundle.size": 500})
    ds = env.from_collection(rows, type_info=Types.STRING())
    out, bad = srf.forecast_stream(ds, "per_key", settings=small, shards=32, live_keys=100)
    got = list(out.execute_and_collect())
    assert _by_key(got) == _expected(rows, settings=small)[0]


class _Write(MapFunction):
    """Appends every output to a file per task (a test sink that survives the job)."""

    def __init__(self, d, tag):
        self.d, self.tag = d, tag

    def open(self, ctx):
        self.f = open(f"{self.d}/{self.tag}-{os.getpid()}-{id(self)}", "a")

    def map(self, r):
        self.f.write(",".join(str(x) for x in r) + "\n")
        self.f.flush()
        return r


class _FailOnce(FlatMapFunction):
    """Raises once, on the record whose key is ``poison`` (a flag file remembers it), and
    drops that record (so it reaches no forecaster)."""

    def __init__(self, flag):
        self.flag = flag

    def flat_map(self, r):
        if r.startswith("poison,"):
            if not os.path.exists(self.flag):
                open(self.flag, "w").close()
                raise RuntimeError("injected failure")
            return
        yield r


def _lines(d, tag):
    out = []
    for p in glob.glob(f"{d}/out/{tag}-*"):
        with open(p) as fh:
            out += [tuple(ln.split(",")) for ln in fh.read().splitlines()]
    return out


def _wait(what, done):
    # polls until done() (outputs present, a checkpoint written); the clock only guards
    # against a hung job (no result depends on it)
    t0 = time.monotonic()
    while not done():
        assert time.monotonic() - t0 < 600, f"waited 600 s for {what}"
        time.sleep(0.2)


def _check_dedup(lines, rows, reference):
    """Outputs de-duplicated on (key, timestamp): one value per pair (replays agree), and
    exactly the reference's."""
    got = {}
    for k, t, v in lines:
        if int(t) >= END or k == "poison":
            continue
        got.setdefault((k, int(t)), set()).add(float(v))
    assert all(len(v) == 1 for v in got.values()), "a replay gave another value"
    exp = {(k, t): v for k, tv in reference.items() for t, v in tv}
    assert {kt: v.pop() for kt, v in got.items()} == exp


def _stream_job(d, tag, par, modes, restore=None, fail_flag=None, checkpoint_ms=300):
    from pyflink.common import Duration, WatermarkStrategy
    from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

    conf = {"python.fn-execution.bundle.size": 50}
    if restore:
        conf["execution.savepoint.path"] = restore
    if fail_flag:
        conf.update({"restart-strategy.type": "fixed-delay",
                     "restart-strategy.fixed-delay.attempts": 3,
                     "restart-strategy.fixed-delay.delay": "100 ms",
                     "execution.checkpointing.dir": "file://" + d + "/chk"})
    env = _env(par, conf)
    env.enable_checkpointing(checkpoint_ms)
    src = FileSource.for_record_stream_format(StreamFormat.text_line_format(), d + "/in") \
        .monitor_continuously(Duration.of_millis(200)).build()
    ds = env.from_source(src, WatermarkStrategy.no_watermarks(), "csv").uid("csv")
    if fail_flag:
        ds = ds.flat_map(_FailOnce(fail_flag), output_type=Types.STRING()).uid("fail")
    for mode in modes:
        kw = {"settings": SETTINGS} if mode == "per_key" else \
            {"model": _model(), "learn": True}
        out, _ = srf.forecast_stream(ds, "per_key" if mode == "per_key" else "shared",
                                     uid=mode, shards=16, **kw)
        out.map(_Write(d + "/out", f"{tag}-{mode}"), output_type=srf.OUTPUT_TYPE) \
            .uid("sink-" + mode)
    return env.execute_async(tag)


def _write(d, name, rows):
    tmp = f"{d}/{name}.tmp"
    with open(tmp, "w") as fh:
        fh.writelines(r + "\n" for r in rows)
    os.replace(tmp, f"{d}/in/{name}")


MODES = ("per_key", "learn")


def _reference(rows, mode):
    if mode == "per_key":
        return _expected(rows)[0]
    return _expected(rows, "shared", _model(), learn=True, shards=16)[0]


def _markers(d, keys):
    _write(d, "end.csv", [f"{k},{END + i},0.0" for i, k in enumerate(keys)])


def test_stop_with_savepoint_rescale_and_restore_continue_exactly(tmp_path):
    """Run 1 (parallelism 2) reads a.csv and stops with a savepoint; run 2 (parallelism 1:
    rescaled) restores it and reads b.csv: per-key and learning-shared outputs of both runs
    are those of an uninterrupted plain run."""
    from pyflink.java_gateway import get_gateway
    d = str(tmp_path)
    os.makedirs(d + "/in")
    os.makedirs(d + "/out")
    rows = _records(n_keys=9, n_per=14, seed=7)
    keys = sorted({r.split(",")[0] for r in rows})
    half = len(rows) // 2
    _write(d, "a.csv", rows[:half])
    c1 = _stream_job(d, "one", 2, MODES)
    for mode in MODES:
        _wait("run one", lambda: len(_lines(d, f"one-{mode}")) >= half)
    # PyFlink 2.3's JobClient.stop_with_savepoint calls a Java signature that no longer
    # exists (no SavepointFormatType): call the Java client directly
    fmt = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    sp = c1._j_job_client.stopWithSavepoint(False, d + "/sp", fmt).get()
    # run 2's input directory holds only b.csv (a.csv out of reach: outputs count exactly)
    os.replace(d + "/in/a.csv", d + "/a.csv")
    _write(d, "b.csv", rows[half:])
    c2 = _stream_job(d, "two", 1, MODES, restore=sp)
    for mode in MODES:
        _wait("run two", lambda: len(_lines(d, f"two-{mode}")) >= len(rows) - half)
    _markers(d, keys)       # a key's marker comes out after all its earlier outputs
    for mode in MODES:
        _wait("markers", lambda: len(_lines(d, f"two-{mode}")) == len(rows) - half + len(keys))
    c2.cancel().result()
    for mode in MODES:
        one, two = _lines(d, f"one-{mode}"), _lines(d, f"two-{mode}")
        assert len(one) == half and len(two) == len(rows) - half + len(keys)
        _check_dedup(one + two, rows, _reference(rows, mode))


def test_injected_failure_recovers_to_the_same_outputs(tmp_path):
    """A record makes the job fail once after a checkpoint completed; Flink restarts it from
    that checkpoint and replays: after de-duplication on (key, timestamp) the outputs are
    those of an uninterrupted plain run, and no replay gave another value."""
    d = str(tmp_path)
    os.makedirs(d + "/in")
    os.makedirs(d + "/out")
    flag = d + "/failed"
    rows = _records(n_keys=9, n_per=14, seed=8)
    keys = sorted({r.split(",")[0] for r in rows})
    half = len(rows) // 2
    _write(d, "a.csv", rows[:half])
    c = _stream_job(d, "run", 2, MODES, fail_flag=flag)
    for mode in MODES:
        _wait("a.csv", lambda: len(_lines(d, f"run-{mode}")) >= half)
    # a checkpoint after a.csv's outputs (its state holds them)
    _wait("a checkpoint", lambda: glob.glob(d + "/chk/*/chk-*/_metadata"))
    _write(d, "b.csv", rows[half:half + 20] + ["poison,1,1.0"] + rows[half + 20:])
    _wait("the failure", lambda: os.path.exists(flag))
    # the markers only once every record has an output (else a key's marker could come
    # before its b.csv records and, learning, change its shard's weights)
    for mode in MODES:
        _wait("b.csv", lambda: len({(k, t) for k, t, _ in _lines(d, f"run-{mode}")})
              >= len(rows))
    _markers(d, keys)
    for mode in MODES:
        _wait("markers", lambda: {k for k, t, _ in _lines(d, f"run-{mode}")
                                  if int(t) >= END} == set(keys))
    c.cancel().result()
    for mode in MODES:
        _check_dedup(_lines(d, f"run-{mode}"), rows, _reference(rows, mode))


def test_thread_execution_mode_is_refused_with_a_message():
    env = _env(1, {"python.execution-mode": "thread"})
    ds = env.from_collection(["a,1,1.0"], type_info=Types.STRING())
    out, _ = srf.forecast_stream(ds, "per_key", settings=SETTINGS)
    with pytest.raises(Exception, match="does not support python.execution-mode 'thread'"):
        list(out.execute_and_collect())


def test_model_swap_through_a_broadcast_stream(tmp_path):
    """Learning shared mode, parallelism 2: a.csv with the first model; a second model
    arrives on the broadcast input (every subtask reports it accepted); b.csv: every shard
    runs the second model's weights from its next record on, keys keep their streams. The
    outputs are those of the plain reference with the swap at that point."""
    import base64

    from pyflink.common import Duration, WatermarkStrategy
    from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
    from test_flink_state import _model2

    d = str(tmp_path)
    for sub in ("in", "out", "models"):
        os.makedirs(f"{d}/{sub}")
    rows = _records(n_keys=9, n_per=10, seed=11)
    keys = sorted({r.split(",")[0] for r in rows})
    half = len(rows) // 2
    model, model2 = _model(), _model2()

    env = _env(2, {"python.fn-execution.bundle.size": 20})
    env.enable_checkpointing(500)

    def files(sub):
        return FileSource.for_record_stream_format(StreamFormat.text_line_format(),
                                                   f"{d}/{sub}") \
            .monitor_continuously(Duration.of_millis(200)).build()
    ds = env.from_source(files("in"), WatermarkStrategy.no_watermarks(), "csv")
    models = env.from_source(files("models"), WatermarkStrategy.no_watermarks(), "models") \
        .map(lambda ln: base64.b64decode(ln), output_type=Types.PICKLED_BYTE_ARRAY())
    out, _ = srf.forecast_stream(ds, "shared", model=model, learn=True, shards=16,
                                 model_updates=models)
    out.map(_Write(d + "/out", "f"), output_type=srf.OUTPUT_TYPE)
    out.get_side_output(srf.MODEL_UPDATES).map(
        _Write(d + "/out", "u"), output_type=Types.TUPLE([Types.STRING(), Types.STRING()]))
    c = env.execute_async("swap")
    _write(d, "a.csv", rows[:half])
    _wait("a.csv", lambda: len(_lines(d, "f")) >= half)
    with open(f"{d}/models/m.tmp", "w") as fh:
        fh.write(base64.b64encode(model2).decode() + "\n")
        fh.write(base64.b64encode(_model(season=4)).decode() + "\n")    # refused
    os.replace(f"{d}/models/m.tmp", f"{d}/models/m2.txt")
    _wait("the swap", lambda: len(_lines(d, "u")) == 4)
    _write(d, "b.csv", rows[half:])
    # the markers only after b.csv's outputs (else a key's marker could come first and,
    # learning, change its shard's weights)
    _wait("b.csv", lambda: len(_lines(d, "f")) >= len(rows))
    _markers(d, keys)
    _wait("markers", lambda: {k for k, t, _ in _lines(d, "f") if int(t) >= END} == set(keys))
    c.cancel().result()
    updates = sorted(r[1].split(":")[0] for r in _lines(d, "u"))
    assert updates == ["accepted", "accepted", "refused", "refused"]

    new = sr.loads(model2)
    twins, exp = {}, {}
    for i, r in enumerate(rows):
        k, t, y = r.split(",")
        s = fs.shard_of(k, 16)
        if s not in twins:
            # a shard's first record after the swap: it starts from the second model
            twins[s] = srf.learning_twin(sr.loads(model2 if i >= half else model))
        if i == half:
            for f in twins.values():
                f.net.parameters()[...] = new.net.parameters()
        twins[s].learn_one(float(y), key=k)
        exp.setdefault(k, []).append((int(t), twins[s].forecast(1, key=k)[-1]))
    got = [(k, int(t), float(v)) for k, t, v in _lines(d, "f") if int(t) < END]
    assert _by_key(sorted(got, key=lambda r: (r[0], r[1]))) == exp
