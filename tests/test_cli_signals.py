"""The command line under signals and pipes, without timing: the child process reports
through a pipe where it is (in the middle of a value, inside the save) and waits there until
the parent has sent its signal; the outcome is then read from the checkpoint and the output.

- SIGINT, SIGTERM and SIGHUP stop ``forecast`` between whole values: every row written is a
  value learned, and the checkpoint equals a replay of exactly those values; exit code 130.
- A signal during the final ``--save``: the save finishes (and the summary says so); a second
  one abandons it and the previous checkpoint stays as it was (and the summary says so).
- A closed stdout, even before the header: no traceback, the checkpoint is saved.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pytest

import streamrnn as sr

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and pipes")

CHILD = r"""
import json, os, sys
import streamrnn as sr
from streamrnn import cli, io as srio

report, go = int(sys.argv[1]), int(sys.argv[2])
mode, at, argv = sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])


def pause(tag):
    os.write(report, (tag + "\n").encode())
    os.read(go, 1)      # returns once the parent has sent its signal(s) and then a byte


learn = sr.Forecaster.learn_one
count = [0]


def learn_one(self, *a, **k):
    count[0] += 1
    if mode == "before" and count[0] == at:
        pause("before")
    r = learn(self, *a, **k)
    if mode == "after" and count[0] == at:
        pause("after")          # learned, not yet forecast nor written
    return r


sr.Forecaster.learn_one = learn_one
if mode == "save":
    write = srio._write_atomic

    def write_atomic(*a, **k):
        pause("save")
        return write(*a, **k)

    srio._write_atomic = write_atomic
sys.exit(cli.main(argv))
"""

VALUES = [round(10 + 3 * math.sin(0.3 * t), 6) for t in range(40)]
SETTINGS = ["--hidden", "4", "--seed", "1"]


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("t,v\n" + "".join(f"{t},{v}\n" for t, v in enumerate(VALUES)))
    return p


def run_child(mode, at, argv, signals):
    """Run the CLI in a child that pauses at ``mode``; when it reports, send ``signals``
    (in order), then let it go on. Returns the CompletedProcess-like (code, out, err)."""
    rep_r, rep_w = os.pipe()
    go_r, go_w = os.pipe()
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(rep_w), str(go_r), mode, str(at),
                          json.dumps(argv)], pass_fds=(rep_w, go_r), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    os.close(rep_w)
    os.close(go_r)
    try:
        with os.fdopen(rep_r, "rb") as rep:
            tag = rep.readline().decode().strip()
            if tag != mode:
                out, err = p.communicate(timeout=300)
                pytest.fail(f"the child did not pause at {mode!r}: {tag!r}\n{err}")
            for sig in signals:
                p.send_signal(sig)
            os.write(go_w, b"g")
            out, err = p.communicate(timeout=300)
    finally:
        os.close(go_w)
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err


def replay(n):
    f = sr.Forecaster(hidden_size=4, seed=1, n_features=0)
    for y in VALUES[:n]:
        f.learn_one(y)
    return f


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("mode", ["before", "after"])
def test_a_signal_stops_between_whole_values(tmp_path, data, sig, mode):
    ck = tmp_path / "ck.srnn"
    code, out, err = run_child(mode, 5, ["forecast", str(data), "-c", "v", "--save", str(ck)]
                               + SETTINGS, [getattr(signal, sig)])
    assert code == 130, err
    assert "Traceback" not in err
    rows = out.splitlines()[1:]
    f = sr.load(ck, sr.Forecaster)
    # the value being learned when the signal came was finished: learned, forecast, written
    assert len(rows) == f.stats()["observations"] == 5
    assert sr.dumps(f) == sr.dumps(replay(5))
    assert [float(v) for v in rows[-1].split(",")[2:]] == replay(5).forecast(1)
    assert f"5 rows (interrupted by {sig})" in err and f"saved {ck}" in err


def test_a_signal_during_the_save_lets_it_finish(tmp_path, data):
    ck = tmp_path / "ck.srnn"
    code, out, err = run_child("save", 0, ["forecast", str(data), "-c", "v", "--save",
                                           str(ck)] + SETTINGS, [signal.SIGINT])
    assert code == 130 and "Traceback" not in err, err
    assert sr.dumps(sr.load(ck, sr.Forecaster)) == sr.dumps(replay(len(VALUES)))
    assert f"{len(VALUES)} rows (interrupted by SIGINT)" in err and f"saved {ck}" in err


def test_a_second_signal_abandons_the_save_and_keeps_the_previous_checkpoint(tmp_path, data):
    ck = tmp_path / "ck.srnn"
    sr.save(replay(3), ck)
    before = ck.read_bytes()
    # two different signals (two of one kind could merge into one while pending)
    code, out, err = run_child("save", 0, ["forecast", str(data), "-c", "v", "--save",
                                           str(ck)] + SETTINGS[2:],
                               [signal.SIGINT, signal.SIGTERM])
    assert code == 130 and "Traceback" not in err, err
    assert ck.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.srnn", "d.csv"]       # no temporary file
    assert "save interrupted" in err and "previous checkpoint, if any, is unchanged" in err
    assert f"saved {ck}" not in err


def test_stdout_closed_before_the_header(tmp_path, data):
    """`... | true`: the reader is gone before the first byte (deterministic: the pipe's
    read end is closed before the command starts)."""
    ck = tmp_path / "ck.srnn"
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "streamrnn", "forecast", str(data), "-c", "v",
                            "--save", str(ck)], stdout=w, stderr=subprocess.PIPE, text=True,
                           timeout=300)
    finally:
        os.close(w)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "Error" not in p.stderr
    assert "output closed by its reader" in p.stderr and f"saved {ck}" in p.stderr
    assert isinstance(sr.load(ck, sr.Forecaster), sr.Forecaster)


@pytest.mark.parametrize("argv", [["demo", "--no-plot"], ["--version"], ["--help"]])
def test_other_commands_with_stdout_closed(argv):
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "streamrnn"] + argv, stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=600)
    finally:
        os.close(w)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 0
