"""Apache Flink (PyFlink) integration: keyed streams of forecasts, state in Flink keyed state.

Needs the optional extra ``pip install "streamrnn[flink]"`` (apache-flink); ``import
streamrnn`` never imports pyflink, only ``import streamrnn.flink`` does. The guide page
``docs/guide/flink.md`` has the configuration, the deployment and the semantics in full.

Records are ``(key, timestamp, value)``. :func:`forecast_stream` validates them (every bad
record goes to a side output with the reason and the job never fails on one: a missing,
NaN or non-str/int key; a timestamp that is not an integer in the 64-bit range, such as inf
or 1.5; a value that is not a number or beyond the float range, such as inf or 10**400; see
``streamrnn._records``) and emits ``(key, timestamp, forecast)`` for every good record as soon
as it is made. :func:`forecast_batches` does the same for elements that carry many records
(micro-batches), with one Python call per batch and shard.

Modes:

* ``"per_key"``: every key has its own online :class:`~streamrnn.Forecaster` stream (its own
  network, optimizer moments, TBPTT buffer, scalers, state, season history, combination and
  conformal state) learning from its own records. Every key's outputs are exactly those of a
  ``Forecaster(**settings)`` fed only that key's records.
* ``"shared"``, ``learn=False``: one trained univariate Forecaster (bytes from
  :func:`streamrnn.dumps`) is run with frozen weights; every key keeps the rest of a stream.
  Every key's outputs are exactly those of :func:`frozen_twin` of the model fed its records.
* ``"shared"``, ``learn=True``: the model keeps learning. Every *shard* (below) holds its own
  copy of the network, starting from the model's weights, trained by the records of its keys
  in arrival order (a ``Forecaster(weights='shared')`` per shard: :func:`learning_twin`); the
  copy is in the shard's Flink state, so checkpoints and savepoints carry it and a restart
  continues it bit for bit. Shards do not exchange weights; a new model (for example the
  average of the shards' copies, read from a savepoint) is swapped in through a broadcast
  stream (``model_updates=`` of :func:`forecast_stream`).

State: Flink's key is a shard ``shard_of(key, shards)``; every shard keeps its keys in one
``MapState`` (key -> the key's stream, last accepted timestamp and model fingerprint) and,
when learning, its network in a ``ValueState``. The streams stay live in the Python worker
and are encoded (with :meth:`Forecaster.export_stream <streamrnn.Forecaster.export_stream>`,
streamrnn's file format; the pickled form is one call of a function of
``streamrnn._flink_state`` with ints, strings and those bytes) only when PyFlink commits a
bundle (which it does before every checkpoint barrier) or evicts them from its cache: one
round trip per dirty shard per bundle. Outputs never depend on what is live.

Key state that cannot be read back (corrupted, or written with another model or other
settings: the model fingerprint does not match) fails the job with
:class:`~streamrnn.FileFormatError` naming the key; it is never restarted silently.

Order policy (``in_order=True``, the default): every key's timestamps must increase. A record
whose timestamp is not after the last one its key accepted (a replay after a restart from
an older source position, a duplicate, or a late record) goes to the bad-records output with
the reason ``"late or replayed: timestamp T, the key's last is L"`` and changes nothing.
``in_order=False`` takes records in arrival order whatever their timestamps. Output is
at-least-once: write it to a sink idempotent on ``(key, timestamp)``.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple

from ._flink_state import BAD, Worker, check_int, shard_of, split_batch, twin
from ._records import raw_key
from .forecast import Forecaster
from .io import loads

try:
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag
    from pyflink.datastream.functions import KeyedBroadcastProcessFunction
    from pyflink.datastream.functions import FlatMapFunction
    from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
except ImportError as _e:  # pragma: no cover - exercised without the extra
    raise ImportError("streamrnn.flink needs apache-flink: pip install 'streamrnn[flink]'"
                      ) from _e

__all__ = ["ForecastFunction", "forecast_stream", "forecast_batches", "frozen_twin",
           "learning_twin", "shard_of", "BAD_RECORDS", "MODEL_UPDATES", "OUTPUT_TYPE"]

#: Side output of bad records: ``(repr of the record, reason)``.
BAD_RECORDS = OutputTag("streamrnn-bad-records", Types.TUPLE([Types.STRING(), Types.STRING()]))
#: Side output of model updates (``model_updates=``): ``(fingerprint or '', 'accepted' or
#: the reason it was refused)``, once per subtask and update.
MODEL_UPDATES = OutputTag("streamrnn-model-updates",
                          Types.TUPLE([Types.STRING(), Types.STRING()]))
_MODELS = MapStateDescriptor("streamrnn-models", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
#: Type of the forecasts: ``(key, timestamp, forecast)``.
OUTPUT_TYPE = Types.TUPLE([Types.STRING(), Types.LONG(), Types.DOUBLE()])
_MODES = ("per_key", "shared")
#: Default shard counts: record-at-a-time, micro-batched.
SHARDS = 128
BATCH_SHARDS = 8


def frozen_twin(model: Forecaster, k1: Optional[int] = None,
                k2: Optional[int] = None) -> Forecaster:
    """A Forecaster with ``model``'s settings and network weights whose weights never change
    (``optimizer=SGD(lr=0.0)``: every update adds exactly zero), and no streams.

    The frozen shared mode runs every key on ``frozen_twin(model, 1, 1)`` (the TBPTT window
    does not change any forecast when the weights are frozen; 1 keeps each key's state small).

    Parameters
    ----------
    model : Forecaster
        A trained univariate Forecaster with ``weights='shared'``.
    k1, k2 : int or None
        TBPTT settings of the twin (None: the model's).

    Returns
    -------
    Forecaster

    Raises
    ------
    ValueError
        ``model`` has no network, per-key weights or features.

    Examples
    --------
    >>> twin = frozen_twin(sr.loads(model_bytes))                # doctest: +SKIP
    """
    return twin(model, True, k1, k2)


def learning_twin(model: Forecaster) -> Forecaster:
    """A Forecaster with ``model``'s settings (optimizer included) and network weights, and no
    streams: what every shard of the learning shared mode (``learn=True``) runs.

    Raises
    ------
    ValueError
        ``model`` has no network, per-key weights or features.

    Examples
    --------
    >>> shard_model = learning_twin(sr.loads(model_bytes))       # doctest: +SKIP
    """
    return twin(model, False)


def _check_args(mode: Any, settings: Any, model: Any, horizon: Any, live_keys: Any,
                in_order: Any, learn: Any, shards: Any, state_ttl_ms: Any
                ) -> Tuple[Optional[Dict[str, Any]], Optional[bytes]]:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    check_int(horizon, "horizon", 1)
    check_int(live_keys, "live_keys", 0)
    check_int(shards, "shards", 1)
    if state_ttl_ms is not None:
        check_int(state_ttl_ms, "state_ttl_ms", 1)
    for name, v in (("in_order", in_order), ("learn", learn)):
        if not isinstance(v, bool):
            raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    if mode == "per_key":
        if learn:
            raise ValueError("learn=True is for mode 'shared' (per-key streams always learn)")
        settings = {} if settings is None else dict(settings)
        Forecaster(**settings)      # validates now, in the client
        return settings, None
    if model is None:
        raise ValueError("mode 'shared' needs model= (sr.dumps of a trained "
                         "Forecaster), got None")
    if not isinstance(model, (bytes, bytearray)):
        raise TypeError(f"model must be bytes, got {type(model).__name__}")
    twin(loads(bytes(model), Forecaster), not learn)      # validates now
    return None, bytes(model)


class ForecastFunction(KeyedProcessFunction):
    """Keyed process function on shards: per record ``(key, timestamp, value)`` (or, with
    ``batched=True``, per ``(shard, [records])`` element) learn (per-key mode, learning shared
    mode) or step (frozen shared mode), then emit ``(key, timestamp, forecast)`` (batched: one
    list of them per element).

    Parameters
    ----------
    mode : {'per_key', 'shared'}
    settings : dict or None
        Per-key mode: keyword arguments of :class:`~streamrnn.Forecaster` for every key's new
        forecaster (e.g. ``{"hidden_size": 16, "seed": 0}``).
    model : bytes or None
        Shared mode: a trained univariate Forecaster with ``weights='shared'`` as
        :func:`streamrnn.dumps` bytes; every key starts a fresh stream (zero state, empty
        scalers) on its shard's network.
    horizon : int, default 1
        The forecast emitted is the ``horizon``-th step ahead.
    in_order : bool, default True
        Send a record whose timestamp is not after its key's last accepted one to the
        bad-records output (the order policy in the module notes).
    live_keys : int, default 100_000
        How many keys' streams a worker keeps live (least recently used first out: it is
        encoded into its state object and dropped). Outputs never depend on it.
    learn : bool, default False
        Shared mode: every shard's copy of the network learns (see the module notes).
    state_ttl_ms : int or None
        Drop a key's state this many milliseconds (processing time) after its last accepted
        record (Flink state TTL; None: never). A key that comes back starts afresh.
    batched : bool, default False
        Elements are ``(shard, [records])`` (see :func:`forecast_batches`).

    Raises
    ------
    ValueError
        Unknown mode, missing ``settings``/``model`` for the mode, a model that is not a
        usable shared univariate Forecaster, a bad number.
    TypeError
        ``model`` not bytes, a flag not a bool.

    Examples
    --------
    >>> fn = ForecastFunction("per_key", settings={"hidden_size": 8, "seed": 0})  # doctest: +SKIP
    """

    def __init__(self, mode: str = "per_key", settings: Optional[Dict[str, Any]] = None,
                 model: Optional[bytes] = None, horizon: int = 1,
                 live_keys: int = 100_000, in_order: bool = True, learn: bool = False,
                 state_ttl_ms: Optional[int] = None, batched: bool = False) -> None:
        settings, model = _check_args(mode, settings, model, horizon, live_keys, in_order,
                                      learn, 1, state_ttl_ms)
        self.mode, self.settings, self.model = mode, settings, model
        self.horizon, self.live_keys, self.in_order, self.learn = (
            horizon, live_keys, in_order, learn)
        self.state_ttl_ms, self.batched = state_ttl_ms, batched
        self.worker: Optional[Worker] = None
        self._keys: Any = None
        self._model: Any = None

    def open(self, runtime_context: Any) -> None:
        """Create the shard's states and the worker engine. Refuses PyFlink's thread
        execution mode (``python.execution-mode: thread``) with a RuntimeError."""
        if ".embedded." in type(runtime_context).__module__:
            raise RuntimeError(
                "streamrnn.flink does not support python.execution-mode 'thread' (its state "
                "objects are encoded by PyFlink's process-mode state cache); set "
                "python.execution-mode to 'process'")
        desc = MapStateDescriptor("streamrnn-keys", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        if self.state_ttl_ms is not None:
            desc.enable_time_to_live(_ttl(self.state_ttl_ms))
        self._keys = runtime_context.get_map_state(desc)
        self._model = runtime_context.get_state(
            ValueStateDescriptor("streamrnn-model", Types.PICKLED_BYTE_ARRAY())) \
            if self.learn else None
        self.worker = Worker(self.mode, self.settings, self.model, self.horizon,
                             self.in_order, self.live_keys, self.learn)

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        """Record-at-a-time: one record of the current shard; batched: ``(shard, records)``.
        Bad records go to :data:`BAD_RECORDS`; key state that does not load raises
        :class:`~streamrnn.FileFormatError` (the job fails)."""
        w = self.worker
        assert w is not None  # set by open()
        shard = ctx.get_current_key()
        if self.batched:
            res = w.process(shard, self._keys, self._model, value[1])
            good = []
            for r in res:
                if r[0] is BAD:
                    yield BAD_RECORDS, r[1]
                else:
                    good.append(r)
            if good:
                yield good
            return
        for r in w.process(shard, self._keys, self._model, (value,)):
            if r[0] is BAD:
                yield BAD_RECORDS, r[1]
            else:
                yield r


class _SwapForecastFunction(KeyedBroadcastProcessFunction):
    """ForecastFunction with a broadcast input of models (``sr.dumps`` bytes of a Forecaster
    of the running model's settings): every subtask swaps it in when it arrives (see
    :func:`forecast_stream`); the current model and the fingerprints of all models the job
    ran are kept in broadcast state, so a restore continues with them."""

    def __init__(self, fn: ForecastFunction) -> None:
        self.fn = fn
        self._synced = False

    def open(self, runtime_context: Any) -> None:
        self.fn.open(runtime_context)
        self._synced = False

    def _sync(self, ctx: Any) -> None:
        if not self._synced:
            st = ctx.get_broadcast_state(_MODELS)
            cur = st.get("current")
            w = self.fn.worker
            assert w is not None
            if cur is not None:
                w.swap(cur, st.get("known") or ())
            self._synced = True

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        self._sync(ctx)
        return self.fn.process_element(value, ctx)

    def process_broadcast_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        self._sync(ctx)
        w = self.fn.worker
        assert w is not None
        try:
            fp = w.swap(value)
        except (TypeError, ValueError) as e:
            yield MODEL_UPDATES, ("", f"refused: {type(e).__name__}: {e}")
            return
        st = ctx.get_broadcast_state(_MODELS)
        st.put("current", bytes(value))
        st.put("known", sorted(w.known))
        yield MODEL_UPDATES, (fp, "accepted")


def _ttl(ms: int) -> Any:
    from pyflink.common.time import Time
    from pyflink.datastream.state import StateTtlConfig
    # written on create and write; an expired value may be returned until cleaned up, so
    # PyFlink's read cache stays on (its other settings turn the cache off)
    return StateTtlConfig.new_builder(Time.milliseconds(ms)) \
        .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite) \
        .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp) \
        .build()


class _Split(FlatMapFunction):
    """A micro-batch -> ``(shard, records)`` groups (one per shard present)."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    def flat_map(self, value: Any) -> Iterable[Any]:
        return split_batch(value, self.shards)


def _shard_key(shards: int) -> Any:
    def key(value: Any) -> int:
        return shard_of(raw_key(value), shards)
    return key


def _first(value: Any) -> int:
    return value[0]


def forecast_stream(ds: Any, mode: str = "per_key", *, settings: Optional[Dict[str, Any]] = None,
                    model: Optional[bytes] = None, horizon: int = 1,
                    uid: str = "streamrnn-forecast", live_keys: int = 100_000,
                    in_order: bool = True, learn: bool = False, shards: int = SHARDS,
                    state_ttl_ms: Optional[int] = None,
                    model_updates: Any = None) -> Tuple[Any, Any]:
    """Wire the forecasting into a DataStream job, record at a time.

    Parameters
    ----------
    ds : pyflink.datastream.DataStream
        Records ``(key, timestamp, value)`` (any Python objects) or CSV lines
        ``"key,timestamp,value"`` (strings); an empty value is a missing value.
    mode, settings, model, horizon, live_keys, in_order, learn, state_ttl_ms
        As in :class:`ForecastFunction`.
    uid : str, default 'streamrnn-forecast'
        Operator id of the keyed function (its state in savepoints is found by it; two
        forecast_stream calls in one job need different ids).
    shards : int, default 128
        Keys are grouped into this many Flink keys (the unit of state commits and, when
        learning, of the shared network's copies); fixed for the life of the state: a
        savepoint restores only into the same ``shards`` (the learning mode's outputs
        depend on it, the other modes' do not). At least the job's max parallelism is
        useful; a bundle commits one round trip per shard it touched.
    model_updates : DataStream of bytes or None
        Shared mode: ``sr.dumps`` bytes of Forecasters with the running model's settings,
        broadcast to every subtask; each swaps the model in when the update arrives, and
        every shard runs its weights from its next record on (a learning shard drops what
        it learned; keys keep their streams). Key states and weights written under any
        model the job ran stay accepted; the current model survives restores (broadcast
        state). Acceptance or refusal (other settings, not a model) is reported once per
        subtask on the side output :data:`MODEL_UPDATES` (``out.get_side_output(...)``).

    Returns
    -------
    forecasts : DataStream of ``(key, timestamp, forecast)`` (:data:`OUTPUT_TYPE`)
    bad : DataStream of ``(record repr, reason)``, the side output :data:`BAD_RECORDS`

    Raises
    ------
    ValueError, TypeError
        As :class:`ForecastFunction`.

    Examples
    --------
    >>> out, bad = forecast_stream(env.from_collection(rows), "per_key",
    ...                            settings={"hidden_size": 8, "seed": 0})  # doctest: +SKIP
    """
    _check_args(mode, settings, model, horizon, live_keys, in_order, learn, shards,
                state_ttl_ms)
    fn = ForecastFunction(mode, settings=settings, model=model, horizon=horizon,
                          live_keys=live_keys, in_order=in_order, learn=learn,
                          state_ttl_ms=state_ttl_ms)
    keyed = ds.key_by(_shard_key(shards), key_type=Types.INT())
    if model_updates is not None:
        if mode != "shared":
            raise ValueError("model_updates= is for mode 'shared'")
        out = keyed.connect(model_updates.broadcast(_MODELS)) \
            .process(_SwapForecastFunction(fn), output_type=OUTPUT_TYPE).uid(uid)
    else:
        out = keyed.process(fn, output_type=OUTPUT_TYPE).uid(uid)
    return out, out.get_side_output(BAD_RECORDS)


def forecast_batches(ds: Any, mode: str = "per_key", *,
                     settings: Optional[Dict[str, Any]] = None,
                     model: Optional[bytes] = None, horizon: int = 1,
                     uid: str = "streamrnn-forecast", live_keys: int = 100_000,
                     in_order: bool = True, learn: bool = False, shards: int = BATCH_SHARDS,
                     state_ttl_ms: Optional[int] = None) -> Tuple[Any, Any]:
    """Micro-batches: every element of ``ds`` is a list of records (of any keys, each as in
    :func:`forecast_stream`) or a str of CSV lines ``"key,timestamp,value"``; it is split by
    shard (one Python call per batch) and every shard's part is processed by one call, in the
    batch's order. Model updates (``model_updates=``) are for :func:`forecast_stream` only.

    Parameters are those of :func:`forecast_stream`; ``shards`` defaults to 8 (fewer shards:
    larger parts per call). The per-key outputs are the same as :func:`forecast_stream`'s
    on the records in the same order (with ``learn=True`` for the same ``shards``).

    Returns
    -------
    forecasts : DataStream of lists of ``(key, timestamp, forecast)`` (pickled; one list per
        batch and shard; ``.flat_map(lambda b: b, output_type=OUTPUT_TYPE)`` flattens it)
    bad : DataStream of ``(record repr, reason)``, the side output :data:`BAD_RECORDS`

    Examples
    --------
    >>> out, bad = forecast_batches(env.from_collection(batches), "shared",
    ...                             model=model_bytes)                  # doctest: +SKIP
    """
    _check_args(mode, settings, model, horizon, live_keys, in_order, learn, shards,
                state_ttl_ms)
    fn = ForecastFunction(mode, settings=settings, model=model, horizon=horizon,
                          live_keys=live_keys, in_order=in_order, learn=learn,
                          state_ttl_ms=state_ttl_ms, batched=True)
    # the split runs with the input's parallelism (a forward connection): every key's
    # records keep their order up to the keyed function
    split = ds.flat_map(_Split(shards), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .set_parallelism(ds._j_data_stream.getParallelism()).name("streamrnn-split")
    out = split.key_by(_first, key_type=Types.INT()) \
        .process(fn, output_type=Types.PICKLED_BYTE_ARRAY()).uid(uid)
    return out, out.get_side_output(BAD_RECORDS)


_raw_key = raw_key
