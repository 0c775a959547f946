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

* ``"per_key"``: every key has its own online :class:`~streamrnn.Forecaster` (weights,
  optimizer moments, TBPTT buffer, scalers, state) learning from its own stream; the keyed
  state is the forecaster in streamrnn's save format (:func:`streamrnn.dumps`).
* ``"shared"``: one trained Forecaster (bytes from :func:`streamrnn.dumps`, given to the
  constructor, so every worker holds the same network) is only run, not trained; each key
  keeps its recurrent state, scalers and the next input as compact bytes (:func:`pack_key_state`,
  a few hundred bytes).
"""
from __future__ import annotations

import math
import struct
from typing import Any, Dict, Iterable, Optional, Tuple

import numpy as np

from . import _core
from .forecast import Forecaster, _Stream
from ._records import describe, parse_record, raw_key
from .io import FileFormatError, dumps, loads

try:
    from pyflink.common import Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag
    from pyflink.datastream.state import ValueStateDescriptor
except ImportError as _e:  # pragma: no cover - exercised without the extra
    raise ImportError("streamrnn.flink needs apache-flink: pip install 'streamrnn[flink]'"
                      ) from _e

__all__ = ["ForecastFunction", "forecast_stream", "pack_key_state", "unpack_key_state",
           "BAD_RECORDS", "OUTPUT_TYPE"]

#: Side output of bad records: ``(repr of the record, reason)``.
BAD_RECORDS = OutputTag("streamrnn-bad-records", Types.TUPLE([Types.STRING(), Types.STRING()]))
#: Type of the forecasts: ``(key, timestamp, forecast)``.
OUTPUT_TYPE = Types.TUPLE([Types.STRING(), Types.LONG(), Types.DOUBLE()])
_MODES = ("per_key", "shared")

# compact per-key state of the shared mode: magic+version, then the net-dtype block
# (h, c, u) and the float64 block (sy, sd, sx, last_y, o), then int64 counts
_KHEAD = struct.Struct("<4sI")
_KMAGIC = b"SRK\x01"


class _Runner:
    """Stand-in for a stream's trainer in the shared mode: steps the shared network on the
    key's state, learns nothing (``observe`` is a no-op)."""

    __slots__ = ("net", "state", "_out")

    def __init__(self, net: Any, state: Any) -> None:
        self.net = net
        self.state = state
        self._out = np.empty(net.output_size, dtype=net.dtype)

    def advance(self, u: np.ndarray) -> np.ndarray:
        self.net.step(u, self.state, out=self._out)
        return self._out

    def observe(self, target: np.ndarray) -> None:
        pass

    def predict_one(self, u: np.ndarray) -> np.ndarray:
        s = self.state.copy()
        self.net.step(u, s, out=self._out)
        return self._out


def _new_key_stream(f: Forecaster) -> _Stream:
    assert f.net is not None and f.n_features is not None and f.input_size is not None
    s = _Stream.__new__(_Stream)
    _Stream.__init__(s, None, f._alpha, f.n_features, f.dtype, f.input_size)  # type: ignore
    s.trainer = _Runner(f.net, f.net.new_state())  # type: ignore[assignment]
    return s


def _layout(f: Forecaster) -> Tuple[int, int, int]:
    """(net-dtype values, float64 values, int64 values) of one key's compact state."""
    net = f.net
    assert net is not None and f.n_features is not None and f.input_size is not None
    nh = net.num_layers * net.hidden_size
    nd = nh * (2 if f.cell == "lstm" else 1) + f.input_size
    return nd, 3 + 3 + 3 * f.n_features + 2, 3


def pack_key_state(f: Forecaster, s: _Stream) -> bytes:
    """One key's state in the shared mode as compact bytes (no pickle).

    Layout (little-endian): ``b"SRK\\x01"``, uint32 total length, then ``h`` (and ``c`` for
    an LSTM) and the next input ``u`` in the network's dtype, then float64 scaler statistics
    (level, change, features: count, mean, variance each), the last value and the pending
    scaled prediction (NaN: none), then int64 counters (seen, observed, missing).

    Parameters
    ----------
    f : Forecaster
        The shared model (gives the sizes).
    s : object
        The key's stream as made by :class:`ForecastFunction`.

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        ``f`` has no network yet, or the key's state holds NaN or inf (which
        :func:`unpack_key_state` would refuse).

    Examples
    --------
    >>> import streamrnn as sr                                  # doctest: +SKIP
    >>> len(pack_key_state(model, stream))                      # doctest: +SKIP
    352
    """
    if f.net is None:
        raise ValueError("f must be a Forecaster with a network (trained), got one without")
    st = s.trainer.state
    parts = [st.h.ravel()]
    if st.c is not None:  # LSTM
        parts.append(st.c.ravel())
    parts.append(s.u)
    a = np.concatenate(parts).astype(np.dtype(f.dtype).newbyteorder("<"))
    b = np.concatenate([np.asarray(s.sy.pack(), dtype=np.float64),
                        np.asarray(s.sd.pack(), dtype=np.float64),
                        np.asarray(s.sx.pack(), dtype=np.float64).ravel(),
                        [s.last_y, math.nan if s.o is None else s.o]]).astype("<f8")
    c = np.array([s.n_seen, s.n_obs, s.n_missing], dtype="<i8")
    # what pack writes, unpack must read: refuse what unpack_key_state would refuse
    if not np.all(np.isfinite(a)) or np.isinf(b).any():
        raise ValueError("cannot pack this key's state: its recurrent state, next input or "
                         "scaler statistics hold NaN or inf (unpack_key_state would refuse "
                         "them)")
    body = a.tobytes() + b.tobytes() + c.tobytes()
    return _KHEAD.pack(_KMAGIC, _KHEAD.size + len(body)) + body


def unpack_key_state(f: Forecaster, data: bytes) -> _Stream:
    """Inverse of :func:`pack_key_state`: the key's stream, validated.

    Parameters
    ----------
    f : Forecaster
        The shared model the bytes were made with.
    data : bytes

    Returns
    -------
    object
        The key's stream (state, scalers, next input, counters).

    Raises
    ------
    FileFormatError
        Wrong magic, length or sizes, or non-finite state.

    Examples
    --------
    >>> s = unpack_key_state(model, pack_key_state(model, s))   # doctest: +SKIP
    """
    nd, nf, ni = _layout(f)
    dt = np.dtype(f.dtype).newbyteorder("<")
    need = _KHEAD.size + nd * dt.itemsize + nf * 8 + ni * 8
    if len(data) < _KHEAD.size:
        raise FileFormatError(f"<key state>: {len(data)} bytes, shorter than its header")
    magic, n = _KHEAD.unpack_from(data)
    if magic != _KMAGIC or n != len(data) or n != need:
        raise FileFormatError(f"<key state>: expected {need} bytes with magic {_KMAGIC!r}, "
                              f"got {len(data)} bytes, magic {magic!r}")
    off = _KHEAD.size
    a = np.frombuffer(data, dtype=dt, count=nd, offset=off).astype(f.dtype)
    off += nd * dt.itemsize
    b = np.frombuffer(data, dtype="<f8", count=nf, offset=off).astype(np.float64)
    off += nf * 8
    c = np.frombuffer(data, dtype="<i8", count=ni, offset=off)
    if not np.all(np.isfinite(a)) or np.isinf(b).any() or (c < 0).any():
        raise FileFormatError("<key state>: non-finite state or negative counters")
    s = _new_key_stream(f)
    net = f.net
    assert net is not None
    L, H = net.num_layers, net.hidden_size
    h = a[:L * H].reshape(L, H)
    cc = a[L * H:2 * L * H].reshape(L, H) if f.cell == "lstm" else None
    # s.trainer is a _Runner here (its state is writable), typed as _Stream's OnlineTrainer
    s.trainer.state = _core._make_state(  # type: ignore[misc]
        f.cell, L, H, np.dtype(f.dtype).name, h, cc)
    s.u[...] = a[nd - net.input_size:]  # net.input_size == f.input_size (not None)
    nfeat = f.n_features or 0
    s.sy.unpack(b[0:3])
    s.sd.unpack(b[3:6])
    s.sx.unpack(b[6:6 + 3 * nfeat].reshape(3, nfeat))
    s.last_y = float(b[6 + 3 * nfeat])
    o = float(b[7 + 3 * nfeat])
    s.o = None if o != o else o
    s.n_seen, s.n_obs, s.n_missing = (int(v) for v in c)
    return s


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
                 model: Optional[bytes] = None, horizon: int = 1) -> None:
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
            f = loads(bytes(model), Forecaster)
            if f.weights != "shared" or f.net is None or f.n_features:
                raise ValueError("model must be a trained univariate Forecaster with "
                                 "weights='shared'")
            model = bytes(model)
        self.mode = mode
        self.settings = settings
        self.model = model
        self.horizon = horizon
        self._f: Optional[Forecaster] = None
        self._state: Any = None

    def open(self, runtime_context: Any) -> None:
        """Create the keyed state (bytes) and, in shared mode, load the network."""
        self._state = runtime_context.get_state(
            ValueStateDescriptor("streamrnn", Types.PRIMITIVE_ARRAY(Types.BYTE())))
        if self.mode == "shared":
            assert self.model is not None  # checked in __init__
            f = loads(self.model, Forecaster)
            f._streams.clear()
            self._f = f

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        """One record: if good, update its key and yield ``(key, timestamp, forecast)``;
        if bad, yield ``(repr, reason)`` to :data:`BAD_RECORDS`."""
        rec, reason = _parse(value)
        if rec is None:
            yield BAD_RECORDS, (describe(value), reason)
            return
        key, ts, y = rec
        raw = self._state.value()
        try:
            if self.mode == "per_key":
                f = (Forecaster(**(self.settings or {})) if raw is None
                     else loads(bytes(raw), Forecaster))
                f.learn_one(y)
                out = f.forecast(self.horizon)[-1]
                blob = dumps(f)
            else:
                assert self._f is not None  # set by open() in shared mode
                f = self._f
                s = _new_key_stream(f) if raw is None else unpack_key_state(f, bytes(raw))
                f._streams[None] = s
                try:
                    f.learn_one(y)
                    out = f.forecast(self.horizon)[-1]
                finally:
                    del f._streams[None]
                blob = pack_key_state(f, s)
        except (TypeError, ValueError, ArithmeticError) as e:
            # refused by the forecaster (e.g. a value beyond its range): nothing of the key's
            # state was written
            yield BAD_RECORDS, (describe(value), f"{type(e).__name__}: {e}")
            return
        self._state.update(blob)
        yield key, ts, float(out)


_parse = parse_record       # (the validator lives in streamrnn._records: no pyflink there)
_raw_key = raw_key


def forecast_stream(ds: Any, mode: str = "per_key", *, settings: Optional[Dict[str, Any]] = None,
                    model: Optional[bytes] = None, horizon: int = 1,
                    uid: str = "streamrnn-forecast") -> Tuple[Any, Any]:
    """Wire the forecasting into a DataStream job.

    Parameters
    ----------
    ds : pyflink.datastream.DataStream
        Records ``(key, timestamp, value)`` (any Python objects) or CSV lines
        ``"key,timestamp,value"`` (strings); an empty value is a missing value.
    mode, settings, model, horizon
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
    fn = ForecastFunction(mode, settings=settings, model=model, horizon=horizon)
    # keyed on the raw key field, so every key's records keep their order; the keyed
    # function validates (bad records, keyed or not, go to the side output)
    out = ds.key_by(_raw_key, key_type=Types.STRING()) \
        .process(fn, output_type=OUTPUT_TYPE).uid(uid)
    return out, out.get_side_output(BAD_RECORDS)
