"""The command line: ``python -m streamrnn [demo | forecast | selfcheck]``.

``python -m streamrnn`` (no arguments) runs the demo: it forecasts the embedded yearly
sunspot series online, one value at a time, prints the forecaster's error against the
persistence forecast and, when matplotlib is installed, writes a PNG plot.

``python -m streamrnn forecast FILE|- --column NAME`` forecasts a CSV stream line by line
(``-`` reads standard input, so ``tail -f data.csv | python -m streamrnn forecast -
--column load`` keeps producing forecasts) and writes every forecast as CSV to standard
output as soon as it is made.

Exit codes: 0 success, 1 data error (bad input, bad checkpoint), 2 usage error,
130 interrupted (after saving with ``--save``).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, TextIO, Tuple

from ._progress import progress_bar, stderr_is_tty

if TYPE_CHECKING:
    import numpy as np

__all__ = ["main"]

EXIT_OK, EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_MISSING_TOKENS = {"", "na", "nan", "n/a", "null", "none", "?"}

_EPILOG_FORECAST = """\
input: CSV with a header line, read line by line (a live pipe works). The target column
  and any feature columns must hold numbers; an empty field or NA/NaN/null/? is a missing
  value (the stream advances, the model's own forecast stands in). Blank lines are skipped.
output (stdout, one row per input row, written as soon as it is made):
  line,[key],[kept columns],value,forecast_1..forecast_H
  'forecast_k' is the forecast of the value k rows after this one (per key with --key),
  made after learning from this row.
problems: a malformed line (wrong number of fields, bad quoting) is skipped and a
  non-numeric or infinite value is treated as missing; each gives a message on stderr
  naming the line. With --strict the first problem ends the run with exit code 1.
exit codes: 0 ok, 1 data error (bad input with --strict, empty input, missing column,
  bad checkpoint), 2 usage error, 130 interrupted (Ctrl-C or SIGTERM; --save still runs).
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


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def _fmt(v: float) -> str:
    return "" if v != v else format(v, ".10g")


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
        why = _plot(path, values, res.forecasts[:, 0], res.persistence,
                    "Yearly sunspot numbers: one-step-ahead online forecasts", "year", years)
        if why is None:
            print(f"plot: {path}")
        else:
            print(f"plot: none ({why})")
    return EXIT_OK


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


def _column_index(header: List[str], name: str, what: str, source: str) -> int:
    if name in header:
        return header.index(name)
    raise DataError(f"{source}: line 1: no column {name!r} ({what}) in the header; columns: "
                    f"{', '.join(header) if header else '(none)'}")


def _forecast(args: argparse.Namespace) -> int:
    import streamrnn as sr

    column = args.column
    features: Optional[List[str]] = None
    if args.features is not None:
        features = [c.strip() for c in args.features.split(",") if c.strip()]
    keep = [c.strip() for c in args.keep.split(",") if c.strip()] if args.keep else []
    meta: Dict[str, Any] = {}
    if args.load:
        try:
            f, meta = sr.load(args.load, sr.Forecaster, with_metadata=True)
        except OSError as e:
            raise UsageError(f"cannot read checkpoint {args.load}: {e.strerror or e}") from None
        except (sr.FileFormatError, TypeError) as e:
            raise DataError(f"cannot load checkpoint: {e}") from None
        saved_cols = meta.get("features") or []
        if column is None:
            column = meta.get("column")
        if features is None:
            features = list(saved_cols)
        elif features != list(saved_cols):
            raise UsageError(f"--features {','.join(features) or '(none)'} differ from the "
                             f"checkpoint's features {','.join(saved_cols) or '(none)'}")
        if args.key is None and meta.get("key"):
            args.key = meta.get("key")
        if args.hidden is not None and args.hidden != f.hidden_size:
            print(f"streamrnn: warning: --hidden {args.hidden} ignored: the checkpoint has "
                  f"hidden_size={f.hidden_size}", file=sys.stderr)
        if args.season is not None and args.season != f.season:
            print(f"streamrnn: warning: --season {args.season} ignored: the checkpoint has "
                  f"season={f.season}", file=sys.stderr)
    else:
        if args.season is not None and args.season < 2:
            raise UsageError(f"--season must be at least 2, got {args.season}")
        f = sr.Forecaster(cell=args.cell, hidden_size=args.hidden or 32, seed=args.seed,
                          n_features=len(features or []), season=args.season)
    features = features or []
    if column is None:
        raise UsageError("--column NAME is required (unless --load gives a checkpoint that "
                         "names it)")
    horizon = args.horizon
    inp = _Input(args.input)
    out = sys.stdout
    problems = 0
    first_problem: Optional[int] = None
    rows = 0
    abs_m = abs_p = 0.0
    scored = 0
    pending: Dict[Any, Tuple[float, float]] = {}   # key -> (one-step forecast, last value)
    plot_key: Any = None
    plot_vals: List[float] = []
    plot_fc: List[float] = []
    plot_pers: List[float] = []
    interrupted = False
    broken_pipe = False
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

    def on_term(signum: int, frame: Any) -> None:
        raise _Interrupted()

    old_term = signal.signal(signal.SIGTERM, on_term) if hasattr(signal, "SIGTERM") else None
    try:
        try:
            line = inp.readline()
            if line is None:
                raise DataError(f"{inp.name}: empty input (expected a header line)")
            try:
                header = [h.strip() for h in _split(line.lstrip("\ufeff").rstrip("\r\n"),
                                                    args.delimiter)]
            except csv.Error as e:
                raise DataError(f"{inp.name}: line 1: malformed header: {e}") from None
            if not any(header):
                raise DataError(f"{inp.name}: line 1: empty header line")
            ycol = _column_index(header, column, "--column", inp.name)
            xcols = [_column_index(header, c, "--features", inp.name) for c in features]
            kcol = _column_index(header, args.key, "--key", inp.name) if args.key else None
            keepcols = [_column_index(header, c, "--keep", inp.name) for c in keep]
            names = (["line"] + ([args.key] if args.key else []) + keep + ["value"]
                     + [f"forecast_{k + 1}" for k in range(horizon)])
            out.write(",".join(_csv_field(n) for n in names) + "\n")
            out.flush()
            while True:
                line = inp.readline()
                if line is None:
                    break
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    fields = _split(text, args.delimiter)
                except csv.Error as e:
                    problem(f"malformed line ({e})", "skipped")
                    continue
                if len(fields) != len(header):
                    problem(f"expected {len(header)} fields, got {len(fields)}", "skipped")
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
                key = fields[kcol] if kcol is not None else None
                if key in pending and y == y:
                    fc1, last = pending[key]
                    if fc1 == fc1 and last == last:
                        abs_m += abs(fc1 - y)
                        abs_p += abs(last - y)
                        scored += 1
                if rows == 0:
                    plot_key = key
                if key == plot_key and args.plot:
                    prev = pending.get(key, (math.nan, math.nan))
                    plot_vals.append(y)
                    plot_fc.append(prev[0])
                    plot_pers.append(prev[1])
                f.learn_one(y, x, key=key)
                fc = f.forecast(horizon, key=key)
                last = y if y == y else pending.get(key, (math.nan, math.nan))[1]
                pending[key] = (fc[0], last)
                rows += 1
                row = ([str(inp.lineno)] + ([key] if key is not None else [])
                       + [fields[i] for i in keepcols] + [_fmt(y)] + [_fmt(v) for v in fc])
                try:
                    out.write(",".join(_csv_field(v) for v in row) + "\n")
                    out.flush()
                except BrokenPipeError:
                    broken_pipe = True
                    break
                bar.update(1)
        except (KeyboardInterrupt, _Interrupted):
            interrupted = True
        if rows == 0 and not interrupted and not broken_pipe:
            raise DataError(f"{inp.name}: no data rows after the header")
    finally:
        bar.close()
        inp.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    if broken_pipe:
        # the reader went away (e.g. `| head`): silence the final flush of stdout
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    if args.save:
        sr.save(f, args.save, metadata={"column": column, "features": features,
                                        "key": args.key, "horizon": horizon})
    if args.plot and plot_vals:
        why = _plot(args.plot, plot_vals, plot_fc, plot_pers,
                    f"{column}: one-step-ahead online forecasts"
                    + (f" (key {plot_key})" if plot_key is not None else ""), "row")
        if why is not None:
            print(f"streamrnn: warning: no plot: {why}", file=sys.stderr)
    if not args.quiet:
        summary = f"streamrnn: {rows} rows"
        if scored:
            summary += (f"; one-step MAE {abs_m / scored:.6g} (persistence "
                        f"{abs_p / scored:.6g}, {scored} scored)")
        if problems:
            summary += f"; {problems} problem(s), first on line {first_problem}"
        if args.save:
            summary += f"; saved {args.save}"
        if args.plot and plot_vals:
            summary += f"; plot {os.path.abspath(args.plot)}"
        print(summary, file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


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
    ap = argparse.ArgumentParser(
        prog="python -m streamrnn",
        description="streamrnn: recurrent networks on live streams. Without a command, runs "
                    "the forecasting demo on the embedded sunspot series.",
        epilog="exit codes: 0 ok, 1 data error, 2 usage error. "
               "'python -m streamrnn COMMAND --help' documents each command.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

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
    fc.add_argument("--horizon", "-H", type=_positive_int, default=1, metavar="H",
                    help="forecast the next H values after each row (default 1)")
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
    fc.add_argument("--season", type=_positive_int, default=None, metavar="M",
                    help="season length in steps (e.g. 24 for hourly values with a daily "
                         "cycle): seasonal input and baselines (default none)")
    fc.add_argument("--cell", choices=["lstm", "gru", "rnn_tanh", "rnn_relu"], default="lstm",
                    help="recurrent cell (default lstm)")
    fc.add_argument("--seed", type=_seed, default=0, help="seed of the initial weights "
                    "(default 0)")
    fc.add_argument("--save", metavar="CKPT", help="at the end (also after Ctrl-C), save the "
                    "model and every stream's state to CKPT (atomically)")
    fc.add_argument("--load", metavar="CKPT", help="resume from a checkpoint written by "
                    "--save (its settings, column and features apply)")
    fc.add_argument("--plot", metavar="PNG", help="at the end, write a plot of the series, "
                    "the one-step forecasts and the running error (needs matplotlib)")
    fc.add_argument("--delimiter", "-d", default=",", help="field delimiter (default ,)")
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = _parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo"] + argv
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:    # argparse: 2 on usage errors, 0 for --help
        return int(e.code or 0)
    try:
        if args.command == "forecast":
            return _forecast(args)
        if args.command == "selfcheck":
            from . import selfcheck

            return selfcheck.main(["--rounds", str(args.rounds)])
        return _demo(args)
    except UsageError as e:
        print(f"python -m streamrnn: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DataError as e:
        print(f"python -m streamrnn: error: {e}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
