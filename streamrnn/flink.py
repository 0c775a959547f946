"""Apache Flink (PyFlink) integration: keyed streams of forecasts, state in Flink keyed state.

Needs the optional extra ``pip install "streamrnn[flink]"`` (apache-flink); ``import
streamrnn`` never imports pyflink, only ``import streamrnn.flink`` does.

Records are ``(key, timestamp, value)``. :func:`forecast_stream` validates them (every bad
record goes to a side output with the reason and the job never fails on one: a missing,
NaN or non-str/int key; a timestamp that is not an integer in the 64-bit range, such as inf
or 1.5; a value that is not a number or beyond the float range, such as inf or 10**400; see
``streamrnn._records``), keys the stream and runs :class:`ForecastFunction`, which emits
``(key, timestamp, forecast)`` for every good record as soon as it is made.

Two modes:

* ``"per_key"``: every key has its own online :class:`~streamrnn.Forecaster` stream (its own
  network, optimizer moments, TBPTT buffer, scalers, state, season history, combination and
  conformal state) learning from its own records; its keyed state is the bytes of
  :meth:`Forecaster.export_stream <streamrnn.Forecaster.export_stream>` (streamrnn's file
  format, no pickle). Every key's outputs are exactly those of a ``Forecaster(**settings)``
  fed only that key's records.
* ``"shared"``: one trained univariate Forecaster (bytes from :func:`streamrnn.dumps`, given
  to the constructor, so every worker holds the same network) is run with frozen weights;
  every key keeps the rest of a stream (recurrent state, scalers, season history,
  combination, conformal state) as ``export_stream`` bytes. Every key's outputs are exactly
  those of the model's settings with ``optimizer=SGD(lr=0.0)`` (so its weights never move)
  on the model's weights, fed the same records: see :func:`frozen_twin`.

Key state that cannot be read back (corrupted, or written by a model of another
configuration: the stream's fingerprint does not match) fails the job with the
:class:`~streamrnn.FileFormatError` naming the key: restoring it must not silently restart
the key or send its records to the bad-records output.

Order policy (``in_order=True``, the default): every key's timestamps must increase. A record
whose timestamp is not after the last one its key accepted (a replay after a restart from
an older source position, a duplicate, or a late record) goes to the bad-records output with
the reason ``"late or replayed: timestamp T, the key's last is L"`` and changes nothing; a
refused record does not move the key's last timestamp. ``in_order=False`` takes records in
arrival order whatever their timestamps.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Iterable, Optional, Tuple

from .forecast import Forecaster
from .optim import SGD
from ._records import describe, parse_record, raw_key
from .io import FileFormatError, loads

try:
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag
    from pyflink.datastream.state import ValueStateDescriptor
except ImportError as _e:  # pragma: no cover - exercised without the extra
    raise ImportError("streamrnn.flink needs apache-flink: pip install 'streamrnn[flink]'"
                      ) from _e

__all__ = ["ForecastFunction", "forecast_stream", "frozen_twin", "BAD_RECORDS",
           "OUTPUT_TYPE"]

#: Side output of bad records: ``(repr of the record, reason)``.
BAD_RECORDS = OutputTag("streamrnn-bad-records", Types.TUPLE([Types.STRING(), Types.STRING()]))
#: Type of the forecasts: ``(key, timestamp, forecast)``.
OUTPUT_TYPE = Types.TUPLE([Types.STRING(), Types.LONG(), Types.DOUBLE()])
_MODES = ("per_key", "shared")


def frozen_twin(model: Forecaster, k1: Optional[int] = None,
                k2: Optional[int] = None) -> Forecaster:
    """A Forecaster with ``model``'s settings and network weights whose weights never change
    (``optimizer=SGD(lr=0.0)``: every update adds exactly zero), and no streams.

    The shared mode runs every key on ``frozen_twin(model, 1, 1)`` (the TBPTT window does not
    change any forecast when the weights are frozen; 1 keeps each key's state small).

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
    if model.weights != "shared" or model.net is None or model.n_features:
        raise ValueError("model must be a trained univariate Forecaster with "
                         "weights='shared'")
    kw = {k: v for k, v in model._settings().items() if k != "n_features"}
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


_PROBE = ("streamrnn.flink", "probe")


class ForecastFunction(KeyedProcessFunction):
    """Keyed process function: per record ``(key, timestamp, value)`` of its key, learn (per-key
    mode) or step (shared mode), then emit ``(key, timestamp, forecast)``.

    Parameters
    ----------
    mode : {'per_key', 'shared'}
    settings : dict or None
        Per-key mode: keyword arguments of :class:`~streamrnn.Forecaster` for every key's new
        forecaster (e.g. ``{"hidden_size": 16, "seed": 0}``).
    model : bytes or None
        Shared mode: a trained univariate Forecaster with ``weights='shared'`` as
        :func:`streamrnn.dumps` bytes; every key starts a fresh stream (zero state, empty
        scalers) on its network, and the network is never changed.
    horizon : int, default 1
        The forecast emitted is the ``horizon``-th step ahead.
    in_order : bool, default True
        Send a record whose timestamp is not after its key's last accepted one to the
        bad-records output (the order policy in the module notes).
    live_keys : int, default 1024
        How many keys' streams a worker keeps live between their records (least recently
        used first out). A live key whose state in Flink is still exactly the bytes it
        wrote last is not read back (no ``import_stream``); any other state (a restore,
        a rollback after a failure) is read back, so outputs never depend on it.

    Raises
    ------
    ValueError
        Unknown mode, missing ``settings``/``model`` for the mode, or a model that is not a
        usable shared univariate Forecaster.
    TypeError
        ``model`` not bytes.

    Examples
    --------
    >>> fn = ForecastFunction("per_key", settings={"hidden_size": 8, "seed": 0})  # doctest: +SKIP
    """

    def __init__(self, mode: str = "per_key", settings: Optional[Dict[str, Any]] = None,
                 model: Optional[bytes] = None, horizon: int = 1,
                 live_keys: int = 1024, in_order: bool = True) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
        if mode == "per_key":
            settings = {} if settings is None else dict(settings)
            Forecaster(**settings)      # validates now, in the client
        else:
            if model is None:
                raise ValueError("mode 'shared' needs model= (sr.dumps of a trained "
                                 "Forecaster), got None")
            if not isinstance(model, (bytes, bytearray)):
                raise TypeError(f"model must be bytes, got {type(model).__name__}")
            frozen_twin(loads(bytes(model), Forecaster))      # validates now
            model = bytes(model)
        self.mode = mode
        self.settings = settings
        self.model = model
        self.horizon = horizon
        self.live_keys = _check_live(live_keys)
        if not isinstance(in_order, bool):
            raise TypeError(f"in_order must be a bool, got {type(in_order).__name__}")
        self.in_order = in_order
        self._last: Any = None
        self._f: Optional[Forecaster] = None
        self._state: Any = None
        # keys live in self._f -> the bytes their state held after their last record
        self._live: "OrderedDict[str, bytes]" = OrderedDict()

    def open(self, runtime_context: Any) -> None:
        """Create the keyed state (bytes) and the worker's forecaster: a per-key-weights
        Forecaster of ``settings``, or the frozen twin of the shared model."""
        self._state = runtime_context.get_state(
            ValueStateDescriptor("streamrnn", Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self._last = runtime_context.get_state(
            ValueStateDescriptor("streamrnn-last-timestamp", Types.LONG()))
        if self.mode == "shared":
            assert self.model is not None  # checked in __init__
            self._f = frozen_twin(loads(self.model, Forecaster), 1, 1)
        else:
            self._f = Forecaster(**{**(self.settings or {}), "weights": "per_key"})
        self._live.clear()

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        """One record: if good, update its key and yield ``(key, timestamp, forecast)``;
        if bad, yield ``(repr, reason)`` to :data:`BAD_RECORDS`. Key state that does not
        load raises :class:`~streamrnn.FileFormatError` (the job fails)."""
        rec, reason = _parse(value)
        if rec is None:
            yield BAD_RECORDS, (describe(value), reason)
            return
        key, ts, y = rec
        f = self._f
        assert f is not None  # set by open()
        if self.in_order:
            last = self._last.value()
            if last is not None and ts <= last:
                yield BAD_RECORDS, (describe(value), f"late or replayed: timestamp {ts}, "
                                                     f"the key's last is {last}")
                return
        raw = self._state.value()
        stored = None if raw is None else bytes(raw)
        live = self._live.pop(key, None)
        try:
            if live is None or stored != live:
                # not live, or its state is not what this worker wrote last (a restore or
                # a rollback): the state in Flink is the truth
                if key in f:
                    f.forget(key)
                if stored is not None:
                    try:
                        f.import_stream(key, stored)
                    except FileFormatError as e:
                        raise FileFormatError(f"streamrnn.flink: the state of key {key!r} "
                                              f"cannot be restored: {e}") from e
            try:
                f.learn_one(y, key=key)
                out = f.forecast(self.horizon, key=key)[-1]
                blob = f.export_stream(key)
            except (TypeError, ValueError, ArithmeticError) as e:
                # refused by the forecaster (e.g. a value beyond its range): the key's
                # state is not written
                if key in f:
                    f.forget(key)
                yield BAD_RECORDS, (describe(value), f"{type(e).__name__}: {e}")
                return
        except BaseException:
            if key in f:
                f.forget(key)
            raise
        self._state.update(blob)
        if self.in_order:
            self._last.update(ts)
        self._live[key] = blob
        while len(self._live) > self.live_keys:
            old, _ = self._live.popitem(last=False)
            f.forget(old)
        yield key, ts, float(out)


def _check_live(n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"live_keys must be an int >= 0, got {n!r}")
    return n


_parse = parse_record       # (the validator lives in streamrnn._records: no pyflink there)
_raw_key = raw_key


def forecast_stream(ds: Any, mode: str = "per_key", *, settings: Optional[Dict[str, Any]] = None,
                    model: Optional[bytes] = None, horizon: int = 1,
                    uid: str = "streamrnn-forecast", live_keys: int = 1024,
                    in_order: bool = True) -> Tuple[Any, Any]:
    """Wire the forecasting into a DataStream job.

    Parameters
    ----------
    ds : pyflink.datastream.DataStream
        Records ``(key, timestamp, value)`` (any Python objects) or CSV lines
        ``"key,timestamp,value"`` (strings); an empty value is a missing value.
    mode, settings, model, horizon, live_keys, in_order
        As in :class:`ForecastFunction`.
    uid : str, default 'streamrnn-forecast'
        Operator id of the keyed function (its state in savepoints is found by it; two
        forecast_stream calls in one job need different ids).

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
    fn = ForecastFunction(mode, settings=settings, model=model, horizon=horizon,
                          live_keys=live_keys, in_order=in_order)
    # keyed on the raw key field, so every key's records keep their order; the keyed
    # function validates (bad records, keyed or not, go to the side output)
    out = ds.key_by(_raw_key, key_type=Types.STRING()) \
        .process(fn, output_type=OUTPUT_TYPE).uid(uid)
    return out, out.get_side_output(BAD_RECORDS)
