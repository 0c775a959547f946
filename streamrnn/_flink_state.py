"""The state engine of streamrnn.flink, without pyflink (tested without a JVM).

Flink's key is a *shard* (``shard_of(key, shards)``, a CRC-32 of the key modulo the shard
count, the same in every process); each shard holds its keys in a map state (key ->
:class:`KeyState`) and, in the learning shared mode, its copy of the shared network in a value
state (:class:`ShardModel`). PyFlink keeps the Python objects put in its state in a cache and
encodes them when a bundle commits (before every checkpoint barrier) or when they leave the
cache; both classes encode through ``__reduce__`` as one call of a module function of this
module with plain arguments (ints, str, bytes in streamrnn's file format). A key's stream lives
in a worker :class:`~streamrnn.Forecaster` between records and is exported
(:meth:`Forecaster.export_stream`) only when PyFlink encodes it, or when the worker evicts it.

Binding: every write of a key's state gets a token unique to the worker process and the
write; the worker remembers the token of the stream it holds live. A state read back whose
token is the worker's is exactly the live stream (no import); any other (a restore, a
rollback, another worker's write) is imported from its bytes, so outputs never depend on what
is live.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import zlib
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ._records import describe, parse_record
from .forecast import Forecaster
from .io import FileFormatError, dumps, loads
from .optim import SGD

#: version of the pickled form of KeyState / ShardModel (the arguments of _key_state /
#: _shard_model)
STATE_VERSION = 1
BAD = "bad"          # tag of a bad-record result: (BAD, (repr, reason))


def shard_of(key: str, shards: int) -> int:
    """The shard of a stream key: CRC-32 of its UTF-8 bytes modulo ``shards`` (the same in
    every process and Python version, unlike ``hash``)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % shards


def check_int(v: Any, name: str, low: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    return v


_PROBE = ("streamrnn.flink", "probe")


def twin(model: Forecaster, frozen: bool, k1: Optional[int] = None,
         k2: Optional[int] = None) -> Forecaster:
    """A Forecaster with ``model``'s settings and network weights and no streams; frozen:
    ``optimizer=SGD(lr=0.0)`` (every update adds exactly zero)."""
    if model.weights != "shared" or model.net is None or model.n_features:
        raise ValueError("model must be a trained univariate Forecaster with "
                         "weights='shared'")
    kw = {k: v for k, v in model._settings().items() if k != "n_features"}
    if frozen:
        kw["optimizer"] = SGD(lr=0.0)
    if k1 is not None:
        kw["k1"] = k1
    if k2 is not None:
        kw["k2"] = k2
    f = Forecaster(**kw)
    f.learn_one(0.0, key=_PROBE)          # makes the shared network (from the seed)...
    f.forget(_PROBE)
    net = f.net
    assert net is not None and model.net is not None
    net.parameters()[...] = model.net.parameters()     # ...that gets the model's weights
    return f


# ---------------------------------------------------------------- the objects in Flink state
class KeyState:
    """One key's state: its stream (live in a worker, or bytes of ``export_stream``), the last
    accepted timestamp, the model fingerprint, and the token of its last write."""

    __slots__ = ("token", "last", "fingerprint", "blob", "worker", "lk")

    def __init__(self, token: str, last: Optional[int], fingerprint: str,
                 blob: Optional[bytes]) -> None:
        self.token, self.last, self.fingerprint, self.blob = token, last, fingerprint, blob
        self.worker: Optional["Worker"] = None       # set while the stream is live there
        self.lk: Any = None

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        blob = self.blob
        if blob is None:
            assert self.worker is not None, "a KeyState without bytes must be live"
            blob = self.worker.export(self)
        return (_key_state, (STATE_VERSION, self.token, self.last, self.fingerprint, blob))


def _key_state(version: Any, token: Any, last: Any, fingerprint: Any, blob: Any) -> KeyState:
    """The only function a pickled KeyState calls: checks the types (the stream bytes are
    validated by ``import_stream`` when the key is used)."""
    if version != STATE_VERSION or not isinstance(token, str) \
            or not (last is None or isinstance(last, int)) \
            or not isinstance(fingerprint, str) or not isinstance(blob, bytes):
        raise FileFormatError(f"streamrnn.flink: not a key state of version {STATE_VERSION}")
    return KeyState(token, last, fingerprint, blob)


class ShardModel:
    """A shard's copy of the shared network (learning shared mode): ``sr.dumps`` of the
    network, the model fingerprint, the number of updates, the token of its last write."""

    __slots__ = ("token", "fingerprint", "blob", "worker", "shard")

    def __init__(self, token: str, fingerprint: str, blob: Optional[bytes]) -> None:
        self.token, self.fingerprint, self.blob = token, fingerprint, blob
        self.worker: Optional["Worker"] = None
        self.shard: Any = None

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        blob = self.blob
        if blob is None:
            assert self.worker is not None
            blob = self.worker.export_model(self)
        return (_shard_model, (STATE_VERSION, self.token, self.fingerprint, blob))


def _shard_model(version: Any, token: Any, fingerprint: Any, blob: Any) -> ShardModel:
    if version != STATE_VERSION or not isinstance(token, str) \
            or not isinstance(fingerprint, str) or not isinstance(blob, bytes):
        raise FileFormatError(f"streamrnn.flink: not a shard model of version {STATE_VERSION}")
    return ShardModel(token, fingerprint, blob)


# ---------------------------------------------------------------- the engine
class Worker:
    """The per-subtask engine. ``mode``: 'per_key' (``settings``) or 'shared' (``model``
    bytes; ``learn``: the shard's copy of the network learns, else it is frozen)."""

    def __init__(self, mode: str, settings: Optional[Dict[str, Any]], model: Optional[bytes],
                 horizon: int, in_order: bool, live_keys: int, learn: bool) -> None:
        self.mode, self.settings, self.model = mode, settings, model
        self.horizon, self.in_order, self.live_keys, self.learn = (
            horizon, in_order, live_keys, learn)
        self._model_obj: Optional[Forecaster] = None
        if mode == "shared":
            assert model is not None
            h = hashlib.sha256(b"shared\0" + (b"learn" if learn else b"frozen") + b"\0" + model)
            self._model_obj = loads(model, Forecaster)
        else:
            # the canonical settings (every default spelled out)
            h = hashlib.sha256(b"per_key\0" + repr(Forecaster(
                **{**(settings or {}), "weights": "per_key"})).encode())
        self.fingerprint = h.hexdigest()[:32]
        #: fingerprints whose key states and weights are accepted (this job's models)
        self.known = {self.fingerprint}
        self.open()

    def open(self) -> None:
        self._shards: Dict[Any, Forecaster] = {}
        self._mtok: Dict[Any, str] = {}          # shard -> token of the weights it holds
        self._sfp: Dict[Any, str] = {}           # shard -> fingerprint of those weights
        self._tok: Dict[Any, str] = {}           # (shard, key) -> token of the live stream
        self._live: "OrderedDict[Any, KeyState]" = OrderedDict()
        self._wid = os.urandom(8).hex()
        self._count = itertools.count()

    def _token(self) -> str:
        return f"{self._wid}.{next(self._count)}"

    def _new_forecaster(self) -> Forecaster:
        if self.mode == "per_key":
            return Forecaster(**{**(self.settings or {}), "weights": "per_key"})
        if self._model_obj is None:
            assert self.model is not None
            self._model_obj = loads(self.model, Forecaster)
        if self.learn:
            return twin(self._model_obj, False)
        return twin(self._model_obj, True, 1, 1)

    def swap(self, model: bytes, known: Iterable[str] = ()) -> str:
        """Shared modes: run ``model`` (``sr.dumps`` of a Forecaster of the same settings)
        from now on; every shard takes its weights at its next record (a learning shard
        drops what it learned), keys keep their streams. ``known``: fingerprints of earlier
        models whose key states stay accepted. Returns the model's fingerprint. Raises
        ValueError (nothing changed) for bytes that are not such a model."""
        if self.mode != "shared":
            raise ValueError("model swaps are for mode 'shared'")
        if not isinstance(model, (bytes, bytearray)):
            raise TypeError(f"model must be bytes, got {type(model).__name__}")
        model = bytes(model)
        fp = self._fingerprint_of(model)
        if fp != self.fingerprint:
            new = loads(model, Forecaster)
            if self._model_obj is None:
                assert self.model is not None
                self._model_obj = loads(self.model, Forecaster)
            if repr(twin(new, not self.learn)) != repr(twin(self._model_obj, not self.learn)):
                raise ValueError(f"a swapped-in model must have the running model's settings "
                                 f"({self._model_obj!r}), got {new!r}")
            self.model, self._model_obj, self.fingerprint = model, new, fp
        self.known.update(known)
        self.known.add(fp)
        return fp

    def _fingerprint_of(self, model: bytes) -> str:
        return hashlib.sha256(b"shared\0" + (b"learn" if self.learn else b"frozen") + b"\0"
                              + model).hexdigest()[:32]

    def _set_model_weights(self, shard: Any, f: Forecaster) -> None:
        assert f.net is not None and self._model_obj is not None \
            and self._model_obj.net is not None
        f.net.parameters()[...] = self._model_obj.net.parameters()
        self._sfp[shard] = self.fingerprint

    def _forecaster(self, shard: Any, model_state: Any) -> Forecaster:
        f = self._shards.get(shard)
        if f is None:
            f = self._shards[shard] = self._new_forecaster()
            self._sfp[shard] = self.fingerprint
        if self.learn and self.mode == "shared":
            m = model_state.value()
            if m is None and shard in self._mtok:
                # the shard's weights in Flink are the model's again (state rolled back to
                # before this shard learned): start the shard afresh
                self._drop_shard(shard)
                f = self._shards[shard] = self._new_forecaster()
                self._sfp[shard] = self.fingerprint
            elif m is not None and m.token != self._mtok.get(shard):
                # weights written elsewhere (a restore): the state is the truth
                if m.fingerprint not in self.known:
                    raise FileFormatError(
                        f"streamrnn.flink: the shared weights of shard {shard!r} were "
                        f"written by another model (fingerprint {m.fingerprint}, this "
                        f"job's is {self.fingerprint})")
                if m.fingerprint == self.fingerprint:
                    assert m.blob is not None
                    try:
                        net = loads(m.blob)
                        assert f.net is not None
                        if type(net) is not type(f.net) or \
                                net.parameters().shape != f.net.parameters().shape or \
                                net.parameters().dtype != f.net.parameters().dtype:
                            raise FileFormatError("not this model's network")
                    except FileFormatError as e:
                        raise FileFormatError(f"streamrnn.flink: the shared weights of shard "
                                              f"{shard!r} cannot be restored: {e}") from e
                    f.net.parameters()[...] = net.parameters()
                    self._sfp[shard] = m.fingerprint
                else:       # weights of a model swapped out since: the current model's
                    self._set_model_weights(shard, f)
                self._mtok[shard] = m.token
        if self.mode == "shared" and self._sfp.get(shard) != self.fingerprint:
            self._set_model_weights(shard, f)       # a model swapped in since
        return f

    # -- called by PyFlink's encoder (KeyState/ShardModel.__reduce__)
    def export(self, st: KeyState) -> bytes:
        shard, key = st.lk
        if self._tok.get(st.lk) != st.token:
            raise RuntimeError(f"streamrnn.flink: key {key!r} is no longer live as written")
        return self._shards[shard].export_stream(key)

    def export_model(self, m: ShardModel) -> bytes:
        if self._mtok.get(m.shard) != m.token:
            raise RuntimeError(f"streamrnn.flink: shard {m.shard!r} weights moved on")
        net = self._shards[m.shard].net
        assert net is not None
        return dumps(net)

    # -- records
    def process(self, shard: Any, keys: Any, model_state: Any,
                values: Iterable[Any]) -> List[Tuple[Any, Any]]:
        """Process records of one shard in order; returns ``(key, ts, forecast)`` tuples and
        ``(BAD, (repr, reason))`` pairs in record order. ``keys``: the shard's map state
        (get/put), ``model_state``: its value state (value/update) or None."""
        f = self._forecaster(shard, model_state)
        out: List[Any] = []
        wrote = False
        for value in values:
            rec, reason = parse_record(value)
            if rec is None:
                out.append((BAD, (describe(value), reason)))
                continue
            key, ts, y = rec
            r = self._one(f, shard, keys, key, ts, y)
            if r.__class__ is str:
                out.append((BAD, (describe(value), r)))
            else:
                out.append((key, ts, r))
                wrote = True
        if wrote and self.learn and self.mode == "shared":
            m = ShardModel(self._token(), self.fingerprint, None)
            m.worker, m.shard = self, shard
            self._mtok[shard] = m.token
            model_state.update(m)
        self._evict()
        return out

    def _one(self, f: Forecaster, shard: Any, keys: Any, key: str, ts: int,
             y: float) -> Any:
        """One parsed record: its forecast (float), or the reason (str) it is refused; the
        state is written only when it is accepted."""
        st = keys.get(key)
        lk = (shard, key)
        if st is not None:
            if st.fingerprint not in self.known:
                raise FileFormatError(
                    f"streamrnn.flink: the state of key {key!r} cannot be restored: written "
                    f"by another model or settings (fingerprint {st.fingerprint}, this job's "
                    f"is {self.fingerprint})")
            if self.in_order and st.last is not None and ts <= st.last:
                return f"late or replayed: timestamp {ts}, the key's last is {st.last}"
        if st is None:
            if key in f:
                f.forget(key)
                self._unbind(lk)
        elif self._tok.get(lk) != st.token or key not in f:
            # not live, or the state is not what this worker wrote last: import it
            blob = st.blob
            if blob is None:        # a live object of a stream this worker no longer holds
                raise FileFormatError(f"streamrnn.flink: the state of key {key!r} cannot "
                                      f"be restored: its stream is gone")
            try:
                f.import_stream(key, blob)
            except FileFormatError as e:
                raise FileFormatError(f"streamrnn.flink: the state of key {key!r} cannot be "
                                      f"restored: {e}") from e
            self._bind(lk, st)
        try:
            f.learn_one(y, key=key)
            out = f.forecast(self.horizon, key=key)[-1]
        except (TypeError, ValueError, ArithmeticError) as e:
            # refused by the forecaster: it changed nothing (all or nothing)
            return f"{type(e).__name__}: {e}"
        if st is None:
            st = KeyState("", None, self.fingerprint, None)
        st.token = self._token()
        st.fingerprint = self.fingerprint
        st.last = ts if self.in_order else st.last
        st.blob = None
        self._bind(lk, st)
        keys.put(key, st)
        return float(out)

    def _bind(self, lk: Any, st: KeyState) -> None:
        st.worker, st.lk = self, lk
        self._tok[lk] = st.token
        live = self._live
        live.pop(lk, None)
        live[lk] = st

    def _unbind(self, lk: Any) -> None:
        self._tok.pop(lk, None)
        self._live.pop(lk, None)

    def _drop_shard(self, shard: Any) -> None:
        self._shards.pop(shard, None)
        self._mtok.pop(shard, None)
        self._sfp.pop(shard, None)
        for lk in [lk for lk in self._live if lk[0] == shard]:
            self._unbind(lk)

    def _evict(self) -> None:
        live = self._live
        while len(live) > self.live_keys:
            lk, st = live.popitem(last=False)
            shard, key = lk
            f = self._shards[shard]
            if self._tok.get(lk) == st.token and st.blob is None:
                # its state object may still be written by Flink later: give it its bytes
                st.blob = f.export_stream(key)
            st.worker = None
            self._tok.pop(lk, None)
            if key in f:
                f.forget(key)

    def live_count(self) -> int:
        return sum(len(f) for f in self._shards.values())


def split_batch(batch: Any, shards: int) -> List[Tuple[int, List[Any]]]:
    """A micro-batch (a list of raw records, or a str of CSV lines) as ``(shard, records)``
    groups, each group in the batch's order (something that is neither: one bad record)."""
    from ._records import raw_key
    groups: Dict[int, List[Any]] = {}
    if isinstance(batch, str):
        items: List[Any] = batch.splitlines()
    elif isinstance(batch, (list, tuple)):
        items = list(batch)
    else:
        items = [batch]
    for r in items:
        groups.setdefault(shard_of(raw_key(r), shards), []).append(r)
    return list(groups.items())
