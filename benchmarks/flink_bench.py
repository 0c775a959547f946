"""Flink figures of streamrnn.flink: one slot (parallelism 1), steady state, Java sink.

    python benchmarks/flink_bench.py [--keys 200 20000] [--records 100000]
        [--modes per_key shared learn] [--batch 0 50] [--repeat 3]

Run with a Python that has apache-flink (``pip install -e ".[flink]"`` in a venv of its own).

1. Before any JVM starts: the plain-Python baseline on the same records (live Forecasters, no
   Flink, no state encoding: a Forecaster per key; the frozen twin; a learning twin per
   shard), and the operator's engine (``streamrnn._flink_state.Worker``) on in-memory state
   that never encodes.
2. Flink jobs: ``from_collection`` of CSV lines (record at a time) or of strings of ``batch``
   CSV lines (micro-batches) -> ``forecast_stream``/``forecast_batches`` -> a Java
   ``DiscardingSink`` (no Python sink, nothing collected to the client). One warm-up job
   starts the JVM and the mini-cluster; then per configuration and repeat one job on all the
   records. The operator (``ForecastFunction`` with a counter) notes the wall clock when it
   has processed 10% and 90% of the records: the steady-state rate is the 80% between over
   that time (start-up, the first keys' creation and the end of the job excluded; with
   backpressure the whole pipeline runs at that rate). Medians over the repeats; the
   whole-job rate (start-up included) is shown too.

Modes: ``per_key`` (a Forecaster per key, learning), ``shared`` (the frozen shared model),
``learn`` (the shared model learning, one network copy per shard). Bundles: 10,000 records or
1 s (``python.fn-execution.bundle.size/time``); PyFlink's map-state caches large enough for
the keys of a shard (see docs/guide/flink.md). Wall-clock figures: the load shows in them
(``uptime`` is printed before and after).
"""
import argparse
import math
import os
import statistics
import sys
import time

import streamrnn as sr

ap = argparse.ArgumentParser()
ap.add_argument("--keys", type=int, nargs="+", default=[200, 20000])
ap.add_argument("--records", type=int, default=100_000)
ap.add_argument("--modes", nargs="+", default=["per_key", "shared", "learn"])
ap.add_argument("--batch", type=int, nargs="+", default=[0, 50])
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--plain", type=int, default=20_000, help="records of the plain baselines")
A = ap.parse_args()

SET = {"hidden_size": 16, "seed": 0}
m = sr.Forecaster(**SET)
for t in range(500):
    m.learn_one(10 + 3 * math.sin(0.3 * t))
MODEL = sr.dumps(m)
CONF = {"python.fn-execution.bundle.size": "10000", "python.fn-execution.bundle.time": "1000",
        "python.map-state.read-cache-size": "100000",
        "python.map-state.write-cache-size": "100000"}


def lines(nk, n):
    return [f"k{i % nk},{i // nk},{10 + 3 * math.sin(0.3 * (i // nk) + i % nk):.6f}"
            for i in range(n)]


def uptime():
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


class _Mem:
    """In-memory map/value state that keeps objects and never encodes them."""

    def __init__(self):
        self.d = {}

    def get(self, k):
        return self.d.get(k)

    def put(self, k, v):
        self.d[k] = v

    def value(self):
        return self.d.get(None)

    def update(self, v):
        self.d[None] = v


def plain(mode, nk, batch):
    """(records/s of plain Forecasters, records/s of the engine without Flink)."""
    from streamrnn import _flink_state as fs
    part = lines(nk, min(A.plain, A.records))
    shards = 8 if batch else 128
    t0 = time.perf_counter()
    fc = {}
    for ln in part:
        k, t, y = ln.split(",")
        if mode == "per_key":
            f = fc.get(k) or fc.setdefault(k, sr.Forecaster(**SET))
            f.learn_one(float(y))
            f.forecast(1)
        else:
            s = 0 if mode == "shared" else fs.shard_of(k, shards)
            f = fc.get(s) or fc.setdefault(s, fs.twin(sr.loads(MODEL), mode == "shared",
                                                      *((1, 1) if mode == "shared" else ())))
            f.learn_one(float(y), key=k)
            f.forecast(1, key=k)
    t_plain = time.perf_counter() - t0
    w = fs.Worker("per_key" if mode == "per_key" else "shared",
                  SET if mode == "per_key" else None,
                  None if mode == "per_key" else MODEL, 1, True, 10 ** 9, mode == "learn")
    states = {}
    t0 = time.perf_counter()
    if batch:
        for i in range(0, len(part), batch):
            for s, recs in fs.split_batch(part[i:i + batch], shards):
                st = states.get(s) or states.setdefault(s, (_Mem(), _Mem()))
                w.process(s, st[0], st[1], recs)
    else:
        from streamrnn._records import raw_key
        for ln in part:
            s = fs.shard_of(raw_key(ln), shards)
            st = states.get(s) or states.setdefault(s, (_Mem(), _Mem()))
            w.process(s, st[0], st[1], (ln,))
    t_eng = time.perf_counter() - t0
    return len(part) / t_plain, len(part) / t_eng


MARKS = f"/tmp/flink_bench_marks_{os.getpid()}"


def _bench_function(srf, n, mode, kw, batched):
    class Timed(srf.ForecastFunction):
        """The operator, noting the wall clock at 10% and 90% of the records."""

        def open(self, ctx):
            super().open(ctx)
            self.seen, self.marks = 0, [n // 10, n - n // 10]

        def process_element(self, value, ctx):
            yield from super().process_element(value, ctx)
            self.seen += len(value[1]) if batched else 1
            while self.marks and self.seen >= self.marks[0]:
                with open(MARKS, "a") as fh:
                    fh.write(f"{self.marks.pop(0)} {time.perf_counter()}\n")
    return Timed(mode, batched=batched, **kw)


def flink_job(mode, data, batch):
    """(steady-state records/s, whole-job seconds)."""
    from pyflink.common import Configuration, Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors.base import Sink
    from pyflink.java_gateway import get_gateway
    from streamrnn import flink as srf

    c = Configuration()
    for k, v in CONF.items():
        c.set_string(k, v)
    env = StreamExecutionEnvironment.get_execution_environment(c)
    env.set_python_executable(sys.executable)
    env.set_parallelism(1)
    kw = {"settings": SET} if mode == "per_key" else {"model": MODEL, "learn": mode == "learn"}
    m_ = "per_key" if mode == "per_key" else "shared"
    # the wiring of forecast_stream / forecast_batches, with the timed operator
    fn = _bench_function(srf, len(data), m_, kw, bool(batch))
    if batch:
        src = ["\n".join(data[i:i + batch]) for i in range(0, len(data), batch)]
        ds = env.from_collection(src, type_info=Types.STRING())
        out = ds.flat_map(srf._Split(srf.BATCH_SHARDS), output_type=Types.PICKLED_BYTE_ARRAY()) \
            .key_by(srf._first, key_type=Types.INT()) \
            .process(fn, output_type=Types.PICKLED_BYTE_ARRAY())
    else:
        ds = env.from_collection(data, type_info=Types.STRING())
        out = ds.key_by(srf._shard_key(srf.SHARDS), key_type=Types.INT()) \
            .process(fn, output_type=srf.OUTPUT_TYPE)
    jvm = get_gateway().jvm
    out.sink_to(Sink(jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()))
    if os.path.exists(MARKS):
        os.remove(MARKS)
    t0 = time.perf_counter()
    env.execute(f"bench-{mode}-{len(data)}")
    t = time.perf_counter() - t0
    with open(MARKS) as fh:
        marks = [tuple(map(float, ln.split())) for ln in fh]
    (n1, t1), (n2, t2) = marks
    return (n2 - n1) / (t2 - t1), t


configs = [(nk, mode, b) for nk in A.keys for mode in A.modes for b in A.batch]
print(f"# {A.records} records, LSTM hidden_size=16, one-step forecasts; load {uptime()}",
      flush=True)
base = {}
for nk, mode, b in configs:          # before the JVM starts
    base[(nk, mode, b)] = plain(mode, nk, b)
    print(f"# plain {nk} keys {mode} batch {b}: Forecasters {base[(nk, mode, b)][0]:.0f} "
          f"rec/s, engine without Flink {base[(nk, mode, b)][1]:.0f} rec/s; load {uptime()}",
          flush=True)

flink_job("per_key", lines(10, 1000), 0)       # warm-up: JVM, mini-cluster, workers
rows = []
for nk, mode, b in configs:
    data = lines(nk, A.records)
    steady, whole = [], []
    for _ in range(A.repeat):
        rate, t_all = flink_job(mode, data, b)
        steady.append(rate)
        whole.append(A.records / t_all)
        print(f"# {nk} keys {mode} batch {b}: job {t_all:.1f} s, steady {rate:.0f} rec/s; "
              f"load {uptime()}", flush=True)
    rows.append((nk, mode, b, base[(nk, mode, b)], statistics.median(steady),
                 statistics.median(whole), min(steady), max(steady)))

print(f"\n| keys | mode | records per element | plain Forecasters rec/s | engine without "
      f"Flink rec/s | Flink steady rec/s (median of {A.repeat}; min-max) | Flink whole job "
      f"rec/s |")
print("|---|---|---|---|---|---|---|")
for nk, mode, b, (bp, be), st, wh, lo, hi in rows:
    print(f"| {nk} | {mode} | {b or 1} | {bp:,.0f} | {be:,.0f} | {st:,.0f} ({lo:,.0f}-"
          f"{hi:,.0f}) | {wh:,.0f} |")
print(f"\nload {uptime()}; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
