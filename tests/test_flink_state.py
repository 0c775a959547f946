"""The Flink operator's state engine (streamrnn._flink_state, no pyflink needed) against a
stand-in for PyFlink's keyed state that does what PyFlink does with Python objects in state:
keeps them in a cache, encodes dirty ones with pickle when a bundle commits, and decodes
stored bytes when an object is not cached. Outputs are compared with independent plain
Forecasters; restores, rollbacks and rescales with uninterrupted runs. The jobs themselves
are tests/test_flink.py (run by .ci/flink)."""
from __future__ import annotations

import io
import math
import pickle
import random

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import _flink_state as fs
from streamrnn._records import raw_key

SETTINGS = {"hidden_size": 4, "seed": 0, "k2": 4}


class _Restricted(pickle.Unpickler):
    """Decodes only the two constructors of the state objects (the pickled form must call
    nothing else)."""

    def find_class(self, module, name):
        if module == "streamrnn._flink_state" and name in ("_key_state", "_shard_model"):
            return getattr(fs, name)
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def _decode(b):
    return _Restricted(io.BytesIO(b)).load()


class Keyed:
    """PyFlink's keyed state for one operator, as the engine sees it: per shard a map state
    and a value state. ``stored``: the committed bytes ((name, shard, key) -> bytes);
    ``cache``: decoded or written objects; ``dirty``: written since the last commit."""

    def __init__(self):
        self.stored, self.cache, self.dirty = {}, {}, set()
        self.commits = 0

    def map(self, shard):
        return _Map(self, shard)

    def value(self, shard):
        return _Map(self, shard, "model")

    def _get(self, sk):
        if sk in self.cache:
            return self.cache[sk]
        b = self.stored.get(sk)
        if b is None:
            return None
        obj = self.cache[sk] = _decode(b)
        return obj

    def _put(self, sk, obj):
        self.cache[sk] = obj
        self.dirty.add(sk)

    def commit(self):
        """A bundle ends: every dirty object is encoded (pickle, as PyFlink's coder)."""
        for sk in sorted(self.dirty, key=repr):
            self.stored[sk] = pickle.dumps(self.cache[sk])
        self.dirty.clear()
        self.commits += 1

    def evict(self):
        """PyFlink drops its cached objects (after a commit): later reads decode bytes."""
        assert not self.dirty
        self.cache.clear()

    def snapshot(self):
        """A checkpoint: the bundle is finished first."""
        self.commit()
        return dict(self.stored)

    def restore(self, snap):
        self.stored, self.cache, self.dirty = dict(snap), {}, set()


class _Map:
    def __init__(self, ks, shard, name="keys"):
        self.ks, self.shard, self.name = ks, shard, name

    def get(self, key):
        return self.ks._get((self.name, self.shard, key))

    def put(self, key, obj):
        self.ks._put((self.name, self.shard, key), obj)

    def value(self):
        return self.get(None)

    def update(self, obj):
        self.put(None, obj)


def _worker(mode="per_key", model=None, learn=False, live_keys=100_000, horizon=1,
            in_order=True, settings=SETTINGS):
    return fs.Worker(mode, settings if mode == "per_key" else None, model, horizon,
                     in_order, live_keys, learn)


def _drive(w, rows, ks=None, shards=16, bundle=7, evict_every=0, batch=1):
    """Feed rows (batch records per call) to worker w, committing every ``bundle`` calls and
    dropping the cache every ``evict_every`` commits. Returns (outputs, keyed state)."""
    ks = Keyed() if ks is None else ks
    out = []
    calls = 0
    for i in range(0, len(rows), batch):
        for shard, part in fs.split_batch(rows[i:i + batch], shards):
            out += w.process(shard, ks.map(shard), ks.value(shard), part)
            calls += 1
            if calls % bundle == 0:
                ks.commit()
                if evict_every and ks.commits % evict_every == 0:
                    ks.evict()
    ks.commit()
    return out, ks


def _records(n_keys=12, n_per=10, seed=0):
    rng = random.Random(seed)
    queues = {f"k{i}": [(t, 3 * math.sin(0.5 * t + i) + i % 5) for t in range(n_per)]
              for i in range(n_keys)}
    out = []
    while queues:                       # interleaved arrivals, per-key order kept
        k = rng.choice(sorted(queues))
        t, y = queues[k].pop(0)
        out.append(f"{k},{t},{y!r}")
        if not queues[k]:
            del queues[k]
    return out


def _model(**kw):
    m = sr.Forecaster(hidden_size=4, seed=1, k2=4, **kw)
    for t in range(60):
        m.learn_one(math.sin(0.3 * t) + 0.1 * (t % 4))
    return sr.dumps(m)


def _expected(rows, mode="per_key", model=None, learn=False, shards=16, horizon=1,
              settings=SETTINGS):
    """Independent reference, rows in arrival order: per_key: a Forecaster per key fed its
    records; frozen shared: one frozen twin fed everything; learning shared: one learning
    twin per shard fed that shard's records."""
    per, exp = {}, {}
    for r in rows:
        k, t, y = r.split(",")
        if mode == "per_key":
            if k not in per:
                per[k] = sr.Forecaster(**settings)
            f, key = per[k], None
        elif not learn:
            f = per.get(None) or per.setdefault(None, fs.twin(sr.loads(model), True))
            key = k
        else:
            s = fs.shard_of(k, shards)
            f = per.get(s) or per.setdefault(s, fs.twin(sr.loads(model), False))
            key = k
        f.learn_one(float(y), key=key)
        exp.setdefault(k, []).append((int(t), f.forecast(horizon, key=key)[-1]))
    return exp, per


def _by_key(out):
    d = {}
    for r in out:
        if r[0] is not fs.BAD:
            d.setdefault(r[0], []).append((r[1], r[2]))
    return d


CASES = [("per_key", False), ("shared", False), ("shared", True)]


@pytest.mark.parametrize("mode,learn", CASES)
@pytest.mark.parametrize("live_keys,evict_every", [(100_000, 0), (3, 0), (0, 2), (5, 1)])
def test_outputs_are_plain_forecasters_whatever_is_live_or_cached(mode, learn, live_keys,
                                                                  evict_every):
    rows = _records()
    model = None if mode == "per_key" else _model(season=3)
    w = _worker(mode, model, learn, live_keys)
    out, ks = _drive(w, rows, evict_every=evict_every)
    exp, _ = _expected(rows, mode, model, learn)
    assert _by_key(out) == exp
    assert w.live_count() <= live_keys
    assert {sk[2] for sk in ks.stored if sk[0] == "keys"} == {r.split(",")[0] for r in rows}


@pytest.mark.parametrize("mode,learn", CASES)
def test_micro_batches_equal_record_at_a_time(mode, learn):
    rows = _records(n_keys=20, n_per=8, seed=2)
    model = None if mode == "per_key" else _model()
    one, _ = _drive(_worker(mode, model, learn), rows, shards=4)
    many, ks = _drive(_worker(mode, model, learn), rows, shards=4, batch=25, bundle=2)
    assert _by_key(many) == _by_key(one) == _expected(rows, mode, model, learn, shards=4)[0]


def _state_bytes(ks):
    return {sk: v for sk, v in ks.stored.items()}


@pytest.mark.parametrize("mode,learn", CASES)
def test_restart_from_a_checkpoint_continues_bit_for_bit(mode, learn):
    """A checkpoint (bundle committed), then a new worker (a restarted process) on the
    restored state: outputs and state bytes after it equal an uninterrupted run's; the
    shared weights too (learn=True: the shard's copies in state, compared bit for bit)."""
    rows = _records(n_keys=10, n_per=12, seed=3)
    model = None if mode == "per_key" else _model()
    full, ks_full = _drive(_worker(mode, model, learn), rows)
    first, ks = _drive(_worker(mode, model, learn), rows[:50])
    snap = ks.snapshot()
    ks2 = Keyed()
    ks2.restore(snap)
    second, ks2 = _drive(_worker(mode, model, learn), rows[50:], ks2)
    assert first + second == full
    assert set(ks2.stored) == set(ks_full.stored)
    for sk, b in ks_full.stored.items():
        a, c = _decode(b), _decode(ks2.stored[sk])
        assert (a.fingerprint, getattr(a, "last", None)) == (c.fingerprint,
                                                             getattr(c, "last", None))
        if sk[0] == "model":
            pa, pc = sr.loads(a.blob).parameters(), sr.loads(c.blob).parameters()
            assert pa.tobytes() == pc.tobytes()
    if learn:
        models = [sk for sk in ks_full.stored if sk[0] == "model"]
        assert models
        ref = _expected(rows, mode, model, learn)[1]
        for sk in models:
            got = sr.loads(_decode(ks2.stored[sk]).blob).parameters()
            assert got.tobytes() == ref[sk[1]].net.parameters().tobytes()
            # the shared model learned: its weights moved away from the model's
            assert not np.array_equal(got, sr.loads(model).net.parameters())


@pytest.mark.parametrize("mode,learn", CASES)
def test_rollback_while_the_worker_lives_on(mode, learn):
    """The state goes back to a checkpoint while the worker keeps its live streams (a
    failover that keeps the process): the replay gives the outputs of the first time."""
    rows = _records(n_keys=8, n_per=14, seed=5)
    model = None if mode == "per_key" else _model()
    w = _worker(mode, model, learn, live_keys=6)
    _, ks = _drive(w, rows[:60])
    snap = ks.snapshot()
    second, _ = _drive(w, rows[60:], ks)
    ks.restore(snap)
    replay, _ = _drive(w, rows[60:], ks)
    assert replay == second
    ks.restore({})                       # back to before anything: a fresh start
    again, _ = _drive(w, rows)
    assert _by_key(again) == _expected(rows, mode, model, learn)[0]


@pytest.mark.parametrize("mode,learn", CASES)
def test_rescale_two_subtasks_into_one_and_back(mode, learn):
    """Shards of two subtasks (two workers) restored into one worker, and back into three:
    every key continues exactly (shards are Flink keys: rescaling moves whole shards)."""
    rows = _records(n_keys=16, n_per=9, seed=6)
    model = None if mode == "per_key" else _model()
    full, _ = _drive(_worker(mode, model, learn), rows)

    def run(workers, part, ks):
        out = []
        for r in part:
            s = fs.shard_of(raw_key(r), 16)
            out += workers[s % len(workers)].process(s, ks.map(s), ks.value(s), [r])
        ks.commit()
        return out
    ks = Keyed()
    two = [_worker(mode, model, learn) for _ in range(2)]
    a = run(two, rows[:50], ks)
    ks2 = Keyed()
    ks2.restore(ks.snapshot())
    b = run([_worker(mode, model, learn)], rows[50:100], ks2)
    ks3 = Keyed()
    ks3.restore(ks2.snapshot())
    c = run([_worker(mode, model, learn) for _ in range(3)], rows[100:], ks3)
    assert a + b + c == full


@pytest.mark.parametrize("mode,learn", CASES)
def test_key_state_that_does_not_load_fails_and_writes_nothing(mode, learn):
    """Corrupted stream bytes, a state of another model or settings, and pickles that are
    not state objects: FileFormatError naming the key (the job fails), nothing written."""
    model = None if mode == "per_key" else _model()
    other = {"settings": {**SETTINGS, "hidden_size": 5}} if mode == "per_key" \
        else {"model": _model(season=4)}
    rows = [f"a,{t},{math.sin(t)}" for t in range(5)]
    _, ks = _drive(_worker(mode, model, learn), rows)
    w_other = _worker(mode, other.get("model"), learn, settings=other.get("settings"))
    _, ks_other = _drive(w_other, rows)
    sk = ("keys", fs.shard_of("a", 16), "a")
    good = _decode(ks.stored[sk])
    flipped = bytearray(good.blob)
    flipped[len(flipped) // 2] ^= 1
    variants = [fs.KeyState(good.token, good.last, good.fingerprint, bytes(flipped)),
                fs.KeyState(good.token, good.last, good.fingerprint, good.blob[:-3]),
                fs.KeyState(good.token, good.last, good.fingerprint, b"junk"),
                _decode(ks_other.stored[sk])]
    for broken in variants:
        ks.restore({**ks.stored, sk: pickle.dumps(broken)})
        before = dict(ks.stored)
        w = _worker(mode, model, learn)
        with pytest.raises(sr.FileFormatError, match="state of key 'a' cannot be restored"):
            _drive(w, ["a,9,1.0"], ks)
        assert ks.stored == before                 # nothing written
        assert w.live_count() == 0
    ks.restore({**ks.stored, sk: pickle.dumps(good)})
    out, _ = _drive(_worker(mode, model, learn), ["a,9,1.0"], ks)
    assert [r[:2] for r in out] == [("a", 9)]
    # the pickled form calls only the two constructors, which check their arguments
    for args in [(2, "t", 1, "f", b""), (1, "t", 1.5, "f", b""), (1, "t", 1, "f", "text")]:
        with pytest.raises(sr.FileFormatError, match="not a key state"):
            fs._key_state(*args)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        _decode(pickle.dumps(np.zeros(2)))


def test_shared_weights_of_another_model_are_refused():
    model, other = _model(), _model(season=4)
    rows = [f"a,{t},{math.sin(t)}" for t in range(5)]
    _, ks_other = _drive(_worker("shared", other, True), rows)
    sk = ("model", fs.shard_of("a", 16), None)
    ks = Keyed()
    ks.restore({sk: ks_other.stored[sk]})
    with pytest.raises(sr.FileFormatError, match="shared weights of shard .* another model"):
        _drive(_worker("shared", model, True), ["b,1,1.0"] if
               fs.shard_of("b", 16) == sk[1] else ["a,1,1.0"], ks)


@pytest.mark.parametrize("in_order", [True, False])
def test_late_replayed_and_bad_records_go_aside_and_change_nothing(in_order):
    good = [f"a,{t},{math.sin(0.5 * t)!r}" for t in range(8)] + ["b,3,1.0", "b,4,2.0"]
    extra = ["a,5,9.0", "a,7,9.0", "b,2,9.0"]        # replays / late
    bad = ["a,8,1e300", "a,x,1", ",1,2", "junk"]
    rows = good[:8] + bad + good[8:] + extra + ["a,8,0.25"]
    w = _worker(in_order=in_order)
    out, ks = _drive(w, rows)
    aside = {r[1][0]: r[1][1] for r in out if r[0] is fs.BAD}
    accepted = good + ([] if in_order else extra) + ["a,8,0.25"]
    accepted.sort(key=rows.index)
    assert _by_key(out) == _expected(accepted)[0]
    assert aside.pop("a,8,1e300").startswith("ValueError: y must have magnitude")
    assert aside.pop("a,x,1") == "non-integer timestamp 'x'"
    assert aside.pop(",1,2") == "missing key"
    assert aside.pop("junk") == "not a (key, timestamp, value) record"
    if in_order:
        assert aside == {
            "a,5,9.0": "late or replayed: timestamp 5, the key's last is 7",
            "a,7,9.0": "late or replayed: timestamp 7, the key's last is 7",
            "b,2,9.0": "late or replayed: timestamp 2, the key's last is 4"}
        last = {sk[2]: _decode(v).last for sk, v in ks.stored.items()}
        assert last == {"a": 8, "b": 4}
    else:
        assert aside == {}
    # a refused record writes nothing: the state bytes after it are those before it
    w2 = _worker(in_order=in_order)
    _, ks2 = _drive(w2, good[:8])
    before = dict(ks2.stored)
    out2, _ = _drive(w2, bad + (extra[:2] if in_order else []), ks2)
    assert all(r[0] is fs.BAD for r in out2)
    assert {sk: _decode(v).blob for sk, v in ks2.stored.items()} == \
        {sk: _decode(v).blob for sk, v in before.items()}


def test_thousands_of_keys_few_live():
    """3,000 keys, 500 live, PyFlink's cache dropped after every other commit."""
    rows = [f"s{i % 3000},{i // 3000},{math.sin(0.1 * i)!r}" for i in range(6000)]
    w = _worker(live_keys=500, settings={"hidden_size": 2, "seed": 0, "k2": 2})
    out, ks = _drive(w, rows, shards=64, bundle=50, evict_every=2)
    assert _by_key(out) == _expected(rows, settings={"hidden_size": 2, "seed": 0, "k2": 2})[0]
    assert w.live_count() <= 500
    assert len([sk for sk in ks.stored if sk[0] == "keys"]) == 3000


def test_shards_are_stable():
    """The shard of a key is a CRC-32 (not Python's salted hash): fixed values."""
    assert [fs.shard_of(k, 128) for k in ("a", "k1", "sensor-17", "")] == \
        [__import__("zlib").crc32(k.encode()) % 128 for k in ("a", "k1", "sensor-17", "")]
    assert fs.shard_of("a", 128) == 0xE8B7BE43 % 128


def _model2(**kw):
    """Another model of _model()'s settings (trained on other data)."""
    m = sr.Forecaster(hidden_size=4, seed=1, k2=4, **kw)
    for t in range(60):
        m.learn_one(2.0 * math.cos(0.2 * t))
    return sr.dumps(m)


@pytest.mark.parametrize("learn", [False, True])
def test_model_swap_takes_effect_at_each_shards_next_record(learn):
    """After swap(model2), every shard runs model2's weights from its next record on (a
    learning shard drops what it learned), every key keeps its stream; after a restart the
    key states and weights written under either model are accepted when both are known,
    and key states of a model never swapped in are refused."""
    rows = _records(n_keys=12, n_per=10, seed=9)
    model, model2 = _model(), _model2()
    w = _worker("shared", model, learn)
    first, ks = _drive(w, rows[:60])
    fp2 = w.swap(model2)
    second, ks = _drive(w, rows[60:], ks)

    # reference: a twin per shard (learning) or one (frozen); at the swap every one of them
    # gets model2's weights and keeps its streams
    new = sr.loads(model2)
    twins, exp = {}, {}
    for i, r in enumerate(rows):
        k, t, y = r.split(",")
        s = fs.shard_of(k, 16) if learn else 0
        if s not in twins:
            # a shard's first record after the swap: it starts from the second model
            twins[s] = fs.twin(sr.loads(model2 if i >= 60 else model), not learn,
                               *(() if learn else (1, 1)))
        if i == 60:
            for f in twins.values():
                f.net.parameters()[...] = new.net.parameters()
        twins[s].learn_one(float(y), key=k)
        exp.setdefault(k, []).append((int(t), twins[s].forecast(1, key=k)[-1]))
    assert _by_key(first + second) == exp

    # a restarted worker of the job (constructed with the first model), told what the
    # broadcast state holds (model2 current, both known), continues exactly
    snap = ks.snapshot()
    more = [f"k{i},{100 + j},{math.sin(i + j)!r}" for j in range(3) for i in range(12)]
    cont, _ = _drive(w, more, ks)
    ks2 = Keyed()
    ks2.restore(snap)
    w2 = _worker("shared", model, learn)
    assert w2.swap(model2, w.known) == fp2
    assert _drive(w2, more, ks2)[0] == cont
    # a worker that knows only the first model refuses what was written under model2
    ks2.restore(snap)
    with pytest.raises(sr.FileFormatError, match="another model"):
        _drive(_worker("shared", model, learn), more, ks2)
    # refused swaps change nothing
    fp = w.fingerprint
    with pytest.raises(ValueError, match="the running model's settings"):
        w.swap(_model(season=4))
    with pytest.raises(TypeError, match="model must be bytes"):
        w.swap("x")
    with pytest.raises(sr.FileFormatError):
        w.swap(b"junk")
    assert w.fingerprint == fp
