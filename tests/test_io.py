"""sr.save / sr.load: round trips of every type, bit-for-bit resume, and every kind of bad file
(truncated, corrupted, wrong version, wrong type, lying headers) giving a clear error."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import struct
import threading

import numpy as np
import pytest

import streamrnn as sr
from streamrnn import io as srio

from conftest import make_net


def series(n, phase=0.0):
    return [10 + 3 * math.sin(0.25 * t + phase) + 0.1 * math.cos(1.7 * t) for t in range(n)]


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu", "gru_reset_before"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_network_round_trip(tmp_path, cell, dtype):
    net = make_net(cell, 3, 5, num_layers=2, output_size=2, dtype=dtype, seed=4)
    p = tmp_path / "net.srnn"
    sr.save(net, p)
    back = sr.load(p)
    assert type(back) is type(net) and repr(back) == repr(net) and back.cell == cell
    assert back.parameters().dtype == net.parameters().dtype
    assert np.array_equal(back.parameters(), net.parameters())
    x = np.ones(3, dtype=dtype)
    assert np.array_equal(back.step(x, back.new_state()), net.step(x, net.new_state()))
    assert isinstance(sr.load(p, sr.LSTM if cell == "lstm" else type(net)), type(net))


def test_network_without_head(tmp_path):
    net = sr.GRU(2, 3, seed=0)
    sr.save(net, tmp_path / "g")
    assert sr.load(tmp_path / "g").output_size is None


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before"])
def test_state_and_batch_round_trip(tmp_path, cell):
    net = make_net(cell, 2, 4, num_layers=2, dtype="float64", seed=1)
    s = net.new_state()
    net.run(np.random.default_rng(0).normal(size=(5, 2)), s)
    sr.save(s, tmp_path / "s")
    s2 = sr.load(tmp_path / "s", sr.State)
    assert np.array_equal(s2.h, s.h) and s2.cell == s.cell and not s2.is_view
    if cell == "lstm":
        assert np.array_equal(s2.c, s.c)
    b = net.new_states(6)
    net.step_many(np.ones((6, 2)), b)
    sr.save(b, tmp_path / "b")
    b2 = sr.load(tmp_path / "b", sr.StateBatch)
    assert len(b2) == 6 and np.array_equal(b2.h, b.h)
    sr.save(b[2], tmp_path / "view")          # a view saves as an independent State
    assert np.array_equal(sr.load(tmp_path / "view").h, b.h[2])


@pytest.mark.parametrize("opt", [sr.Adam(lr=1e-2, betas=(0.8, 0.99)),
                                 sr.SGD(lr=0.05, momentum=0.9, nesterov=True),
                                 sr.RMSprop(lr=1e-3, momentum=0.5)])
def test_trainer_resumes_bit_for_bit(tmp_path, opt):
    net = sr.LSTM(2, 6, output_size=1, seed=0)
    tr = sr.OnlineTrainer(net, optimizer=opt, k1=3, k2=7, clip_norm=1.0, clip_value=0.5)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2)).astype(np.float32)
    Y = np.sin(X[:, :1]).astype(np.float32)
    tr.learn_many(X[:25], Y[:25])
    sr.save(tr, tmp_path / "tr")
    tr2 = sr.load(tmp_path / "tr", sr.OnlineTrainer)
    assert tr2.optimizer == opt and tr2.k1 == 3 and tr2.k2 == 7 and tr2.clip_value == 0.5
    assert tr2.stats() == pytest.approx(tr.stats(), nan_ok=True)
    a = tr.learn_many(X[25:], Y[25:])
    b = tr2.learn_many(X[25:], Y[25:])
    assert np.array_equal(a, b)
    assert np.array_equal(tr.net.parameters(), tr2.net.parameters())
    assert tr.stats() == pytest.approx(tr2.stats(), nan_ok=True)


def test_cross_entropy_trainer(tmp_path):
    net = sr.GRU(2, 4, output_size=3, dtype="float64", seed=0)
    tr = sr.OnlineTrainer(net, loss="cross_entropy", k1=2, k2=4)
    for t in range(9):
        tr.learn_one([t, -t], t % 3)
    sr.save(tr, tmp_path / "x")
    tr2 = sr.load(tmp_path / "x")
    assert np.array_equal(tr.learn_one([1.0, 2.0], 1), tr2.learn_one([1.0, 2.0], 1))


@pytest.mark.parametrize("kw", [{}, {"weights": "per_key"}, {"cell": "gru", "k1": 2, "k2": 5,
                                                             "scale_halflife": 20.0},
                                {"differencing": False, "dtype": "float64"}])
def test_forecaster_resumes_bit_for_bit(tmp_path, kw):
    f = sr.Forecaster(hidden_size=8, seed=2, **kw)
    keys = ["a", 3, None]
    for t in range(40):
        for i, k in enumerate(keys):
            y = series(60, i)[t]
            f.learn_one(float("nan") if t == 17 else y, {"hour": t % 24, "wd": t % 7}, key=k)
    f.learn_one(1.0, {"hour": 1, "wd": 1}, key="new")    # a stream with one value only
    sr.save(f, tmp_path / "f.srnn", metadata={"column": "load"})
    g, meta = sr.load(tmp_path / "f.srnn", sr.Forecaster, with_metadata=True)
    assert meta == {"column": "load"}
    assert g.keys() == f.keys() and g.feature_names == ["hour", "wd"]
    assert repr(g) == repr(f)
    for t in range(40, 60):
        for i, k in enumerate(keys + ["new"]):
            x = {"hour": t % 24, "wd": t % 7}
            assert f.forecast(3, [x] * 3, key=k) == g.forecast(3, [x] * 3, key=k)
            y = series(60, i)[t]
            f.learn_one(y, x, key=k)
            g.learn_one(y, x, key=k)
    for k in keys:
        assert np.array_equal(f.network(k).parameters(), g.network(k).parameters())
        assert f.stats(k) == pytest.approx(g.stats(k), nan_ok=True)


@pytest.mark.parametrize("kw", [{}, {"weights": "per_key", "k1": 3, "k2": 7}])
def test_forecaster_without_features_resumes_with_its_pending_step(tmp_path, kw):
    # without features every stream has run the step that predicts its next value (the
    # trainer waits for that step's target): the prediction is saved with it
    f = sr.Forecaster(hidden_size=8, seed=2, **kw)
    keys = ["a", 3]
    for t in range(30):
        for i, k in enumerate(keys):
            f.learn_one(float("nan") if t == 11 else series(50, i)[t], key=k)
    sr.save(f, tmp_path / "f.srnn")
    g = sr.load(tmp_path / "f.srnn", sr.Forecaster)
    for t in range(30, 50):
        for i, k in enumerate(keys):
            assert f.trainer(k)._c_pending() == g.trainer(k)._c_pending() == 1
            assert f.forecast(3, key=k) == g.forecast(3, key=k)
            f.learn_one(series(50, i)[t], key=k)
            g.learn_one(series(50, i)[t], key=k)
    for k in keys:
        assert np.array_equal(f.network(k).parameters(), g.network(k).parameters())
        assert f.stats(k) == pytest.approx(g.stats(k), nan_ok=True)


def test_empty_forecaster_round_trip(tmp_path):
    f = sr.Forecaster(hidden_size=4, seed=0)
    sr.save(f, tmp_path / "e")
    g = sr.load(tmp_path / "e")
    assert len(g) == 0 and g.net is None
    g.learn_one(1.0)
    assert len(g.forecast(2)) == 2


def test_unsavable_things(tmp_path):
    with pytest.raises(TypeError, match="cannot save a dict"):
        sr.save({}, tmp_path / "x")
    f = sr.Forecaster(hidden_size=4)
    f.learn_one(1.0, key=("a", 1))
    with pytest.raises(TypeError, match="str, int or None"):
        sr.save(f, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        sr.save(sr.LSTM(1, 2), tmp_path / "x", metadata={"a": object()})
    assert not os.listdir(tmp_path)      # nothing written, no temporary left behind


# ---------------------------------------------------------------------- atomic writes
def test_save_replaces_atomically(tmp_path, monkeypatch):
    p = tmp_path / "net.srnn"
    net = sr.LSTM(2, 3, seed=0)
    sr.save(net, p)
    original = p.read_bytes()
    calls = []
    real_fsync = os.fsync

    def failing_replace(src, dst):
        calls.append((src, dst))
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        sr.save(sr.LSTM(2, 3, seed=1), p)
    assert "fsync" in calls                      # data synced before the rename
    assert p.read_bytes() == original            # the old file is intact
    assert os.listdir(tmp_path) == ["net.srnn"]  # the temporary file is removed


# ---------------------------------------------------------------------- bad files
@pytest.fixture
def saved(tmp_path):
    f = sr.Forecaster(hidden_size=4, seed=0)
    for y in series(30):
        f.learn_one(y)
    p = tmp_path / "f.srnn"
    sr.save(f, p)
    return p


def rewrite_header(path, edit):
    """Rewrite the JSON header with edit(header) and a correct header checksum."""
    raw = path.read_bytes()
    magic, version, res, hlen, _ = srio._PREFIX.unpack_from(raw)
    header = json.loads(raw[srio._PREFIX.size:srio._PREFIX.size + hlen])
    data_start = srio._align(srio._PREFIX.size + hlen)
    data = raw[data_start:]
    edit(header)
    hb = json.dumps(header).encode()
    head = srio._PREFIX.pack(magic, version, res, len(hb), hashlib.sha256(hb).digest()) + hb
    head += b"\0" * (srio._align(len(head)) - len(head))
    path.write_bytes(head + data)


def expect_error(path, match):
    with pytest.raises(sr.FileFormatError, match=match) as e:
        sr.load(path)
    assert str(path) in str(e.value)


def test_truncated_everywhere(saved):
    raw = saved.read_bytes()
    for n in (0, 5, 40, 100, len(raw) // 2, len(raw) - 1):
        saved.write_bytes(raw[:n])
        expect_error(saved, "empty file|truncated")


def test_trailing_bytes(saved):
    saved.write_bytes(saved.read_bytes() + b"x")
    expect_error(saved, "unexpected bytes")


def test_not_a_streamrnn_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("year,value\n1,2\n")
    expect_error(p, "not a streamrnn file")
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    expect_error(p, "not a streamrnn file")


def test_wrong_version(saved):
    raw = bytearray(saved.read_bytes())
    struct.pack_into("<I", raw, 8, srio.FORMAT_VERSION + 1)
    saved.write_bytes(bytes(raw))
    expect_error(saved, f"format version {srio.FORMAT_VERSION + 1} is not supported.*newer")
    struct.pack_into("<I", raw, 8, 0)
    saved.write_bytes(bytes(raw))
    expect_error(saved, "format version 0 is not supported")


def test_every_flipped_byte_is_detected(saved):
    raw = saved.read_bytes()
    rng = np.random.default_rng(0)
    positions = list(range(8, srio._PREFIX.size)) + list(rng.integers(srio._PREFIX.size,
                                                                      len(raw), 200))
    for pos in positions:
        b = bytearray(raw)
        b[pos] ^= 0x10
        saved.write_bytes(bytes(b))
        try:
            sr.load(saved)
        except sr.FileFormatError:
            continue
        # a flip inside the zero padding between arrays changes no content
        saved.write_bytes(raw)
        assert raw[pos] == 0, f"undetected change at byte {pos}"


def test_wrong_type(saved):
    with pytest.raises(TypeError, match="holds a Forecaster, expected a LSTM"):
        sr.load(saved, sr.LSTM)
    with pytest.raises(TypeError, match="expected a OnlineTrainer"):
        sr.load(saved, sr.OnlineTrainer)


def test_lying_headers_are_refused_before_allocating(saved):
    def huge(h):
        h["arrays"]["streams.ring.g"]["shape"] = [1, 10 ** 12, 10 ** 6]
    rewrite_header(saved, huge)
    expect_error(saved, "cannot have")

    def huge_consistent(h):
        spec = h["arrays"]["streams.ring.g"]
        spec["shape"] = [10 ** 9, 10 ** 6]
        spec["nbytes"] = 4 * 10 ** 15
    rewrite_header(saved, huge_consistent)
    expect_error(saved, "past the end")


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(type="Pickle"), "unknown object type"),
    (lambda h: h["arrays"]["streams.h"].update(dtype="|O"), "unsupported dtype"),
    (lambda h: h["arrays"]["streams.h"].update(offset=3), "invalid offset"),
    (lambda h: h["arrays"]["streams.h"].update(shape=[-1]), "invalid shape"),
    (lambda h: h["arrays"].pop("streams.m1"), "missing"),
    (lambda h: h["meta"]["settings"].update(hidden_size=0), "invalid forecaster settings"),
    (lambda h: h["meta"]["settings"].update(hidden_size=5), "does not match"),
    (lambda h: h["meta"]["net"].update(hidden_size=10 ** 9), "sizes in the header need"),
    (lambda h: h["meta"]["settings"]["optimizer"].update(kind="eval"), "invalid optimizer"),
    (lambda h: h["meta"].update(keys=[None, None]), "repeated stream keys"),
    (lambda h: h["arrays"].pop("streams.pending"), "without its prediction"),
    (lambda h: h.pop("data_size"), "data_size"),
])
def test_invalid_content(saved, edit, match):
    rewrite_header(saved, edit)
    expect_error(saved, match)


def test_non_finite_weights_refused(tmp_path):
    net = sr.LSTM(1, 2, seed=0)
    p = tmp_path / "n"
    sr.save(net, p)
    raw = bytearray(p.read_bytes())
    _, _, _, hlen, _ = srio._PREFIX.unpack_from(raw)
    start = srio._align(srio._PREFIX.size + hlen)
    struct.pack_into("<f", raw, start, float("nan"))
    p.write_bytes(bytes(raw))

    def fix_checksum(h):
        arr = np.frombuffer(bytes(raw[start:start + h["arrays"]["parameters"]["nbytes"]]),
                            dtype="<f4")
        h["arrays"]["parameters"]["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
    rewrite_header(p, fix_checksum)
    expect_error(p, "NaN or inf")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        sr.load(tmp_path / "nope.srnn")


# ---------------------------------------------------------------------- dumps / loads
def test_dumps_is_the_file_content_and_loads_continues_bit_for_bit(tmp_path):
    f = sr.Forecaster(hidden_size=5, seed=3, k2=6)
    for t in range(25):
        f.learn_one(math.sin(0.4 * t) + 2, key="a")
        f.learn_one(math.cos(0.2 * t), key=7)
    p = tmp_path / "f.srn"
    sr.save(f, p, metadata={"run": 1})
    b = sr.dumps(f, metadata={"run": 1})
    assert isinstance(b, bytes) and b == p.read_bytes()
    g, meta = sr.loads(b, sr.Forecaster, with_metadata=True)
    assert meta == {"run": 1}
    for t in range(25, 35):
        for h in (f, g):
            h.learn_one(math.sin(0.4 * t) + 2, key="a")
    assert g.forecast(3, key="a") == f.forecast(3, key="a")
    assert g.forecast(2, key=7) == f.forecast(2, key=7)


def test_loads_rejects_bad_bytes_naming_them():
    b = sr.dumps(sr.GRU(2, 3, seed=0))
    with pytest.raises(sr.FileFormatError, match="<bytes>: truncated"):
        sr.loads(b[:-1])
    bad = bytearray(b)
    bad[-1] ^= 1
    with pytest.raises(sr.FileFormatError, match="checksum"):
        sr.loads(bytes(bad))
    with pytest.raises(TypeError, match="holds a GRU, expected a Forecaster"):
        sr.loads(b, sr.Forecaster)
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        sr.loads("abc")
    with pytest.raises(TypeError, match="cannot save a dict"):
        sr.dumps({})


def test_import_streamrnn_does_not_import_pyflink():
    import subprocess
    import sys
    code = "import sys, streamrnn; print('pyflink' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------- file kinds and modes
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes, FIFOs, sockets")


def _mode(p):
    return os.stat(p).st_mode & 0o7777


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@posix_only
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077], ids=oct)
def test_new_checkpoint_follows_the_umask(tmp_path, mask):
    p = tmp_path / "net.srnn"
    with umask(mask):
        sr.save(sr.LSTM(2, 3, seed=0), p)
        plain = tmp_path / "plain"
        plain.write_bytes(b"x")                 # what any program's new file gets
    assert _mode(p) == 0o666 & ~mask == _mode(plain)


@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o444], ids=oct)
def test_replaced_checkpoint_keeps_its_mode(tmp_path, mode):
    p = tmp_path / "net.srnn"
    sr.save(sr.LSTM(2, 3, seed=0), p)
    os.chmod(p, mode)
    with umask(0o077):                          # the umask applies to new files only
        sr.save(sr.LSTM(2, 3, seed=1), p)
    assert _mode(p) == mode
    assert sr.load(p).seed == 1


@posix_only
def test_save_through_a_symlink_replaces_its_target(tmp_path):
    target = tmp_path / "real" / "net.srnn"
    target.parent.mkdir()
    sr.save(sr.LSTM(2, 3, seed=0), target)
    os.chmod(target, 0o640)
    link = tmp_path / "link.srnn"
    link.symlink_to(target)
    sr.save(sr.LSTM(2, 3, seed=7), link)
    assert link.is_symlink() and os.readlink(link) == str(target)   # the link stays
    assert sr.load(target).seed == 7 and _mode(target) == 0o640
    # the temporary file lived next to the target (same file system for the rename)
    assert sorted(os.listdir(target.parent)) == ["net.srnn"]
    # a dangling link: its target is created, as open(link, "w") would
    dangling = tmp_path / "dangling.srnn"
    dangling.symlink_to(tmp_path / "real" / "new.srnn")
    sr.save(sr.LSTM(2, 3, seed=8), dangling)
    assert dangling.is_symlink() and sr.load(tmp_path / "real" / "new.srnn").seed == 8


def _special_files(tmp_path):
    """(label, path) of non-regular files: a FIFO, a socket, a link to a device."""
    import socket
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    dev = tmp_path / "null-link"
    dev.symlink_to(os.devnull)
    return sock, [("a FIFO", fifo), ("a socket", sock_path),
                  ("a character device", dev)]


@posix_only
def test_save_refuses_fifos_sockets_and_devices(tmp_path):
    sock, files = _special_files(tmp_path)
    try:
        net = sr.LSTM(2, 3, seed=0)
        before = sorted(os.listdir(tmp_path))
        for kind, p in files:
            st = os.stat(p)
            with pytest.raises(ValueError, match=f"path: .*{p.name} is {kind}, not a regular"):
                sr.save(net, p)
            after = os.stat(p)
            assert (after.st_mode, after.st_ino) == (st.st_mode, st.st_ino), kind
        assert sorted(os.listdir(tmp_path)) == before        # no temporary file left
        with pytest.raises(IsADirectoryError):
            sr.save(net, tmp_path)
    finally:
        sock.close()


def _load_in_thread(path):
    """sr.load(path) in a thread; returns what it raised. If it is still blocked after a
    generous limit (a FIFO open waits for a writer), a writer is opened to free it and the
    test fails: the limit only turns a hang into a failure, it proves nothing."""
    got = []

    def run():
        try:
            sr.load(path)
            got.append(None)
        except BaseException as e:     # noqa: BLE001
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(60)
        pytest.fail(f"sr.load({path}) blocked")
    return got[0]


@posix_only
def test_load_refuses_fifos_sockets_and_devices(tmp_path):
    sock, files = _special_files(tmp_path)
    try:
        for kind, p in files:
            if kind == "a socket":       # open() of a socket fails by itself (ENXIO)
                with pytest.raises(OSError):
                    sr.load(p)
                continue
            e = _load_in_thread(p)
            assert isinstance(e, ValueError) and not isinstance(e, sr.FileFormatError), e
            assert f"{p.name} is {kind}, not a regular file" in str(e)
        with pytest.raises(IsADirectoryError):
            sr.load(tmp_path)
    finally:
        sock.close()
