"""Use a streamrnn Forecaster where river expects a forecaster, and encode datetimes.

Importable without river (``pip install streamrnn[river]`` adds it). With river installed,
:class:`RiverForecaster` is a ``river.time_series.base.Forecaster`` and
:class:`CalendarFeatures` a ``river.base.Transformer``, so both go into ``compose.Pipeline``,
``time_series.evaluate`` and ``clone()`` like river's own models.

River's time-series datasets yield feature dicts holding datetimes (``{'month':
datetime(1949, 1, 1)}``); a network takes numbers. :func:`calendar_features` turns a datetime
into the position of that moment in its day, week and year, each as a (sin, cos) pair, so
that 23:00 sits next to 00:00 and December next to January:

>>> from datetime import datetime
>>> from streamrnn.river import calendar_features
>>> f = calendar_features(datetime(2024, 1, 1, 6, 0), parts=("hour",))
>>> sorted(f), round(f["hour_sin"], 6), round(f["hour_cos"], 6)
(['hour_cos', 'hour_sin'], 1.0, 0.0)

:class:`RiverForecaster` applies it to every datetime in ``x`` (numbers pass through), so
river's streams work as they come::

    from river import datasets, time_series
    from streamrnn.river import RiverForecaster
    time_series.evaluate(datasets.AirlinePassengers(), RiverForecaster(), metric, horizon=12)
"""
from __future__ import annotations

import datetime as _dt
import math
from numbers import Real
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .forecast import Forecaster

__all__ = ["RiverForecaster", "CalendarFeatures", "calendar_features", "CALENDAR_PARTS"]

#: the calendar positions :func:`calendar_features` knows, each a fraction of its cycle
CALENDAR_PARTS = ("hour", "weekday", "month", "dayofyear")
_DEFAULT_PARTS = ("hour", "weekday", "dayofyear")

try:        # river is optional: subclass its bases when it is there, so isinstance checks hold
    from river import base as _river_base
    from river.time_series import base as _river_ts_base
    _ForecasterBase: Any = _river_ts_base.Forecaster
    _TransformerBase: Any = _river_base.Transformer
    HAVE_RIVER = True
except ImportError:                                   # pragma: no cover - depends on extras
    _ForecasterBase = object
    _TransformerBase = object
    HAVE_RIVER = False


def _as_datetime(v: Any) -> Optional[_dt.date]:
    """v as a datetime.date/datetime (pandas Timestamp is one), or None for non-dates."""
    if isinstance(v, _dt.date):
        return v
    if isinstance(v, np.datetime64):
        if np.isnat(v):
            raise ValueError("a datetime feature is NaT (not a time)")
        return v.astype("datetime64[us]").item()
    return None


def _check_parts(parts: Any) -> Tuple[str, ...]:
    if isinstance(parts, str) or not isinstance(parts, (tuple, list)) or not parts:
        raise TypeError(f"parts must be a non-empty tuple of names from {list(CALENDAR_PARTS)}"
                        f", got {parts!r}")
    for p in parts:
        if p not in CALENDAR_PARTS:
            raise ValueError(f"parts must hold names from {list(CALENDAR_PARTS)}, got {p!r}")
    return tuple(parts)


def calendar_features(when: Any, parts: Sequence[str] = _DEFAULT_PARTS,
                      prefix: str = "") -> Dict[str, float]:
    """The calendar position of ``when`` as (sin, cos) pairs, one pair per part.

    Parameters
    ----------
    when : datetime.datetime, datetime.date, pandas.Timestamp or numpy.datetime64
    parts : names from ``CALENDAR_PARTS``
        ``hour``: time of day (hours and minutes, cycle 24 h; skipped for a plain date);
        ``weekday``: day of the week (Monday 0, cycle 7 days); ``month``: month of the year
        (cycle 12); ``dayofyear``: day of the year (cycle 365 or 366 days).
    prefix : put before every feature name (``'month_'`` gives ``'month_hour_sin'`` ...)

    Returns
    -------
    dict of str to float
        ``{prefix + part + '_sin': sin(2 pi f), prefix + part + '_cos': cos(2 pi f)}`` with f
        the fraction of the cycle elapsed. Time zones are not converted: the local wall clock
        of ``when`` is encoded.

    Raises
    ------
    TypeError
        ``when`` not a date/datetime, ``parts`` not a tuple or list of names.
    ValueError
        an unknown part name, a NaT.

    Examples
    --------
    >>> from datetime import date
    >>> f = calendar_features(date(2024, 7, 1), parts=("month",))
    >>> round(f["month_sin"], 6), round(f["month_cos"], 6)
    (0.0, -1.0)
    """
    d = _as_datetime(when)
    if d is None:
        raise TypeError(f"when must be a datetime, date, pandas.Timestamp or numpy.datetime64,"
                        f" got {type(when).__name__} {when!r}")
    parts = _check_parts(parts)
    out: Dict[str, float] = {}
    for p in parts:
        if p == "hour":
            if not isinstance(d, _dt.datetime):
                continue
            frac = (d.hour + d.minute / 60.0 + d.second / 3600.0) / 24.0
        elif p == "weekday":
            frac = d.weekday() / 7.0
        elif p == "month":
            frac = (d.month - 1) / 12.0
        else:
            leap = d.year % 4 == 0 and (d.year % 100 != 0 or d.year % 400 == 0)
            frac = (d.timetuple().tm_yday - 1) / (366.0 if leap else 365.0)
        out[f"{prefix}{p}_sin"] = math.sin(2.0 * math.pi * frac)
        out[f"{prefix}{p}_cos"] = math.cos(2.0 * math.pi * frac)
    return out


def _encode(x: Optional[Mapping[Any, Any]], parts: Tuple[str, ...], name: str
            ) -> Optional[Dict[Any, Any]]:
    """x with every datetime value replaced by its calendar features (numbers kept)."""
    if x is None:
        return None
    if not isinstance(x, Mapping):
        raise TypeError(f"{name} must be None or a dict of features, got {type(x).__name__}")
    out: Dict[Any, Any] = {}
    for k, v in x.items():
        if _as_datetime(v) is not None:
            out.update(calendar_features(v, parts, prefix=f"{k}_"))
        elif v is None or (isinstance(v, (Real, np.number)) and not isinstance(v, bool)):
            out[k] = v
        else:
            raise TypeError(f"{name}[{k!r}] must be a number, None or a datetime, got "
                            f"{type(v).__name__} {v!r}; drop it or encode it first")
    return out


class CalendarFeatures(_TransformerBase):
    """A river transformer: datetimes in ``x`` become calendar features, numbers stay.

    Put it first in a river pipeline whose later steps need numbers (``StandardScaler``):
    ``CalendarFeatures() | preprocessing.StandardScaler() | RiverForecaster()``. Works
    without river too (``transform_one`` is a plain method).

    Parameters
    ----------
    parts : names from ``CALENDAR_PARTS`` (see :func:`calendar_features`)

    Examples
    --------
    >>> from datetime import datetime
    >>> out = CalendarFeatures(parts=("weekday",)).transform_one(
    ...     {"t": datetime(2024, 1, 1), "temp": 3.5})
    >>> sorted(out)
    ['t_weekday_cos', 't_weekday_sin', 'temp']
    """

    def __init__(self, parts: Sequence[str] = _DEFAULT_PARTS) -> None:
        self.parts = _check_parts(parts)

    def learn_one(self, x: Mapping[Any, Any]) -> None:
        """Nothing to learn (river's transformer protocol)."""

    def transform_one(self, x: Mapping[Any, Any]) -> Dict[Any, Any]:
        """x with each datetime value replaced by its calendar (sin, cos) features."""
        out = _encode(x, self.parts, "x")
        assert out is not None or x is None
        return out if out is not None else {}


class RiverForecaster(_ForecasterBase):
    """A streamrnn :class:`~streamrnn.Forecaster` behind river's forecaster protocol.

    ``learn_one(y, x=None)`` and ``forecast(horizon, xs=None)`` as in river, ``clone()`` a
    fresh, untrained copy with the same settings, ``_supervised`` True, so it goes into
    ``compose.Pipeline`` (as the last step), ``time_series.evaluate`` and model selection.
    Datetime values in ``x``/``xs`` become calendar features (:func:`calendar_features`);
    numbers pass through; anything else is a TypeError naming the feature.

    Parameters
    ----------
    forecaster : Forecaster or None
        The model to wrap (None: ``Forecaster(hidden_size=16, seed=0)``). It is used as is
        (not copied); ``clone()`` builds a new one from its settings.
    calendar : tuple of part names, or None
        The calendar parts for datetimes (None: datetimes are refused).

    Examples
    --------
    >>> import math
    >>> from datetime import datetime, timedelta
    >>> model = RiverForecaster()
    >>> t0 = datetime(2024, 1, 1)
    >>> for t in range(48):
    ...     model.learn_one(10 + math.sin(t / 4), {"t": t0 + timedelta(hours=t)})
    >>> len(model.forecast(3, [{"t": t0 + timedelta(hours=48 + k)} for k in range(3)]))
    3
    >>> model.clone().forecaster.net is None     # fresh: has seen nothing
    True
    """

    def __init__(self, forecaster: Optional[Forecaster] = None,
                 calendar: Optional[Sequence[str]] = _DEFAULT_PARTS) -> None:
        if forecaster is None:
            forecaster = Forecaster(hidden_size=16, seed=0)
        if not isinstance(forecaster, Forecaster):
            hint = (" (pass an instance: streamrnn.Forecaster(), not the class)"
                    if forecaster is Forecaster else "")
            raise TypeError(f"forecaster must be a streamrnn.Forecaster or None, got "
                            f"{type(forecaster).__name__}{hint}")
        self.forecaster = forecaster
        self.calendar = None if calendar is None else _check_parts(calendar)

    @property
    def _supervised(self) -> bool:
        return True

    def _x(self, x: Any, name: str) -> Optional[Dict[Any, Any]]:
        if self.calendar is None:
            if x is not None and any(_as_datetime(v) is not None for v in x.values()):
                raise TypeError(f"{name} holds a datetime and calendar=None; pass calendar="
                                f"{_DEFAULT_PARTS!r} or drop the datetime")
            return None if x is None else dict(x)
        return _encode(x, self.calendar, name)

    def learn_one(self, y: float, x: Optional[Mapping[Any, Any]] = None) -> None:
        """Learn the newest value y (with its features x, a dict, or None)."""
        self.forecaster.learn_one(y, self._x(x, "x"))

    def forecast(self, horizon: int, xs: Optional[List[Mapping[Any, Any]]] = None
                 ) -> List[float]:
        """Forecasts of the next ``horizon`` values (xs: one feature dict per step)."""
        if xs is None:
            return self.forecaster.forecast(horizon)
        if isinstance(xs, Mapping) or not isinstance(xs, Sequence):
            raise TypeError(f"xs must be None or a list of feature dicts, got "
                            f"{type(xs).__name__}")
        return self.forecaster.forecast(horizon, [self._x(x, f"xs[{i}]")
                                                  for i, x in enumerate(xs)])

    def clone(self, new_params: Optional[Dict[str, Any]] = None,
              include_attributes: bool = False) -> "RiverForecaster":
        """A fresh, untrained RiverForecaster with the same settings (river's ``clone``)."""
        params: Dict[str, Any] = {
            "forecaster": Forecaster(**self.forecaster._settings()),
            "calendar": self.calendar}
        params.update(new_params or {})
        return RiverForecaster(**params)

    def __repr__(self) -> str:
        return f"RiverForecaster({self.forecaster!r}, calendar={self.calendar!r})"
