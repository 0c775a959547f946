"""Flink figures: records/s and state bytes/key of streamrnn.flink, both modes, parallelism
1 and 2, against plain Python (one Forecaster per key, no Flink). Run with a Python that has
apache-flink:  python benchmarks/flink_bench.py [n_keys] [n_per_key]"""
import math
import sys
import time

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment

import streamrnn as sr
from streamrnn import flink as srf

NK = int(sys.argv[1]) if len(sys.argv) > 1 else 200
NP = int(sys.argv[2]) if len(sys.argv) > 2 else 30
SET = {"hidden_size": 16, "seed": 0}
lines = [f"k{k},{t},{10 + 3 * math.sin(0.3 * t + k):.6f}" for t in range(NP) for k in range(NK)]
m = sr.Forecaster(**SET)
for t in range(500):
    m.learn_one(10 + 3 * math.sin(0.3 * t))
MODEL = sr.dumps(m)


def flink(mode, par, data):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_python_executable(sys.executable)
    env.set_parallelism(par)
    ds = env.from_collection(data, type_info=Types.STRING())
    out, _ = srf.forecast_stream(ds, mode, settings=SET, model=MODEL)
    t0 = time.perf_counter()
    n = sum(1 for _ in out.execute_and_collect())
    return time.perf_counter() - t0, n


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
    """Plain Python, no JVM: (s, state bytes/key) of live forecasters (no key state at all),
    and s of the operator's own Python work (ForecastFunction.process_element on in-memory
    keyed state: import_stream, learn, forecast, export_stream per record)."""
    t0 = time.perf_counter()
    if mode == "per_key":
        fs = {}
        for ln in lines:
            k, t, y = ln.split(",")
            f = fs.setdefault(k, sr.Forecaster(**SET))
            f.learn_one(float(y))
            f.forecast(1)
    else:
        g = srf.frozen_twin(sr.loads(MODEL))
        for ln in lines:
            k, t, y = ln.split(",")
            g.learn_one(float(y), key=k)
            g.forecast(1, key=k)
    t_live = time.perf_counter() - t0
    fn = srf.ForecastFunction(mode, settings=SET, model=MODEL)
    ks = _KeyedState()
    fn.open(ks)
    t0 = time.perf_counter()
    for ln in lines:
        ks.key = srf._raw_key(ln)
        for _ in fn.process_element(ln, None):
            pass
    t_op = time.perf_counter() - t0
    nbytes = sum(len(v) for v in ks.store.values()) / len(ks.store)
    return t_live, t_op, nbytes


base = {mode: plain(mode) for mode in ("per_key", "shared")}     # before the JVM starts
start, _ = flink("per_key", 1, lines[:1])          # job start-up (one record)
print(f"records {len(lines)} ({NK} keys); job start-up {start:.1f} s")
for mode in ("per_key", "shared"):
    tp, top, nb = base[mode]
    print(f"{mode}: plain Python, live forecasters {len(lines) / tp:.0f} rec/s; the operator "
          f"without Flink {len(lines) / top:.0f} rec/s ({1e6 * top / len(lines):.0f} us/rec); "
          f"state {nb:.0f} bytes/key")
    for par in (1, 2):
        tf, n = flink(mode, par, lines)
        assert n == len(lines)
        net = max(tf - start, 1e-9)
        print(f"  flink p={par}: {len(lines) / tf:.0f} rec/s incl. start-up, "
              f"{len(lines) / net:.0f} rec/s without; overhead over the operator "
              f"{1e6 * (net - top) / len(lines):.0f} us/rec")
