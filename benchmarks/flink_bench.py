"""Flink figures of streamrnn.flink, record-at-a-time, one slot (parallelism 1).

    python benchmarks/flink_bench.py [n_keys] [n_records] [modes]    # defaults: 200 100000

Run with a Python that has apache-flink. First, before any JVM starts, two plain-Python
baselines on the same records: live Forecasters (no key state at all), and the operator's own
Python work (``ForecastFunction.process_element`` on in-memory keyed state). Then the Flink
job (``from_collection`` -> ``forecast_stream`` -> a Java ``DiscardingSink``, so no Python sink
and no collection to the client) runs twice, on the first half of the records and on all of
them: the steady-state rate is the second half's records over the difference of the two wall
times (start-up, JVM and Python workers, cancels out), and the start-up is what the first run
took beyond its records at that rate. Wall-clock figures: the machine's load shows in them.
"""
import math
import sys
import time

import streamrnn as sr

NK = int(sys.argv[1]) if len(sys.argv) > 1 else 200
NR = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
MODES = sys.argv[3].split(",") if len(sys.argv) > 3 else ["per_key", "shared"]
SET = {"hidden_size": 16, "seed": 0}
lines = [f"k{i % NK},{i // NK},{10 + 3 * math.sin(0.3 * (i // NK) + i % NK):.6f}"
         for i in range(NR)]
m = sr.Forecaster(**SET)
for t in range(500):
    m.learn_one(10 + 3 * math.sin(0.3 * t))
MODEL = sr.dumps(m)
N_PLAIN = min(NR, 20_000)


class _KeyedState:
    """In-memory stand-in for Flink's keyed ValueState (the operator without the JVM)."""

    def __init__(self):
        self.store, self.key = {}, None

    def get_state(self, descriptor):
        return self

    def value(self):
        return self.store.get(self.key)

    def update(self, v):
        self.store[self.key] = bytes(v)


def plain(mode):
    """(s of live forecasters, s of the operator without Flink, state bytes/key) on the
    first N_PLAIN records."""
    from streamrnn import flink as srf     # imports pyflink, starts no JVM
    part = lines[:N_PLAIN]
    t0 = time.perf_counter()
    if mode == "per_key":
        fs = {}
        for ln in part:
            k, t, y = ln.split(",")
            f = fs.setdefault(k, sr.Forecaster(**SET))
            f.learn_one(float(y))
            f.forecast(1)
    else:
        g = srf.frozen_twin(sr.loads(MODEL))
        for ln in part:
            k, t, y = ln.split(",")
            g.learn_one(float(y), key=k)
            g.forecast(1, key=k)
    t_live = time.perf_counter() - t0
    fn = srf.ForecastFunction(mode, settings=SET, model=MODEL)
    ks = _KeyedState()
    fn.open(ks)
    t0 = time.perf_counter()
    for ln in part:
        ks.key = srf._raw_key(ln)
        for _ in fn.process_element(ln, None):
            pass
    t_op = time.perf_counter() - t0
    return t_live, t_op, sum(len(v) for v in ks.store.values()) / len(ks.store)


def flink(mode, data):
    from pyflink.common import Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors.base import Sink
    from pyflink.java_gateway import get_gateway
    from streamrnn import flink as srf

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_python_executable(sys.executable)
    env.set_parallelism(1)
    ds = env.from_collection(data, type_info=Types.STRING())
    out, _ = srf.forecast_stream(ds, mode, settings=SET, model=MODEL)
    jvm = get_gateway().jvm
    out.sink_to(Sink(jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()))
    t0 = time.perf_counter()
    env.execute(f"bench-{mode}-{len(data)}")
    return time.perf_counter() - t0


base = {mode: plain(mode) for mode in MODES}          # before the JVM starts
print(f"{NR} records, {NK} keys interleaved, LSTM hidden_size=16; plain baselines on "
      f"{N_PLAIN} records")
for mode in MODES:
    tp, top, nb = base[mode]
    print(f"{mode}: plain Python, live forecasters {N_PLAIN / tp:.0f} rec/s; the operator "
          f"without Flink {N_PLAIN / top:.0f} rec/s ({1e6 * top / N_PLAIN:.0f} us/rec); "
          f"state {nb:.0f} bytes/key")
    half = NR // 2
    t_warm = flink(mode, lines[:NK])       # warm-up: the JVM, the mini-cluster, the workers
    t_half = flink(mode, lines[:half])
    t_all = flink(mode, lines)
    steady = (NR - half) / max(t_all - t_half, 1e-9)
    print(f"  flink p=1: {NR / t_all:.0f} rec/s over the whole run ({t_all:.1f} s); "
          f"steady state {steady:.0f} rec/s ({1e6 / steady:.0f} us/rec); start-up "
          f"{t_half - half / steady:.1f} s (the first job, JVM included: {t_warm:.1f} s)",
          flush=True)
