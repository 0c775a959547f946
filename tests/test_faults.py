"""Faults while saving checkpoints.

* SIGKILL at random moments: a forked child resumes an OnlineTrainer and a Forecaster from
  their checkpoints and, after every step, saves each over its previous checkpoint,
  reporting each completed save through a pipe; the parent kills it after a random number
  of completed saves (a third of the kills) or while it is paused inside a save, after the
  temporary file's header or just before the rename (no kill is placed by timing), then checks that each checkpoint loads, says which
  step it holds (``steps``), and is byte for byte what an uninterrupted in-process replay
  of that many steps saves (so it also resumes bit for bit: the next child continues from
  it, and its later checkpoints are checked the same way). Temporary files a kill leaves
  behind never carry the checkpoint's name: each is either refused by ``load``
  (FileFormatError) or a complete copy of a replayed step (killed between fsync and rename).
* A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored, in a child) makes save raise an
  OSError naming the path; the old checkpoint is intact and no temporary file remains.

100 kills in CI; STREAMRNN_LONG=1 runs 1000.
"""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import io as srio

from _figures import long_run, record

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

KILLS = 1000 if long_run() else 100
N = 200_000
X = np.random.default_rng(0).standard_normal((N, 4))
Y = np.tanh(X[:, :2] @ np.array([[0.5, -0.2], [0.3, 0.8]]))
YS = np.sin(0.05 * np.arange(N)) + 0.1 * np.cos(0.9 * np.arange(N))


def new_trainer():
    net = sr.LSTM(4, 48, output_size=2, dtype="float64", seed=1)
    return sr.OnlineTrainer(net, optimizer=sr.Adam(1e-3), k1=4, k2=48)


def new_forecaster():
    return sr.Forecaster(hidden_size=16, seed=2)


class _PausingFile:
    """The temporary file of a save, pausing the process right after its first write (the
    header): a SIGKILL then leaves a partial temporary file, deterministically."""

    def __init__(self, f, pause):
        self.f, self.pause = f, pause

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

    def write(self, b):
        n = self.f.write(b)
        self.f.flush()
        self.pause()
        return n

    def __getattr__(self, name):
        return getattr(self.f, name)


def child(tpath, fpath, w, pause=None):
    """Resume both from their checkpoints and save after every step, forever, writing one
    byte b"s" to the pipe ``w`` after every completed save. ``pause=(where, nth)`` stops the
    process inside its nth save (1: the first trainer save, 2: the first forecaster save,
    ...), after writing b"P": ``where`` "write" after the temporary file's header (a partial
    file), "replace" after the fsync, before the rename (a complete temporary file). The
    parent SIGKILLs it: kills are placed by counts of events, never by timing."""
    try:
        tr = sr.load(tpath, sr.OnlineTrainer)
        fc = sr.load(fpath, sr.Forecaster)
        i = tr.steps
        j = fc.stats()["steps"] if len(fc) else 0
        saves = 0

        def stop_here(*args, **kwargs):
            os.write(w, b"P")
            while True:
                signal.pause()

        def save(obj, path):
            nonlocal saves
            saves += 1
            if pause is not None and saves == pause[1]:
                if pause[0] == "replace":
                    srio.os.replace = stop_here
                else:
                    fdopen = srio.os.fdopen
                    srio.os.fdopen = lambda *a, **k: _PausingFile(fdopen(*a, **k), stop_here)
            sr.save(obj, path)
            os.write(w, b"s")

        while True:
            tr.learn_one(X[i], Y[i])
            i += 1
            save(tr, tpath)
            fc.learn_one(float(YS[j]))
            j += 1
            save(fc, fpath)
    finally:
        os._exit(3)


def spawn(tpath, fpath, pause=None):
    """A child (see child) and the read end of its pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        child(tpath, fpath, w, pause)
    os.close(w)
    return pid, r


def read_until(r, n_saves=None, paused=False):
    """Block until the child reported n_saves completed saves, or its pause (b"P")."""
    seen = 0
    while True:
        b = os.read(r, 1)
        assert b, "the child ended by itself"
        if b == b"s":
            seen += 1
            if n_saves is not None and seen >= n_saves:
                return seen
        elif b == b"P" and paused:
            return seen


def kill(pid, r):
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(r)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
        f"the child ended by itself (status {status})"


class Replay:
    """An in-process object advanced step by step to any requested step count."""

    def __init__(self, make, advance, count, tmp):
        self.obj, self.advance, self.count, self.tmp = make(), advance, count, tmp
        self.cache = {}

    def bytes_at(self, n):
        if n not in self.cache:
            assert self.count(self.obj) <= n, "a checkpoint went back in time"
            while self.count(self.obj) < n:
                self.advance(self.obj, self.count(self.obj))
            sr.save(self.obj, self.tmp)
            self.cache = {k: v for k, v in self.cache.items() if k >= n - 1}
            self.cache[n] = self.tmp.read_bytes()
        return self.cache[n]


def fc_steps(f):
    return f.stats()["steps"] if len(f) else 0


def test_sigkill_while_saving_never_loses_a_checkpoint(tmp_path):
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    tpath, fpath = ckdir / "trainer.srnn", ckdir / "forecaster.srnn"
    sr.save(new_trainer(), tpath)
    sr.save(new_forecaster(), fpath)
    rt = Replay(new_trainer, lambda t, i: t.learn_one(X[i], Y[i]), lambda t: t.steps,
                tmp_path / "rt.srnn")
    rf = Replay(new_forecaster, lambda f, j: f.learn_one(float(YS[j])), fc_steps,
                tmp_path / "rf.srnn")
    rng = np.random.default_rng(42)
    temp_left = temp_complete = 0
    last = (0, 0)
    for k in range(KILLS):
        # a third of the kills at a random point after a random number of completed saves,
        # the others deterministically inside a save (partial or complete temporary file)
        mode = ("steps", "write", "replace")[k % 3]
        if mode == "steps":
            saves = int(rng.integers(1, 9))
            pid, r = spawn(tpath, fpath)
            read_until(r, n_saves=saves)
        else:
            saves = int(rng.integers(1, 9))     # pause inside save number `saves`
            pid, r = spawn(tpath, fpath, pause=(mode, saves))
            read_until(r, paused=True)
            saves -= 1                           # completed before the paused one
        kill(pid, r)
        at_least = (last[0] + (saves + 1) // 2, last[1] + saves // 2)
        # the checkpoints: load, identify their step, equal the replay's bytes
        tr = sr.load(tpath, sr.OnlineTrainer)
        fc = sr.load(fpath, sr.Forecaster)
        n, m = tr.steps, fc_steps(fc)
        # the saves the child reported are on disk (trainer and forecaster alternate)
        assert n >= at_least[0] and m >= at_least[1], (k, mode, saves, last, (n, m))
        last = (n, m)
        assert tpath.read_bytes() == rt.bytes_at(n), f"kill {k}: trainer at step {n}"
        assert fpath.read_bytes() == rf.bytes_at(m), f"kill {k}: forecaster at step {m}"
        # whatever else is in the directory is a temporary file of an interrupted save
        others = [p for p in ckdir.iterdir() if p not in (tpath, fpath)]
        if mode != "steps":
            assert len(others) == 1, (mode, others)
        for p in others:
            if p in (tpath, fpath):
                continue
            assert p.name.startswith((".trainer.srnn.", ".forecaster.srnn.")) \
                and p.name.endswith(".tmp"), p.name
            temp_left += 1
            try:
                obj = sr.load(p)
            except sr.FileFormatError:
                assert mode != "replace", "a save paused before its rename left a bad file"
            else:       # complete (killed after fsync, before the rename): a real step
                assert mode != "write", "a save paused after its header left a whole file"
                temp_complete += 1
                if isinstance(obj, sr.OnlineTrainer):
                    assert obj.steps == n + 1 and p.read_bytes() == rt.bytes_at(n + 1)
                else:
                    assert fc_steps(obj) == m + 1 and p.read_bytes() == rf.bytes_at(m + 1)
            p.unlink()
    assert temp_complete >= KILLS // 3 and temp_left >= 2 * KILLS // 3
    record("SIGKILLs during checkpoint writes survived", KILLS)
    record("kills that left a temporary file", temp_left)
    record("kills that left a complete temporary file", temp_complete)
    record("steps checkpointed and replayed (trainer, forecaster)", list(last))


def test_file_size_limit_gives_clear_error_and_keeps_old_checkpoint(tmp_path):
    import resource
    path = tmp_path / "trainer.srnn"
    tr = new_trainer()
    tr.learn_many(X[:50], Y[:50])
    sr.save(tr, path)
    old = path.read_bytes()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(old) // 3, len(old) // 3))
            tr.learn_many(X[50:60], Y[50:60])
            try:
                sr.save(tr, path)
                msg = "no error"
            except OSError as e:
                msg = f"OSError|{type(e).__name__}|{e.errno}|{e}"
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        msg = f.read()
    assert msg.startswith("OSError|"), msg
    _, _, errno_, text = msg.split("|", 3)
    assert int(errno_) == 27 and str(path) in text and "too large" in text.lower(), msg
    assert path.read_bytes() == old                 # the old checkpoint is intact
    assert sr.load(path, sr.OnlineTrainer).steps == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainer.srnn"]   # no temp file


def test_unwritable_directory_gives_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    d = tmp_path / "ro"
    d.mkdir()
    sr.save(sr.GRU(1, 2, seed=0), d / "n.srnn")
    old = (d / "n.srnn").read_bytes()
    d.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=str(d)):
            sr.save(sr.GRU(1, 2, seed=1), d / "n.srnn")
    finally:
        d.chmod(0o700)
    assert (d / "n.srnn").read_bytes() == old


@pytest.mark.skipif(os.name != "posix", reason="fork and kill(pid, 0) are POSIX")
def test_next_save_removes_temp_files_of_killed_writers(tmp_path):
    """A save killed mid-write leaves its temporary file; the next successful save to that
    path removes the leftovers of dead writers on this host, never a file of a live one."""
    path = tmp_path / "trainer.srnn"
    sr.save(new_trainer(), path)
    sr.save(new_forecaster(), tmp_path / "f.srnn")
    pid, r = spawn(path, tmp_path / "f.srnn", pause=("write", 1))
    read_until(r, paused=True)              # inside its first save (the trainer's)
    kill(pid, r)
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".trainer.srnn.")]
    assert len(left) == 1, left
    # a temporary file of a live writer (this process's parent stands in for it)
    host = srio._writer_tag().partition("-")[0]
    live = tmp_path / f".trainer.srnn.{host}-{os.getppid()}.abc.tmp"
    live.write_bytes(b"in progress")
    other_host = tmp_path / ".trainer.srnn.00000000-1.abc.tmp"
    other_host.write_bytes(b"another machine")
    sr.save(sr.load(path), path)
    remaining = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".trainer"))
    assert remaining == sorted([live.name, other_host.name]), remaining
