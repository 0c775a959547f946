"""The command line: ``python -m streamrnn [demo | forecast | selfcheck]``.

``python -m streamrnn`` (no arguments) runs the demo: it forecasts the embedded yearly
sunspot series online, one value at a time, prints the forecaster's error against the
persistence forecast and, when matplotlib is installed, writes a PNG plot.

``python -m streamrnn forecast FILE|- --column NAME`` forecasts a CSV stream line by line
(``-`` reads standard input, so ``tail -f data.csv | python -m streamrnn forecast -
--column load`` keeps producing forecasts) and writes every forecast as CSV to standard
output as soon as it is made.

Exit codes: 0 success (also when the reader of stdout goes away), 1 data error (bad input,
bad checkpoint), 2 usage error (one line on stderr; outputs are checked before the first
value), 130 interrupted: SIGINT, SIGTERM and SIGHUP stop between whole values and
``--save`` still runs (see :class:`_Stop`).
"""
from __future__ import annotations

import argparse
import collections
import csv
import math
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, TextIO, Tuple

from ._progress import progress_bar, stderr_is_tty

if TYPE_CHECKING:
    import numpy as np

__all__ = ["main"]

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_MISSING_TOKENS = {"", "na", "nan", "n/a", "null", "none", "?"}

_EPILOG_FORECAST = """\
input: CSV read line by line (a live pipe works), with a header line, or without one when
  --columns (or the --load checkpoint) names the columns; then a first line equal to the
  names is a header and skipped. The target column and any feature columns must hold
  numbers; an empty field or NA/NaN/null/? is a missing value (the stream advances, the
  model's own forecast stands in). Blank lines are skipped.
output (stdout, one row per input row, written as soon as it is made):
  line,[key],[kept columns],value,forecast_1..forecast_H[,low_1,high_1..low_H,high_H]
  'forecast_k' is the forecast of the value k rows after this one (per key with --key),
  made after learning from this row; with --interval L, 'low_k'/'high_k' bound it with
  the conformal prediction interval of level L (-inf/inf while too few errors were seen
  for that level). Numbers: the shortest text that reads back to the
  same double (--precision N: N significant digits).
checkpoints: --save stores the model with --column, --features, --key, --horizon and the
  column names; --load uses them. An explicit --column/--features/--key that differs is
  refused (exit code 2); --hidden/--cell/--seed are ignored with a warning.
problems: a malformed line (wrong number of fields, bad quoting) is skipped and a
  non-numeric or infinite value is treated as missing; each gives a message on stderr
  naming the line. With --strict the first problem ends the run with exit code 1.
exit codes: 0 ok (also when the reader of stdout goes away), 1 data error (bad input with
  --strict, empty input, missing column, bad checkpoint), 2 usage error (checked before the
  first value), 130 interrupted: Ctrl-C, SIGTERM or SIGHUP stop between whole values and
  --save still runs (a second signal during the save abandons it: the previous checkpoint
  stays).
examples:
  python -m streamrnn forecast data.csv --column load --horizon 24 --save model.srnn
  tail -f data.csv | python -m streamrnn forecast - --load model.srnn --save model.srnn
"""


class DataError(Exception):
    """A problem with the input data (exit code 1)."""


class UsageError(Exception):
    """A problem with the command line (exit code 2)."""


class _Interrupted(Exception):
    pass


# ---------------------------------------------------------------------- helpers
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") \
            from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def _delimiter(text: str) -> str:
    if len(text) != 1 or text in "\r\n\"":
        raise argparse.ArgumentTypeError(f"expected one character other than a quote or a "
                                         f"line break, got {text!r}")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``<prog>: error: <what> (see <prog> --help)``."""

    def error(self, message: str) -> "NoReturn":
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parse_number(text: str) -> Tuple[float, Optional[str]]:
    """(value, problem): NaN for a missing token; a problem string for bad text."""
    t = text.strip()
    if t.lower() in _MISSING_TOKENS:
        return math.nan, None
    try:
        v = float(t)
    except ValueError:
        return math.nan, f"{text!r} is not a number"
    if math.isinf(v):
        return math.nan, f"{text!r} is not a finite number"
    return v, None


def _plot(path: str, values: "Sequence[float] | np.ndarray",
          forecasts: "Sequence[float] | np.ndarray", persistence: "Sequence[float] | np.ndarray",
          title: str, xlabel: str = "step",
          xs: "Sequence[float] | np.ndarray | None" = None) -> Optional[str]:
    """Write a PNG: the series with its one-step forecasts, and the running MAE of the
    forecaster and of persistence. Returns None, or why no plot was written."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed (pip install 'streamrnn[plot]')"
    import numpy as np

    y = np.asarray(values, dtype=float)
    f = np.asarray(forecasts, dtype=float)
    p = np.asarray(persistence, dtype=float)
    t = np.arange(len(y)) if xs is None else np.asarray(xs, dtype=float)
    ok = np.isfinite(y) & np.isfinite(f) & np.isfinite(p)
    err_m = np.where(ok, np.abs(f - y), 0.0)
    err_p = np.where(ok, np.abs(p - y), 0.0)
    n = np.maximum(np.cumsum(ok), 1)
    run_m = np.where(np.cumsum(ok) > 0, np.cumsum(err_m) / n, np.nan)
    run_p = np.where(np.cumsum(ok) > 0, np.cumsum(err_p) / n, np.nan)
    fig = Figure(figsize=(10, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.plot(t, y, color="0.2", lw=1.2, label="series")
    ax1.plot(t, f, color="tab:red", lw=1.0, label="streamrnn one-step forecast")
    ax1.set_title(title)
    ax1.legend(loc="upper left", fontsize=9)
    ax1.grid(alpha=0.3)
    ax2.plot(t, run_m, color="tab:red", label="streamrnn")
    ax2.plot(t, run_p, color="tab:blue", ls="--", label="persistence (last value)")
    ax2.set_ylabel("running MAE")
    ax2.set_xlabel(xlabel)
    ax2.legend(loc="upper right", fontsize=9)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return None


# ---------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    import streamrnn as sr
    from .datasets import load_sunspots

    why: Optional[str] = None
    if not args.no_plot:
        _check_output(args.plot, "--plot")
        why = _have_matplotlib()
    years, values = load_sunspots()
    f = sr.Forecaster(hidden_size=args.hidden, seed=args.seed)
    print(f"streamrnn {sr.__version__}: online forecasting demo")
    print(f"series:   yearly mean sunspot numbers {years[0]}-{years[-1]} ({len(values)} "
          f"values; NGDC/NOAA, public domain; see streamrnn/data/SOURCE.md)")
    print(f"model:    Forecaster(cell='lstm', hidden_size={args.hidden}, k1=1, k2=32, "
          f"Adam(lr=5e-3), differencing, online scaling)")
    print(f"protocol: each value is forecast {args.horizon} step(s) ahead before it "
          f"arrives, then learned (progressive validation)")
    res = sr.evaluate(values, f, horizon=args.horizon, return_forecasts=True, progress=None)
    print()
    print(res)
    print()
    m, p = res.mae[0], res.persistence_mae[0]
    verdict = (f"{100 * (1 - m / p):.0f}% lower than persistence" if m < p
               else f"{100 * (m / p - 1):.0f}% higher than persistence")
    print(f"one-step-ahead MAE: streamrnn {m:.2f}, persistence {p:.2f} ({verdict})")
    print(f"time: {res.steps} values in {res.seconds:.2f} s "
          f"({1e6 * res.seconds / max(res.steps, 1):.0f} us per forecast + learn)")
    if not args.no_plot:
        assert res.forecasts is not None and res.persistence is not None
        path = os.path.abspath(args.plot)
        why = why or _plot(path, values, res.forecasts[:, 0], res.persistence,
                    "Yearly sunspot numbers: one-step-ahead online forecasts", "year", years)
        if why is None:
            print(f"plot: {path}")
        else:
            print(f"plot: none ({why})")
    return EXIT_OK


# ---------------------------------------------------------------------- signals
class _Stop:
    """SIGINT, SIGTERM and SIGHUP during ``forecast``: all three stop the run the same way,
    between whole values.

    While the command waits for input (``busy`` False) a signal raises :class:`_Interrupted`
    at once (a ``tail -f`` pipe may never send another line). While a value is learned and
    forecast, and while the checkpoint and the plot are written (``busy`` True), the first
    signal is only recorded: the value (or the save) finishes, then the run stops. A second
    signal while busy raises at once: during the save that abandons it, and the atomic
    writer leaves the previous checkpoint as it was. A signal that is ignored when the
    command starts (``nohup``, a background job's SIGINT) stays ignored."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.busy = False
        self.count = 0
        self.signum: Optional[int] = None
        self._old: Dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if not self.busy or self.count > 1:
            raise _Interrupted()

    def __enter__(self) -> "_Stop":
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                self._old[sig] = signal.signal(sig, self.handler)
            except (ValueError, OSError):   # not the main thread: signals stay as they are
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @property
    def name(self) -> str:
        if self.signum is None:
            return "Ctrl-C"
        try:
            return signal.Signals(self.signum).name
        except ValueError:          # pragma: no cover
            return f"signal {self.signum}"


# ---------------------------------------------------------------------- forecast
class _Input:
    """Lines of a CSV file or of standard input, read one at a time (never ahead)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.total: Optional[int] = None
        if source == "-":
            import io

            self.stream: TextIO = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8",
                                                   errors="replace", newline="")
            self.name = "<stdin>"
        else:
            try:
                self.stream = open(source, encoding="utf-8", errors="replace", newline="")
            except OSError as e:
                raise UsageError(f"cannot open {source}: {e.strerror or e}") from None
            self.name = source
            if os.path.isfile(source):
                try:
                    with open(source, "rb") as fb:
                        self.total = max(sum(1 for _ in fb) - 1, 0)
                except OSError:
                    self.total = None
        self.lineno = 0

    def readline(self) -> Optional[str]:
        line = self.stream.readline()
        if not line:
            return None
        self.lineno += 1
        return line

    def close(self) -> None:
        if self.source != "-":
            self.stream.close()


def _split(line: str, delimiter: str) -> List[str]:
    rows = list(csv.reader([line], delimiter=delimiter, strict=True))
    if len(rows) != 1:
        raise csv.Error("a quoted field spans lines")
    return rows[0]


def _column_index(header: List[str], name: str, what: str, source: str, where: str) -> int:
    if name in header:
        return header.index(name)
    raise DataError(f"{source}: {where}: no column {name!r} ({what}) in the "
                    f"{'header' if where == 'line 1' else 'columns'}; columns: "
                    f"{', '.join(header) if header else '(none)'}")


def _names(text: Optional[str]) -> Optional[List[str]]:
    if text is None:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


def _check_output(path: str, option: str) -> None:
    """Before any input is read: ``path`` can be written (its directory exists, it is not a
    directory, FIFO or device). Otherwise a usage error, so a long run never learns the
    whole input only to fail at the end."""
    real = os.path.realpath(path)
    directory = os.path.dirname(real) or "."
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: the directory {os.path.dirname(path) or '.'} "
                         f"does not exist")
    if os.path.exists(real) and not os.path.isfile(real):
        kind = "a directory" if os.path.isdir(real) else "not a regular file"
        raise UsageError(f"{option} {path}: it is {kind}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the directory {directory} is not writable")


def _have_matplotlib() -> Optional[str]:
    """None, or why no plot can be written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install 'streamrnn[plot]')"
    return None


_META_TYPES = {"column": str, "key": str, "horizon": int}


def _checkpoint_meta(meta: Any, f: Any, path: str) -> Dict[str, Any]:
    """The CLI's settings stored in a checkpoint's metadata, checked against the model."""
    if not isinstance(meta, dict):
        raise UsageError(f"--load {path}: its metadata is not a dict")
    out: Dict[str, Any] = {}
    for k, t in _META_TYPES.items():
        v = meta.get(k)
        if v is not None and (not isinstance(v, t) or isinstance(v, bool)):
            raise UsageError(f"--load {path}: metadata {k!r} must be a {t.__name__} or null, "
                             f"got {v!r}")
        out[k] = v
    if out["horizon"] is not None and out["horizon"] < 1:
        raise UsageError(f"--load {path}: metadata 'horizon' must be >= 1, got "
                         f"{out['horizon']}")
    for k in ("features", "columns"):
        v = meta.get(k)
        if v is not None and (not isinstance(v, list)
                              or not all(isinstance(c, str) and c for c in v)):
            raise UsageError(f"--load {path}: metadata {k!r} must be a list of column names, "
                             f"got {v!r}")
        out[k] = v
    feats = out["features"] or []
    if f.n_features is not None and len(feats) != f.n_features:
        raise UsageError(f"--load {path}: its metadata names {len(feats)} feature column(s) "
                         f"{feats}, but its model has n_features={f.n_features}")
    cols = out["columns"]
    if cols is not None:
        for c in [out["column"], out["key"]] + feats:
            if c is not None and c not in cols:
                raise UsageError(f"--load {path}: metadata column {c!r} is not among its "
                                 f"columns {cols}")
    return out


class _Score:
    """One-step errors of the forecaster and of persistence, per key."""

    __slots__ = ("n", "abs_m", "abs_p")

    def __init__(self) -> None:
        self.n = 0
        self.abs_m = 0.0
        self.abs_p = 0.0


class _HorizonScore:
    """MAE at horizons 1, the middle one and the last of the forecaster, of persistence (the
    value h steps before the target) and, with a season m, of the seasonal naive forecast
    (the value m*ceil(h/m) steps before the target), pooled over keys. Each forecast is
    scored when its target arrives; a missing target or a missing input value skips it."""

    def __init__(self, horizon: int, season: Optional[int]) -> None:
        self.hs = sorted({1, (horizon + 1) // 2, horizon})
        self.season = season
        lag = horizon + (season or 0)
        self.lag = lag
        self.past: Dict[Any, "collections.deque[Tuple[List[float], float]]"] = {}
        # per horizon: [forecaster, persistence, seasonal naive] absolute errors, count
        self.sums = {h: [0.0, 0.0, 0.0, 0] for h in self.hs}

    def add(self, key: Any, y: float, fc: List[float]) -> None:
        """Score y (the value of this step) against what was forecast for it, then keep this
        step's forecasts fc (horizons 1..H) and y."""
        past = self.past.get(key)
        if past is None:
            past = self.past[key] = collections.deque(maxlen=self.lag)
        if y == y:
            m = self.season
            for h in self.hs:
                if len(past) < h:
                    continue
                made, then = past[-h]                  # the step that forecast y at horizon h
                back = m * -(-h // m) if m else 0
                snaive = past[-back][1] if m and len(past) >= back else math.nan
                if made[h - 1] == made[h - 1] and then == then and (not m or snaive == snaive):
                    acc = self.sums[h]
                    acc[0] += abs(made[h - 1] - y)
                    acc[1] += abs(then - y)
                    acc[2] += abs(snaive - y) if m else 0.0
                    acc[3] += 1
        past.append((fc, y))

    def lines(self) -> List[str]:
        out = []
        for h in self.hs:
            fm, fp, fs, n = self.sums[h]
            if not n:
                continue
            text = f"h={h}: MAE {fm / n:.6g} (persistence {fp / n:.6g}"
            if self.season:
                text += f", seasonal naive {fs / n:.6g}"
            out.append(text + f", {n} scored)")
        return ["MAE by horizon: " + "; ".join(out)] if out else []


def _forecast(args: argparse.Namespace) -> int:
    import streamrnn as sr

    column = args.column
    features = _names(args.features)
    columns = _names(args.columns)
    keep = _names(args.keep) or []
    # outputs are checked before anything is learned
    if args.save:
        _check_output(args.save, "--save")
    plot_path: Optional[str] = None
    if args.plot:
        _check_output(args.plot, "--plot")
        why = _have_matplotlib()
        if why is None:
            plot_path = args.plot
        else:
            print(f"streamrnn: warning: --plot {args.plot}: no plot will be written: {why}",
                  file=sys.stderr)
    horizon = args.horizon
    meta: Dict[str, Any] = {}
    if args.load:
        try:
            f, raw_meta = sr.load(args.load, sr.Forecaster, with_metadata=True)
        except OSError as e:
            raise UsageError(f"cannot read checkpoint {args.load}: {e.strerror or e}") from None
        except (sr.FileFormatError, TypeError) as e:
            raise DataError(f"cannot load checkpoint: {e}") from None
        except ValueError as e:       # not a regular file
            raise UsageError(f"--load {args.load}: {e}") from None
        meta = _checkpoint_meta(raw_meta, f, args.load)
        saved_cols = meta["features"] or []
        for opt, given, saved, known in (
                ("--column", column, meta["column"], meta["column"] is not None),
                ("--key", args.key, meta["key"], "key" in raw_meta)):
            if given is not None and known and given != saved:
                raise UsageError(f"{opt} {given} differs from the checkpoint's "
                                 f"{saved if saved is not None else '(none)'} (a checkpoint "
                                 f"continues the streams it was saved with)")
        column = column if column is not None else meta["column"]
        if args.key is None:
            args.key = meta["key"]
        if features is None:
            features = list(saved_cols)
        elif features != list(saved_cols):
            raise UsageError(f"--features {','.join(features) or '(none)'} differ from the "
                             f"checkpoint's features {','.join(saved_cols) or '(none)'}")
        if columns is None:
            columns = meta["columns"]
        if horizon is None:
            horizon = meta["horizon"]
        for opt, given, have in (("--hidden", args.hidden, f.hidden_size),
                                 ("--cell", args.cell, f.cell),
                                 ("--seed", args.seed, getattr(f, "seed", None)),
                                 ("--season", args.season, f.season)):
            if given is not None and given != have:
                print(f"streamrnn: warning: {opt} {given} ignored: the checkpoint's model has "
                      f"{opt[2:]}={have}", file=sys.stderr)
    else:
        if args.season is not None and args.season < 2:
            raise UsageError(f"--season must be at least 2, got {args.season}")
        f = sr.Forecaster(cell=args.cell or "lstm", hidden_size=args.hidden or 32,
                          seed=0 if args.seed is None else args.seed,
                          n_features=len(features or []), season=args.season,
                          interval_level=0.9 if args.interval is None else args.interval)
    horizon = horizon or 1
    features = features or []
    if column is None:
        raise UsageError("--column NAME is required (unless --load gives a checkpoint that "
                         "names it)")
    inp = _Input(args.input)
    out = sys.stdout
    problems = 0
    first_problem: Optional[int] = None
    rows = 0
    scores: Dict[Any, _Score] = {}
    pending: Dict[Any, Tuple[float, float]] = {}   # key -> (one-step forecast, last value)
    by_horizon = _HorizonScore(horizon, f.season) if horizon > 1 or f.season else None
    plot_key: Any = None
    plot_vals: List[float] = []
    plot_fc: List[float] = []
    plot_pers: List[float] = []
    interrupted = False
    broken_pipe = False
    header: List[str] = []
    fmt = _formatter(args.precision)
    show_bar = args.progress if args.progress is not None else (
        stderr_is_tty() and not _isatty(sys.stdout))
    bar = progress_bar(inp.total, "forecast", enabled=show_bar)

    def problem(msg: str, consequence: str) -> None:
        nonlocal problems, first_problem
        problems += 1
        if first_problem is None:
            first_problem = inp.lineno
        where = f"{inp.name}: line {inp.lineno}"
        if args.strict:
            raise DataError(f"{where}: {msg} (--strict)")
        if problems <= args.max_warnings:
            print(f"streamrnn: warning: {where}: {msg}; {consequence}", file=sys.stderr)
        elif problems == args.max_warnings + 1:
            print("streamrnn: warning: more problems; no more warnings", file=sys.stderr)

    def write(text: str) -> bool:
        """Write a line of output; False when the reader went away."""
        nonlocal broken_pipe
        try:
            out.write(text)
            out.flush()
        except BrokenPipeError:
            broken_pipe = True
            return False
        return True

    stop = _Stop()
    save_note = ""
    with stop:
        try:
            try:
                line = inp.readline()
                if line is None:
                    raise DataError(f"{inp.name}: empty input (expected "
                                    f"{'data' if columns else 'a header line'})")
                first: Optional[str] = line
                if columns is not None:
                    header = columns
                    try:
                        names_1 = [h.strip() for h in _split(
                            line.lstrip("\ufeff").rstrip("\r\n"), args.delimiter)]
                    except csv.Error:
                        names_1 = []
                    if names_1 == header:       # a header line equal to the columns: skip
                        first = None
                    where = "--columns" if args.columns is not None else "the checkpoint"
                else:
                    try:
                        header = [h.strip() for h in _split(
                            line.lstrip("\ufeff").rstrip("\r\n"), args.delimiter)]
                    except csv.Error as e:
                        raise DataError(f"{inp.name}: line 1: malformed header: {e}") from None
                    if not any(header):
                        raise DataError(f"{inp.name}: line 1: empty header line")
                    first = None
                    where = "line 1"
                ycol = _column_index(header, column, "--column", inp.name, where)
                xcols = [_column_index(header, c, "--features", inp.name, where)
                         for c in features]
                kcol = (_column_index(header, args.key, "--key", inp.name, where)
                        if args.key else None)
                keepcols = [_column_index(header, c, "--keep", inp.name, where) for c in keep]
                names = (["line"] + ([args.key] if args.key else []) + keep + ["value"]
                         + [f"forecast_{k + 1}" for k in range(horizon)]
                         + ([f"{b}_{k + 1}" for k in range(horizon) for b in ("low", "high")]
                            if args.interval is not None else []))
                if write(",".join(_csv_field(n) for n in names) + "\n"):
                    while True:
                        if first is not None:
                            line, first = first, None
                        else:
                            line = inp.readline()
                        if line is None:
                            break
                        text = line.rstrip("\r\n")
                        if not text.strip():
                            continue
                        stop.busy = True           # signals wait for the value to finish
                        try:
                            fields = _split(text, args.delimiter)
                        except csv.Error as e:
                            problem(f"malformed line ({e})", "skipped")
                            fields = None
                        if fields is not None and len(fields) != len(header):
                            problem(f"expected {len(header)} fields, got {len(fields)}",
                                    "skipped")
                            fields = None
                        key = fields[kcol] if fields is not None and kcol is not None else None
                        if key is not None and not key.strip():
                            problem(f"column {args.key!r}: empty key", "skipped")
                            fields = None
                        if fields is None:
                            stop.busy = False
                            if stop.signum is not None:
                                raise _Interrupted()
                            continue
                        y, bad = _parse_number(fields[ycol])
                        if bad:
                            problem(f"column {column!r}: {bad}", "treated as missing")
                        x: Optional[List[float]] = None
                        if xcols:
                            x = []
                            for c, i in zip(features, xcols):
                                v, bad = _parse_number(fields[i])
                                if bad:
                                    problem(f"column {c!r}: {bad}", "treated as missing")
                                x.append(v)
                        if key in pending and y == y:
                            fc1, last = pending[key]
                            if fc1 == fc1 and last == last:
                                sc = scores.get(key)
                                if sc is None:
                                    sc = scores[key] = _Score()
                                sc.abs_m += abs(fc1 - y)
                                sc.abs_p += abs(last - y)
                                sc.n += 1
                        if rows == 0:
                            plot_key = key
                        if key == plot_key and plot_path:
                            prev = pending.get(key, (math.nan, math.nan))
                            plot_vals.append(y)
                            plot_fc.append(prev[0])
                            plot_pers.append(prev[1])
                        f.learn_one(y, x, key=key)
                        fc = f.forecast(horizon, key=key)
                        if by_horizon is not None:
                            by_horizon.add(key, y, fc)
                        last = y if y == y else pending.get(key, (math.nan, math.nan))[1]
                        pending[key] = (fc[0], last)
                        rows += 1
                        row = ([str(inp.lineno)] + ([key] if key is not None else [])
                               + [fields[i] for i in keepcols] + [fmt(y)]
                               + [fmt(v) for v in fc])
                        if args.interval is not None:
                            row += [fmt(b) for iv in f.forecast_interval(
                                horizon, args.interval, key=key) for b in iv]
                        stop.busy = False          # the value is whole: a signal may stop us
                        if stop.signum is not None:
                            write(",".join(_csv_field(v) for v in row) + "\n")
                            raise _Interrupted()
                        if not write(",".join(_csv_field(v) for v in row) + "\n"):
                            break
                        bar.update(1)
            except KeyboardInterrupt:   # (handlers not installed: not the main thread)
                interrupted = True
            except _Interrupted:
                interrupted = True
            stop.busy = True               # from here on: the save and the plot finish
            if rows == 0 and not interrupted and not broken_pipe:
                raise DataError(f"{inp.name}: no data rows after the header")
        finally:
            bar.close()
            inp.close()
        if broken_pipe:     # the reader went away (e.g. `| head`, `| true`)
            _silence_stdout()
        if args.save:
            cli_meta = {"column": column, "features": features, "key": args.key,
                        "horizon": horizon, "columns": header or None}
            try:
                sr.save(f, args.save, metadata=cli_meta)
                save_note = f"saved {args.save}"
            except (_Interrupted, KeyboardInterrupt):
                interrupted = True
                save_note = (f"save interrupted: {args.save} not written (the previous "
                             f"checkpoint, if any, is unchanged)")
            except OSError as e:
                print(f"{_prog()}: error: cannot save {args.save}: {e.strerror or e} (the "
                      f"previous checkpoint, if any, is unchanged)", file=sys.stderr)
                return EXIT_DATA
        plot_note = ""
        if plot_path and plot_vals and not (interrupted and stop.count > 1):
            why = _plot(plot_path, plot_vals, plot_fc, plot_pers,
                        f"{column}: one-step-ahead online forecasts"
                        + (f" (key {plot_key})" if plot_key is not None else ""), "row")
            if why is not None:
                print(f"streamrnn: warning: no plot: {why}", file=sys.stderr)
            else:
                plot_note = f"plot {os.path.abspath(plot_path)}"
    interrupted = interrupted or stop.signum is not None
    if not args.quiet or interrupted:
        parts = [f"streamrnn: {rows} rows"
                 + (f" (interrupted by {stop.name})" if interrupted else "")
                 + ("; output closed by its reader" if broken_pipe else "")]
        parts += _score_summary(scores, args.key, fmt)
        if by_horizon is not None:
            parts += by_horizon.lines()
        if problems:
            parts.append(f"{problems} problem(s), first on line {first_problem}")
        if save_note:
            parts.append(save_note)
        if plot_note:
            parts.append(plot_note)
        print("; ".join(parts), file=sys.stderr)
        if args.per_key and scores:
            _per_key_table(scores, args.key or "key", fmt)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _formatter(precision: Optional[int]) -> Any:
    """Floats as text: the shortest representation that reads back to the same double
    (``repr``), or ``precision`` significant digits; NaN (missing) as an empty field."""
    if precision is None:
        return lambda v: "" if v != v else repr(float(v))
    spec = f".{precision}g"
    return lambda v: "" if v != v else format(v, spec)


def _score_summary(scores: Dict[Any, _Score], key: Optional[str], fmt: Any) -> List[str]:
    n = sum(s.n for s in scores.values())
    if not n:
        return []
    abs_m = sum(s.abs_m for s in scores.values())
    abs_p = sum(s.abs_p for s in scores.values())
    text = (f"one-step MAE {abs_m / n:.6g} (persistence {abs_p / n:.6g}, {n} scored)")
    if key is None:
        if abs_p > 0:
            text += f", relative MAE {abs_m / abs_p:.4g}"
        return [text]
    # keys of different scales: the MAE above is dominated by the largest; the scale-free
    # figure is each key's MAE relative to its persistence MAE, averaged over the keys
    ratios = [s.abs_m / s.abs_p for s in scores.values() if s.n and s.abs_p > 0]
    if ratios:
        text += (f"; relative MAE (forecaster/persistence) averaged over {len(ratios)} key(s) "
                 f"{sum(ratios) / len(ratios):.4g}")
    return [text]


def _per_key_table(scores: Dict[Any, _Score], key: str, fmt: Any) -> None:
    print(f"{key},scored,mae,persistence_mae,relative_mae", file=sys.stderr)
    for k in sorted(scores, key=str):
        s = scores[k]
        if not s.n:
            continue
        rel = s.abs_m / s.abs_p if s.abs_p > 0 else math.nan
        print(f"{_csv_field(str(k))},{s.n},{s.abs_m / s.n:.6g},{s.abs_p / s.n:.6g},"
              f"{'' if rel != rel else format(rel, '.4g')}", file=sys.stderr)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _csv_field(v: str) -> str:
    if any(c in v for c in ',"\r\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


# ---------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog=_prog(),
        description="streamrnn: recurrent networks on live streams. Without a command, runs "
                    "the forecasting demo on the embedded sunspot series.",
        epilog="exit codes: 0 ok, 1 data error, 2 usage error, 130 interrupted. "
               "'python -m streamrnn COMMAND --help' documents each command.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo", help="forecast the embedded sunspot series online (the default)",
        description="Forecast the embedded yearly sunspot series (1700-2008, public domain) "
                    "online with a Forecaster, print its error against the persistence "
                    "forecast and, with matplotlib installed, write a PNG plot.")
    _demo_args(demo)

    fc = sub.add_parser(
        "forecast", help="forecast a CSV stream (file or stdin) line by line",
        description="Forecast one numeric column of a CSV stream online, one line at a time: "
                    "learn from each value, then write the next forecasts as CSV to stdout.",
        epilog=_EPILOG_FORECAST, formatter_class=argparse.RawDescriptionHelpFormatter)
    fc.add_argument("input", metavar="FILE|-", help="CSV file with a header line, or - for "
                    "standard input (read line by line, so a live pipe works)")
    fc.add_argument("--column", "-c", metavar="NAME",
                    help="the column to forecast (required unless --load names it)")
    fc.add_argument("--horizon", "-H", type=_positive_int, default=None, metavar="H",
                    help="forecast the next H values after each row (default 1, or the "
                         "checkpoint's with --load)")
    fc.add_argument("--features", metavar="A,B,...", default=None,
                    help="numeric columns used as exogenous features (the future ones are "
                         "taken as their running means)")
    fc.add_argument("--key", metavar="NAME", default=None,
                    help="a column naming the stream of each row: one forecast stream per "
                         "value, all sharing one network")
    fc.add_argument("--keep", metavar="A,B,...", default=None,
                    help="input columns copied to the output (e.g. a timestamp)")
    fc.add_argument("--hidden", type=_positive_int, default=None, metavar="N",
                    help="hidden size of the network (default 32)")
    fc.add_argument("--interval", type=_level, default=None, metavar="LEVEL",
                    help="add low_k,high_k columns: the conformal prediction interval of "
                         "level LEVEL (e.g. 0.9) around each forecast; a new model tracks "
                         "that level's coverage per horizon")
    fc.add_argument("--season", type=_positive_int, default=None, metavar="M",
                    help="season length in steps (e.g. 24 for hourly values with a daily "
                         "cycle): seasonal input and baselines (default none)")
    fc.add_argument("--cell", choices=["lstm", "gru", "rnn_tanh", "rnn_relu"], default=None,
                    help="recurrent cell (default lstm)")
    fc.add_argument("--seed", type=_seed, default=None, help="seed of the initial weights "
                    "(default 0)")
    fc.add_argument("--save", metavar="CKPT", help="at the end (also after Ctrl-C), save the "
                    "model and every stream's state to CKPT (atomically)")
    fc.add_argument("--load", metavar="CKPT", help="resume from a checkpoint written by "
                    "--save (its settings, column and features apply)")
    fc.add_argument("--plot", metavar="PNG", help="at the end, write a plot of the series, "
                    "the one-step forecasts and the running error (needs matplotlib)")
    fc.add_argument("--columns", metavar="A,B,...", default=None,
                    help="the column names of header-less input (a first line equal to them "
                         "is taken as a header and skipped); with --load the checkpoint's "
                         "columns are the default")
    fc.add_argument("--delimiter", "-d", type=_delimiter, default=",",
                    help="field delimiter, one character (default ,)")
    fc.add_argument("--precision", type=_positive_int, default=None, metavar="DIGITS",
                    help="write forecasts with DIGITS significant digits (default: the "
                         "shortest text that reads back to the same number)")
    fc.add_argument("--per-key", action="store_true",
                    help="with --key, also print each key's errors as CSV on stderr at the "
                         "end")
    fc.add_argument("--strict", action="store_true",
                    help="stop with exit code 1 at the first bad line or value")
    fc.add_argument("--max-warnings", type=int, default=20, metavar="N",
                    help="print at most N warnings about bad lines (default 20)")
    fc.add_argument("--progress", dest="progress", action="store_true", default=None,
                    help="force the progress bar (default: on when stderr is a terminal and "
                         "stdout is not)")
    fc.add_argument("--no-progress", dest="progress", action="store_false",
                    help="never show the progress bar")
    fc.add_argument("--quiet", "-q", action="store_true",
                    help="no summary line on stderr at the end")

    sc = sub.add_parser("selfcheck", help="version, BLAS, C core against the NumPy "
                        "reference, per-step timings")
    sc.add_argument("--rounds", type=_positive_int, default=7,
                    help="timing rounds (median is printed)")
    return ap


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plot", metavar="PNG", default="streamrnn-demo.png",
                   help="where to write the plot (default ./streamrnn-demo.png)")
    p.add_argument("--no-plot", action="store_true", help="write no plot")
    p.add_argument("--horizon", "-H", type=_positive_int, default=3, metavar="H",
                   help="forecast horizon (default 3)")
    p.add_argument("--hidden", type=_positive_int, default=32, metavar="N",
                   help="hidden size (default 32)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the initial weights")


def _prog() -> str:
    """How the user called us: ``streamrnn`` (the console script) or ``python -m streamrnn``."""
    name = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "")
    return "streamrnn" if name in ("streamrnn", "streamrnn.exe") else "python -m streamrnn"


def _version() -> str:
    from . import __version__

    return __version__


def _silence_stdout() -> None:
    """The reader of stdout went away: point fd 1 at the null device so that the final
    flush at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = _parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["demo"] + argv
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:    # argparse: 2 on usage errors, 0 for --help
        return int(e.code or 0)
    prog = ap.prog
    try:
        if args.command == "forecast":
            return _forecast(args)
        if args.command == "selfcheck":
            from . import selfcheck

            return selfcheck.main(["--rounds", str(args.rounds)])
        return _demo(args)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DataError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_DATA
    except BrokenPipeError:     # stdout closed by its reader (demo, selfcheck): end quietly
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
