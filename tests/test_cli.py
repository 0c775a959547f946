"""The command line: the demo, `forecast` on files and on a live pipe, save/resume, errors and
exit codes, --help, selfcheck."""
from __future__ import annotations

import csv
import io
import math
import os
import signal
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import cli
from streamrnn.datasets import load_sunspots, sunspots_path

PY = [sys.executable, "-m", "streamrnn"]


def run_cli(args, stdin=None, timeout=120):
    return subprocess.run(PY + args, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def write_csv(path, rows, header=("t", "load", "temp")):
    with open(path, "w", newline="") as fh:
        fh.write(",".join(header) + "\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")


def table(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def demo_rows(n=80):
    return [(t, round(50 + 10 * math.sin(0.4 * t), 4), t % 7) for t in range(n)]


# ---------------------------------------------------------------------- demo
def test_demo_in_process(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    assert cli.main(["--plot", str(png), "--horizon", "2"]) == 0
    out = capsys.readouterr().out
    assert "sunspot" in out and "persistence" in out and str(png) in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_matplotlib(capsys, monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import fails
    assert cli.main(["--plot", str(tmp_path / "x.png")]) == 0
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out and not (tmp_path / "x.png").exists()


def test_demo_beats_persistence_as_a_subprocess(tmp_path):
    r = subprocess.run(PY, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    line = [s for s in r.stdout.splitlines() if s.startswith("one-step-ahead MAE")][0]
    assert "lower than persistence" in line
    assert "\r" not in r.stderr                      # no progress bar into a pipe
    _, values = load_sunspots()
    assert str(len(values)) in r.stdout


# ---------------------------------------------------------------------- forecast: files
def test_forecast_file(tmp_path, capsys):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows())
    assert cli.main(["forecast", str(src), "--column", "load", "-H", "3", "--keep", "t",
                     "--features", "temp"]) == 0
    captured = capsys.readouterr()
    head, rows = table(captured.out)
    assert head == ["line", "t", "value", "forecast_1", "forecast_2", "forecast_3"]
    assert len(rows) == 80 and rows[0][:3] == ["2", "0", "50.0"]
    assert all(math.isfinite(float(v)) for r in rows for v in r[3:])
    assert "80 rows; one-step MAE" in captured.err


def test_summary_reports_mae_by_horizon_against_the_baselines(tmp_path, capsys):
    """With -H 4 --season 3 the summary gives the MAE at horizons 1, 2 (the middle) and 4
    of the forecaster, persistence and the seasonal naive forecast. On the ramp y = t the
    baselines' errors are known by hand (persistence h, seasonal naive 3*ceil(h/3)); the
    forecaster's are recomputed from the forecasts the command printed."""
    src = tmp_path / "ramp.csv"
    write_csv(src, [(t,) for t in range(60)], header=("v",))
    assert cli.main(["forecast", str(src), "--column", "v", "-H", "4", "--season", "3"]) == 0
    captured = capsys.readouterr()
    head, rows = table(captured.out)
    fc = np.array([[float(v) for v in r[2:]] for r in rows])        # (60, 4)
    parts = {}
    for h, back in ((1, 3), (2, 3), (4, 6)):
        ts = range(max(h, back), 60)
        mae = sum(abs(fc[t - h, h - 1] - t) for t in ts) / len(ts)
        parts[h] = (f"h={h}: MAE {mae:.6g} (persistence {h:.6g}, seasonal naive "
                    f"{back:.6g}, {len(ts)} scored)")
    assert f"MAE by horizon: {parts[1]}; {parts[2]}; {parts[4]}" in captured.err


def test_forecast_matches_the_python_api(tmp_path, capsys):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(40))
    assert cli.main(["forecast", str(src), "-c", "load", "-H", "2", "--hidden", "8",
                     "--seed", "3", "--quiet"]) == 0
    _, rows = table(capsys.readouterr().out)
    f = sr.Forecaster(hidden_size=8, seed=3)
    for (_, y, _), row in zip(demo_rows(40), rows):
        f.learn_one(y)
        # the text is the shortest that reads back to the same double: exact
        assert [float(v) for v in row[2:]] == [float(v) for v in f.forecast(2)]


def test_forecast_keyed_streams(tmp_path, capsys):
    src = tmp_path / "k.csv"
    rows = [(t, 100 * (t % 2) + math.sin(0.3 * t), f"s{t % 2}") for t in range(60)]
    write_csv(src, rows, header=("t", "v", "id"))
    assert cli.main(["forecast", str(src), "-c", "v", "--key", "id", "--quiet"]) == 0
    head, out = table(capsys.readouterr().out)
    assert head == ["line", "id", "value", "forecast_1"]
    for r in out[10:]:
        level = 100 if r[1] == "s1" else 0
        assert abs(float(r[3]) - level) < 10


def test_save_and_resume_equals_one_run(tmp_path):
    rows = demo_rows(90)
    whole, part1, part2 = (tmp_path / n for n in ("all.csv", "p1.csv", "p2.csv"))
    write_csv(whole, rows)
    write_csv(part1, rows[:50])
    write_csv(part2, rows[50:])
    ck = tmp_path / "ck.srnn"
    common = ["-H", "2", "--features", "temp", "--hidden", "8"]
    a = run_cli(["forecast", str(whole), "-c", "load"] + common)
    b = run_cli(["forecast", str(part1), "-c", "load", "--save", str(ck)] + common)
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    assert ck.exists() and "saved" in b.stderr
    # resume: the column and features come from the checkpoint
    c = run_cli(["forecast", str(part2), "--load", str(ck), "-H", "2"])
    assert c.returncode == 0, c.stderr
    _, ra = table(a.stdout)
    _, rb = table(b.stdout)
    _, rc = table(c.stdout)
    assert [r[1:] for r in ra] == [r[1:] for r in rb + rc]     # bit for bit (same text)


def test_resume_with_other_features_is_a_usage_error(tmp_path):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(10))
    ck = tmp_path / "ck"
    assert run_cli(["forecast", str(src), "-c", "load", "--save", str(ck)]).returncode == 0
    r = run_cli(["forecast", str(src), "--load", str(ck), "--features", "temp"])
    assert r.returncode == 2 and "differ from the checkpoint" in r.stderr


@pytest.mark.parametrize("content, code, message", [
    (b"not a checkpoint", 1, "not a streamrnn file"),
    (None, 2, "cannot read checkpoint"),
])
def test_bad_checkpoint(tmp_path, content, code, message):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(5))
    ck = tmp_path / "ck"
    if content is not None:
        ck.write_bytes(content)
    r = run_cli(["forecast", str(src), "-c", "load", "--load", str(ck)])
    assert r.returncode == code and message in r.stderr


def test_checkpoint_of_another_type(tmp_path):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(5))
    sr.save(sr.LSTM(1, 2), tmp_path / "net")
    r = run_cli(["forecast", str(src), "-c", "load", "--load", str(tmp_path / "net")])
    assert r.returncode == 1 and "expected a Forecaster" in r.stderr


def test_forecast_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    r = run_cli(["forecast", sunspots_path(), "-c", "sunspots", "--plot", str(png)])
    assert r.returncode == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert str(png) in r.stderr


# ---------------------------------------------------------------------- errors
BAD = b"t,load,temp\n0,1.5,3\n1,abc,3\n2,2.5\n3,\"4,5\n\n4,inf,1\n5,NA,2\n6,3.5,x\n7,4.0,1\n"


def test_bad_lines_are_reported_and_skipped():
    r = run_cli(["forecast", "-", "-c", "load", "--features", "temp"], stdin=BAD.decode())
    assert r.returncode == 0
    err = r.stderr
    assert "line 3: column 'load': 'abc' is not a number; treated as missing" in err
    assert "line 4: expected 3 fields, got 2; skipped" in err
    assert "line 5: malformed line" in err
    assert "line 7: column 'load': 'inf' is not a finite number" in err
    assert "line 9: column 'temp': 'x' is not a number" in err
    assert "line 8" not in err                     # NA is an ordinary missing value
    _, rows = table(r.stdout)
    assert [row[0] for row in rows] == ["2", "3", "7", "8", "9", "10"]
    assert rows[1][1] == "" and rows[3][1] == ""   # missing values: empty
    assert all(math.isfinite(float(v)) for row in rows for v in row[2:])
    assert "5 problem(s), first on line 3" in err


def test_strict_stops_at_the_first_bad_line():
    r = run_cli(["forecast", "-", "-c", "load", "--strict"], stdin=BAD.decode())
    assert r.returncode == 1
    assert "line 3: column 'load': 'abc' is not a number (--strict)" in r.stderr
    assert len(r.stdout.splitlines()) == 2          # header + the one good row


@pytest.mark.parametrize("stdin, message", [
    ("", "empty input"),
    ("t,load\n", "no data rows"),
    ("t,x\n1,2\n", "line 1: no column 'load' (--column) in the header; columns: t, x"),
    ("\n1,2\n", "empty header line"),
])
def test_data_errors(stdin, message):
    r = run_cli(["forecast", "-", "--column", "load"], stdin=stdin)
    assert r.returncode == 1 and message in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["forecast", "-"], "--column NAME is required"),
    (["forecast", "-", "-c", "x", "--horizon", "0"], "positive integer"),
    (["forecast", "-", "-c", "x", "--bogus"], "unrecognized arguments"),
    (["forecast", "/nonexistent/file.csv", "-c", "x"], "cannot open"),
    (["forecast"], "required"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors(args, message):
    r = run_cli(args, stdin="")
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_help_documents_everything():
    r = run_cli(["forecast", "--help"])
    assert r.returncode == 0
    for opt in ("--column", "--horizon", "--hidden", "--save", "--load", "--plot", "--strict",
                "--features", "--key", "--keep", "exit codes", "tail -f"):
        assert opt in r.stdout, opt
    top = run_cli(["--help"])
    assert top.returncode == 0
    for cmd in ("demo", "forecast", "selfcheck"):
        assert cmd in top.stdout


def test_selfcheck(capsys):
    assert cli.main(["selfcheck", "--rounds", "1"]) == 0
    assert "C core vs NumPy reference" in capsys.readouterr().out


# ---------------------------------------------------------------------- a live pipe
def readline_within(stream, seconds=300.0):
    # The limit only turns a hang (a CLI that does not answer a line before the next one
    # arrives never answers here) into a failure; it is no speed requirement.
    # A reader thread, not select(): select() watches the pipe, not the TextIOWrapper's
    # buffer, so a line that arrived in the same chunk as the previous one (already
    # buffered) would look like no output at all and fail the test ~1 run in 8.
    got = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert got, "no output line within the time limit: the CLI does not stream"
    return got[0]


def test_live_pipe_answers_each_line_before_the_next(tmp_path):
    ck = tmp_path / "live.srnn"
    p = subprocess.Popen(PY + ["forecast", "-", "--column", "v", "--save", str(ck)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        p.stdin.write("t,v\n")
        p.stdin.flush()
        assert readline_within(p.stdout).strip() == "line,value,forecast_1"
        for t in range(25):
            p.stdin.write(f"{t},{math.sin(0.5 * t):.6f}\n")
            p.stdin.flush()
            row = readline_within(p.stdout).strip().split(",")
            assert row[0] == str(t + 2) and math.isfinite(float(row[2]))
        p.stdin.close()
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
    f = sr.load(ck, sr.Forecaster)
    assert f.stats()["observations"] == 25


# Windows has SIGTERM in the signal module, but send_signal(SIGTERM) there is TerminateProcess
@pytest.mark.skipif(os.name != "posix", reason="a catchable SIGTERM is POSIX")
def test_sigterm_saves_and_exits_130(tmp_path):
    ck = tmp_path / "term.srnn"
    p = subprocess.Popen(PY + ["forecast", "-", "-c", "v", "--save", str(ck)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        p.stdin.write("v\n1\n2\n3\n")
        p.stdin.flush()
        for _ in range(4):
            readline_within(p.stdout)
        p.send_signal(signal.SIGTERM)              # stdin still open: a tail -f pipeline
        assert p.wait(timeout=60) == 130
    finally:
        if p.poll() is None:
            p.kill()
    assert sr.load(ck, sr.Forecaster).stats()["observations"] == 3


@pytest.mark.skipif(shutil.which("bash") is None or os.name != "posix",
                    reason="a POSIX shell pipeline with head")
def test_reader_going_away_is_not_an_error(tmp_path):
    src = tmp_path / "big.csv"
    write_csv(src, demo_rows(3000))
    cmd = (f"{sys.executable} -m streamrnn forecast {src} -c load --hidden 4 | head -n 3")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 3 and "Traceback" not in r.stderr


def test_no_progress_bar_into_a_pipe(tmp_path):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(30))
    r = run_cli(["forecast", str(src), "-c", "load"])
    assert "\r" not in r.stderr and "it/s" not in r.stderr
    forced = run_cli(["forecast", str(src), "-c", "load", "--progress"])
    assert "forecast" in forced.stderr and forced.returncode == 0
    assert os.path.exists(src)


# ---------------------------------------------------------------------- user errors: one line, 2
def one_line_usage_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""                       # nothing was forecast: checked before the run


def checkpoint(tmp_path, name, metadata):
    f = sr.Forecaster(hidden_size=4, seed=0, n_features=0)
    for t in range(5):
        f.learn_one(float(t))
    p = tmp_path / f"{name}.srnn"
    sr.save(f, p, metadata=metadata)
    return p


@pytest.mark.parametrize("extra, needle", [
    (["-d", ""], "--delimiter/-d: expected one character"),
    (["-d", "ab"], "--delimiter/-d: expected one character"),
    (["-d", '"'], "--delimiter/-d: expected one character"),
    (["--save", "{tmp}/missing/dir/m.srnn"], "/missing/dir does not exist"),
    (["--plot", "{tmp}/missing/p.png"], "/missing does not exist"),
    (["--save", "{tmp}"], "it is a directory"),
    (["--save", "{tmp}/fifo"], "not a regular file"),
    (["--load", "{tmp}/fifo"], "is a FIFO, not a regular file"),
    (["--load", "{ck_feat}"], "names 1 feature column(s) ['temp'], but its model has "
                              "n_features=0"),
    (["--load", "{ck_col}"], "metadata 'column' must be a str or null, got 5"),
    (["--load", "{ck_hor}"], "metadata 'horizon' must be a int or null"),
    (["--load", "{ck_ok}", "-c", "temp"], "--column temp differs from the checkpoint's load"),
    (["--load", "{ck_ok}", "--key", "t"], "--key t differs from the checkpoint's"),
    (["--load", "{ck_ok}", "--features", "temp"], "differ from the checkpoint's features"),
    (["--precision", "0"], "positive integer"),
])
def test_user_errors_are_one_line_and_exit_code_2(tmp_path, extra, needle):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(2000))
    if os.name == "posix":
        os.mkfifo(tmp_path / "fifo")
    elif "fifo" in " ".join(extra):
        pytest.skip("FIFOs are POSIX")
    cks = {name: checkpoint(tmp_path, name, meta) for name, meta in [
        ("ck_feat", {"column": "load", "features": ["temp"]}),
        ("ck_ok", {"column": "load", "features": [], "key": None}),
        ("ck_col", {"column": 5}),
        ("ck_hor", {"column": "load", "horizon": "3"})]}
    args = [a.format(tmp=tmp_path, **cks) for a in extra]
    if "-c" not in args and "--load" not in args:
        args += ["-c", "load"]
    # (the FIFO has no writer: a command that opened it would wait forever; the timeout
    # only turns such a hang into a failure)
    r = run_cli(["forecast", str(src)] + args, timeout=300)
    one_line_usage_error(r)
    assert needle in r.stderr, r.stderr


def test_demo_plot_into_a_missing_directory(tmp_path):
    r = run_cli(["demo", "--plot", str(tmp_path / "no" / "demo.png")])
    one_line_usage_error(r)
    assert "does not exist" in r.stderr


def test_plot_without_matplotlib_warns_and_the_summary_names_no_file(tmp_path, capsys,
                                                                      monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import fails
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(20))
    png = tmp_path / "p.png"
    assert cli.main(["forecast", str(src), "-c", "load", "--plot", str(png)]) == 0
    err = capsys.readouterr().err
    assert "matplotlib is not installed" in err and "20 rows" in err
    assert str(png) not in err.splitlines()[-1] and not png.exists()


def test_version():
    r = run_cli(["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"python -m streamrnn {sr.__version__}"


# ---------------------------------------------------------------------- header-less input, keys
def test_headerless_input_with_columns_equals_the_input_with_a_header(tmp_path):
    rows = demo_rows(40)
    with_header = tmp_path / "h.csv"
    write_csv(with_header, rows)
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    a = run_cli(["forecast", str(with_header), "-c", "load", "--hidden", "4"])
    b = run_cli(["forecast", str(bare), "-c", "load", "--hidden", "4", "--columns",
                 "t,load,temp"])
    # with --columns, a first line equal to them is a header (skipped)
    c = run_cli(["forecast", str(with_header), "-c", "load", "--hidden", "4", "--columns",
                 "t,load,temp"])
    assert a.returncode == b.returncode == c.returncode == 0, (b.stderr, c.stderr)
    _, ra = table(a.stdout)
    _, rb = table(b.stdout)
    _, rc = table(c.stdout)
    assert len(ra) == 40 and [r[1:] for r in ra] == [r[1:] for r in rb] == [r[1:] for r in rc]
    assert rb[0][0] == "1" and ra[0][0] == "2"     # line numbers are the file's
    bad = run_cli(["forecast", str(bare), "-c", "load", "--columns", "t,x"])
    assert bad.returncode == 1 and "no column 'load' (--column) in the columns" in bad.stderr


def test_resume_from_headerless_input_uses_the_checkpoints_columns(tmp_path):
    rows = demo_rows(60)
    first, rest = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(first, rows[:30])
    rest.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows[30:]))
    whole = tmp_path / "all.csv"
    write_csv(whole, rows)
    ck = tmp_path / "ck.srnn"
    args = ["--features", "temp", "--hidden", "4", "-H", "2"]
    r1 = run_cli(["forecast", str(first), "-c", "load", "--save", str(ck)] + args)
    r2 = run_cli(["forecast", str(rest), "--load", str(ck)])     # no header, no options
    full = run_cli(["forecast", str(whole), "-c", "load"] + args)
    assert r1.returncode == r2.returncode == full.returncode == 0, r2.stderr
    _, a = table(r1.stdout)
    _, b = table(r2.stdout)
    _, w = table(full.stdout)
    assert [r[1:] for r in a + b] == [r[1:] for r in w]       # horizon 2 remembered too
    meta = sr.load(ck, sr.Forecaster, with_metadata=True)[1]
    assert meta == {"column": "load", "features": ["temp"], "key": None, "horizon": 2,
                    "columns": ["t", "load", "temp"]}


def test_keys_scale_free_error_per_key_table_and_empty_keys(tmp_path):
    src = tmp_path / "k.csv"
    rows = [(t, (1000 if t % 2 else 1) * (5 + math.sin(0.3 * t)), f"s{t % 2}")
            for t in range(80)]
    rows.insert(10, (99, 1.0, ""))                             # an empty key
    write_csv(src, rows, header=("t", "v", "id"))
    r = run_cli(["forecast", str(src), "-c", "v", "--key", "id", "--per-key"])
    assert r.returncode == 0, r.stderr
    assert "line 12: column 'id': empty key; skipped" in r.stderr
    _, out = table(r.stdout)
    assert len(out) == 80 and all(row[1] in ("s0", "s1") for row in out)
    err = r.stderr.splitlines()
    i = err.index("id,scored,mae,persistence_mae,relative_mae")
    per = {row[0]: row for row in csv.reader(err[i + 1:])}
    assert sorted(per) == ["s0", "s1"]
    # recompute each key's errors from the output: forecast_1 of a row vs the next value
    for k, row in per.items():
        vals = [(float(o[2]), float(o[3])) for o in out if o[1] == k]
        e_m = [abs(f - y) for (_, f), (y, _) in zip(vals, vals[1:])]
        e_p = [abs(x - y) for (x, _), (y, _) in zip(vals, vals[1:])]
        assert int(row[1]) == len(e_m)
        assert float(row[2]) == pytest.approx(sum(e_m) / len(e_m), rel=1e-5)
        assert float(row[3]) == pytest.approx(sum(e_p) / len(e_p), rel=1e-5)
        assert float(row[4]) == pytest.approx(sum(e_m) / sum(e_p), rel=1e-3)
    mean_rel = (float(per["s0"][4]) + float(per["s1"][4])) / 2
    summary = [ln for ln in err if ln.startswith("streamrnn: 80 rows")][0]
    got = float(summary.split("averaged over 2 key(s) ")[1].split(";")[0])
    assert got == pytest.approx(mean_rel, rel=1e-3)       # (4 significant digits printed)


def test_precision(tmp_path):
    src = tmp_path / "d.csv"
    write_csv(src, demo_rows(10))
    r = run_cli(["forecast", str(src), "-c", "load", "--precision", "3"])
    _, rows = table(r.stdout)
    assert r.returncode == 0 and all(len(v.replace(".", "").replace("-", "").lstrip("0")) <= 3
                                     for row in rows for v in row[3:])
