"""Saving and loading: :func:`save` and :func:`load` (no pickle, nothing executed on load).

File format, version 1 or 2 (all integers little-endian)::

    offset  size  content
    0       8     magic b"\\x89SRN\\r\\n\\x1a\\n"  (catches text-mode transfers, like PNG's)
    8       4     uint32 format version (1 or 2, as the header's "version")
    12      4     uint32 reserved (0)
    16      8     uint64 N, the length of the JSON header
    24      32    SHA-256 of the JSON header
    56      N     JSON header (UTF-8)
    ...           zero padding to a multiple of 64 bytes: the data section starts here
                  the arrays, each at a multiple of 64 bytes from the data section's start

The header::

    {"format": "streamrnn", "version": 1, "streamrnn": "0.1.0", "type": "Forecaster",
     "meta": {...type-specific settings...}, "data_size": bytes of the data section,
     "arrays": {"name": {"dtype": "<f4", "shape": [..], "offset": .., "nbytes": ..,
                         "sha256": ".."}, ...}}

Version 2 is version 1 in which a network may be a cell variant PyTorch does not have
(``GRU(reset_after=False)``: ``"reset_after": false`` in its description, ``LSTM(peepholes=
True)``: ``"peepholes": true``; such a state's ``"cell"`` is ``"gru_reset_before"`` or
``"lstm_peephole"``). A file is written as version 1 unless it holds a
variant, so that a streamrnn that reads version 1 only refuses a variant (its format
version) instead of loading it as the other cell; every version-1 file loads unchanged.

Types: networks (``LSTM``, ``GRU``, ``RNN``), ``State``, ``StateBatch``, ``OnlineTrainer``
(weights, optimizer settings and moments, the stream state, the TBPTT ring buffer and every
counter) and ``Forecaster`` (all of that for every stream, plus scalers and the prediction
of a step that waits for its target), so a loaded trainer or forecaster continues bit for bit
as if it had never stopped.

A trainer's TBPTT ring buffer is stored by named field (``<prefix>ring.x``, ``.y``, ``.tgt``,
``.hp``, ``.cp``, ``.g``, ``.ex``, ``.hn``, shape (..., k2, count, length)), not as the C core's
raw records, so the file does not depend on the C record layout; files with one raw
``<prefix>ring`` array (written before) are read with the record layout of then.

Writing is atomic: a temporary file in the target's directory, fsync, ``os.replace``, fsync
of the directory; a crash leaves either the old file or the new one. A new file's mode is
0o666 less the umask, a replaced file keeps its mode; a symbolic link is followed (its target
is replaced, the link stays); a FIFO, socket or device is never replaced, nor read.

Loading validates before it allocates: the magic, the version, every length against the real file size (a
header claiming a huge array is refused, not allocated), the header and every array
checksum, dtypes, shapes and the type's own invariants. Any problem raises
:class:`FileFormatError` naming the file and what is wrong.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import io as _io
import json
import os
import platform
import secrets
import stat
import struct
from typing import Any, Dict, List, Literal, Optional, Tuple, Type, TypeVar, overload

import numpy as np

from . import _core
from .forecast import MAX_ABS, Forecaster
from .network import GRU, LSTM, RNN, _Recurrent
from .optim import SGD, Adam, RMSprop
from .sequence import Seq2Seq, SequenceTrainer
from .trainer import OnlineTrainer

__all__ = ["save", "load", "dumps", "loads", "FileFormatError", "FORMAT_VERSION"]

MAGIC = b"\x89SRN\r\n\x1a\n"
FORMAT_VERSION = 2   # the newest version this streamrnn reads and writes
_READS = (1, 2)
# cells only a version-2 file may hold (their networks: the flags of _VARIANT_FLAGS)
_VARIANT_CELLS = frozenset({"gru_reset_before", "lstm_peephole"})
_VARIANT_FLAGS = {"reset_after": False, "peepholes": True}
_PREFIX = struct.Struct("<8sIIQ32s")     # magic, version, reserved, header length, sha256
_ALIGN = 64
_MAX_HEADER = 1 << 30
_DTYPES = {"<f4": np.float32, "<f8": np.float64, "<i8": np.int64}
_LE_DTYPES = {code: np.dtype(code) for code in _DTYPES}          # as written
_NATIVE = {code: np.dtype(t) for code, t in _DTYPES.items()}     # as read (native order)
_ITEMSIZE = {code: np.dtype(t).itemsize for code, t in _DTYPES.items()}
# The order of the counters in a file's "counters"/"fcounters" arrays: a fact of the file
# format (files of every version are read with it), not of the C core, whose names
# (_core.TRAINER_COUNTERS, _core.UPDATER_COUNTERS) these must cover exactly (tests/test_layout.py).
_COUNTERS = ("steps", "since_update", "filled", "head", "updates", "skipped", "opt_steps",
             "loss_count", "pending")
_FCOUNTERS = ("loss_sum", "last_loss", "last_grad_norm")
# the window trainers' (SequenceTrainer, Seq2Seq) optimizer counters
_WCOUNTERS = ("updates", "skipped", "opt_steps")
_WFCOUNTERS = ("last_loss", "last_grad_norm")
_NETS = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
_C_CELLS = ("lstm", "lstm_peephole")     # states with a c
_OPTS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


class FileFormatError(ValueError):
    """A file that is not a valid streamrnn save file (truncated, corrupted, wrong version,
    wrong content).

    Raised by :func:`load` and :func:`loads`; a subclass of ValueError. The message names
    the file (``<bytes>`` for :func:`loads`) and what is wrong with it.

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> try:
    ...     sr.loads(b"definitely not a model")
    ... except sr.FileFormatError as e:
    ...     print(type(e).__name__, isinstance(e, ValueError))
    FileFormatError True
    """


# ---------------------------------------------------------------------- writing
def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _format_version(meta: Any) -> int:
    """2 when the description holds a cell variant (a network flag of _VARIANT_FLAGS, a state
    of a cell in _VARIANT_CELLS), else 1: the oldest version that describes the object."""
    if isinstance(meta, dict):
        if any(k in meta and meta[k] == v for k, v in _VARIANT_FLAGS.items()):
            return 2
        if meta.get("cell") in _VARIANT_CELLS:
            return 2
        return max([1] + [_format_version(v) for v in meta.values()])
    if isinstance(meta, list):
        return max([1] + [_format_version(v) for v in meta])
    return 1


@functools.lru_cache(maxsize=4096)
def _json_name(name: str) -> str:
    """``name`` as a JSON string, as json.dumps writes it (array names: a bounded set)."""
    return json.dumps(name)


def _encode(type_name: str, meta: Dict[str, Any], arrays: Dict[str, np.ndarray]
            ) -> Tuple[bytes, List[Tuple[int, np.ndarray]]]:
    """The prefix + header bytes and the (offset, little-endian array) list of the data."""
    from . import __version__

    # the header's "arrays" table is written as JSON text directly (each entry exactly as
    # json.dumps(..., separators=(",", ":")) writes it: the array names JSON-quoted, the rest
    # ASCII numbers and codes), the rest of the header by json.dumps (byte-identical output)
    table: List[str] = []
    blobs: List[Tuple[int, np.ndarray]] = []
    off = 0
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype == np.float32:
            code = "<f4"
        elif a.dtype == np.float64:
            code = "<f8"
        elif a.dtype.kind in "iu":
            code = "<i8"
        else:  # pragma: no cover - internal misuse
            raise TypeError(f"cannot save an array of dtype {a.dtype}")
        le = np.ascontiguousarray(a, dtype=_LE_DTYPES[code])
        # the bytes hashed are the bytes written: a private copy (the array may be live)
        raw = le.tobytes()
        shape = le.shape
        le = np.frombuffer(raw, dtype=le.dtype).reshape(shape)
        off = (off + _ALIGN - 1) // _ALIGN * _ALIGN
        table.append(f'{_json_name(name)}:{{"dtype":"{code}","shape":['
                     f'{",".join(map(str, shape))}],"offset":{off},"nbytes":{len(raw)},'
                     f'"sha256":"{hashlib.sha256(raw).hexdigest()}"}}')
        blobs.append((off, le))
        off += len(raw)
    version = _format_version(meta)
    header = {"format": "streamrnn", "version": version, "streamrnn": __version__,
              "type": type_name, "meta": meta, "data_size": off}
    htext = json.dumps(header, allow_nan=False, separators=(",", ":"))
    hbytes = (htext[:-1] + ',"arrays":{' + ",".join(table) + "}}").encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, version, 0, len(hbytes), hashlib.sha256(hbytes).digest())
    head = prefix + hbytes
    head += b"\0" * (_align(len(head)) - len(head))
    return head, blobs


def _writer_tag() -> str:
    """``<host hash>-<pid>``: names the process that writes a temporary file, so that a later
    save can tell the leftovers of a killed writer from a save in progress."""
    host = hashlib.sha256(platform.node().encode()).hexdigest()[:8]
    return f"{host}-{os.getpid()}"


def _remove_dead_writers_temps(directory: str, base: str) -> None:
    """Delete ``.<base>.<host>-<pid>.*.tmp`` files left by killed saves of this host whose
    process no longer exists (a save in progress in a live process is never touched; files
    of other hosts or of unknown form are left alone). POSIX only: on Windows os.kill(pid, 0)
    would terminate the process, so nothing is removed there."""
    if os.name != "posix":
        return
    host, _, me = _writer_tag().partition("-")
    prefix = f".{base}.{host}-"
    try:
        entries = [e.name for e in os.scandir(directory)]
    except OSError:
        return
    for name in entries:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_s = name[len(prefix):].split(".", 1)[0]
        if not pid_s.isdigit() or pid_s == me:
            continue
        try:
            os.kill(int(pid_s), 0)
            continue                    # alive (its save may be in progress)
        except ProcessLookupError:
            pass                        # dead: its file is a leftover
        except (PermissionError, OverflowError, OSError):
            continue                    # alive under another user, or unknown: keep
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _target(path: str) -> str:
    """The file a save to ``path`` replaces: ``path`` itself, or the final target of a
    symbolic link (followed, like ``open(path, "w")``: the link stays and its target is
    replaced atomically). Raises ValueError when that is an existing non-regular file (a
    directory, FIFO, socket or device), which a save would otherwise replace or block on."""
    real = os.path.realpath(path) if os.path.islink(path) else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError:
        return real                     # e.g. a permission problem: the write reports it
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"cannot save {path}: it is a directory", path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"path: {path} is {_kind(st.st_mode)}, not a regular file; refusing "
                         f"to replace it with a checkpoint")
    return real


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _open_temp(directory: str, base: str) -> Tuple[int, str]:
    """Create ``.<base>.<host>-<pid>.<random>.tmp`` in ``directory`` with mode 0o666 less the
    umask (what ``open(path, "w")`` gives a new file; mkstemp's 0o600 would not follow the
    umask). Returns (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{_writer_tag()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"cannot create a temporary file for {base} in "
                                        f"{directory}")


def _write_atomic(path: "os.PathLike[str] | str", head: bytes,
                  blobs: List[Tuple[int, np.ndarray]]) -> None:
    """Write ``head`` and the arrays (each at its offset) to ``path`` atomically: a temporary
    file next to the target, fsync, ``os.replace``, fsync of the directory.

    The file's mode: a new file gets 0o666 less the umask (like any file the user's programs
    create); a replaced file keeps its mode (permission bits). A symbolic link is followed:
    its target is replaced, the link stays. An existing target that is not a regular file
    (FIFO, socket, device) raises ValueError and nothing is written; a directory raises
    IsADirectoryError. Shared by :func:`save` and :func:`streamrnn.to_onnx`."""
    path = os.fspath(path)
    target = _target(path)
    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    try:
        old_mode: Optional[int] = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        old_mode = None
    fd, tmp = _open_temp(directory, base)
    try:
        try:
            if old_mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, old_mode)
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            f.write(head)
            pos = 0
            for off, a in blobs:
                if off > pos:
                    f.write(b"\0" * (off - pos))
                f.write(a.data if a.size else b"")
                pos = off + a.nbytes
            f.flush()
            os.fsync(f.fileno())
        if old_mode is not None and not hasattr(os, "fchmod"):  # pragma: no cover - Windows
            os.chmod(tmp, old_mode)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            # a full disk or a file-size limit: say which save failed (same OSError subclass)
            raise type(e)(e.errno, f"{e.strerror}: cannot save {path} (the previous file, "
                                   f"if any, is unchanged)", path) from e
        raise
    _remove_dead_writers_temps(directory, base)
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _net_meta(net: _Recurrent) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"class": type(net).__name__, "input_size": net.input_size,
                            "hidden_size": net.hidden_size, "num_layers": net.num_layers,
                            "output_size": net.output_size, "dtype": net.dtype.name,
                            "seed": net.seed}
    if isinstance(net, RNN):
        meta["nonlinearity"] = net.nonlinearity
    if isinstance(net, GRU) and not net.reset_after:
        meta["reset_after"] = False      # a variant: written only then (version 2)
    if isinstance(net, LSTM) and net.peepholes:
        meta["peepholes"] = True         # a variant: written only then (version 2)
    meta["bidirectional"] = bool(net.bidirectional)
    initial = net._initial
    if initial is not None:  # (L, H) lists of floats: JSON's repr round-trips every value
        meta["initial_h"] = initial[0].astype(np.float64).tolist()
        if initial[1] is not None:
            meta["initial_c"] = initial[1].astype(np.float64).tolist()
    return meta


def _opt_meta(opt: Any) -> Dict[str, Any]:
    d: Dict[str, Any] = {"kind": opt.kind}
    for f in opt._fields:
        v = getattr(opt, f)
        d[f] = list(v) if isinstance(v, tuple) else v
    return d


def _trainer_meta(tr: OnlineTrainer) -> Dict[str, Any]:
    return {"loss": tr.loss, "optimizer": _opt_meta(tr.optimizer), "k1": tr.k1, "k2": tr.k2,
            "clip_value": tr.clip_value, "clip_norm": tr.clip_norm}


# The ring buffer of an online trainer (k2 recorded steps) is stored field by field:
# "<prefix>ring.<field>" of shape (..., k2, count, length), the fields and their sizes named by
# the C core (srnn_record_field: x, y, tgt, then per layer hp, cp, g, ex, hn), so that a file
# does not depend on the C record layout. Files written before hold one raw "<prefix>ring"
# array (..., k2, record): it is read with the record layout of then, _ring_v1_fields.
_Dims = Tuple[str, int, int, int, Optional[int]]


def _net_dims(net: _Recurrent) -> _Dims:
    return (net.cell, net.input_size, net.hidden_size, net.num_layers, net.output_size)


def _ring_v1_fields(dims: _Dims) -> Tuple[int, Tuple[Tuple[str, int, int, int, int], ...]]:
    """The ring record of files with one raw "ring" array (streamrnn 0.1's C record), frozen:
    x (D) | y (OUT) | tgt (OUT) | per layer: hp (H) | cp (H) | g (G*H) | ex (H) | hn (H)."""
    cell, D, H, L, O = dims
    G, OUT = _core.GATES[cell], O or H
    per, b = 4 * H + G * H, D + 2 * OUT
    n = b + L * per   # single-block fields: stride one record
    return n, (("x", 0, 1, D, n), ("y", D, 1, OUT, n), ("tgt", D + OUT, 1, OUT, n),
                         ("hp", b, L, H, per), ("cp", b + H, L, H, per),
                         ("g", b + 2 * H, L, G * H, per), ("ex", b + 2 * H + G * H, L, H, per),
                         ("hn", b + 3 * H + G * H, L, H, per))


@functools.lru_cache(maxsize=1024)
def _field_index(off: int, count: int, length: int, stride: int) -> np.ndarray:
    """Slot indices (count, length) of a field: block k is [off + k*stride, + length).
    Cached per field (read-only: shared by every call)."""
    idx = off + stride * np.arange(count)[:, None] + np.arange(length)[None, :]
    idx.setflags(write=False)
    return idx


def _split_ring(ring: np.ndarray, fields: Any) -> Dict[str, np.ndarray]:
    """Raw records (..., size) -> {field: (..., count, length)}."""
    return {name: ring[..., _field_index(o, c, n, st)] for name, o, c, n, st in fields}


def _join_ring(parts: Dict[str, np.ndarray], dims: _Dims, lead: Tuple[int, ...],
               dtype: Any) -> np.ndarray:
    """{field: (..., count, length)} -> records (..., size) in the C core's layout."""
    size, fields = _core.ring_layout(*dims)
    ring = np.zeros(lead + (size,), dtype)
    for name, o, c, n, st in fields:
        ring[..., _field_index(o, c, n, st)] = parts[name]
    return ring


def _trainer_arrays(snap: Dict[str, Any], dims: _Dims, prefix: str = ""
                    ) -> Dict[str, np.ndarray]:
    c = snap["counters"]
    out = {prefix + "counters": np.array([c[k] for k in _COUNTERS], dtype=np.int64),
           prefix + "fcounters": np.array([c[k] for k in _FCOUNTERS], dtype=np.float64),
           prefix + "h": snap["h"], prefix + "tags": snap["tags"],
           prefix + "m1": snap["m1"], prefix + "m2": snap["m2"]}
    for name, a in _split_ring(snap["ring"], _core.ring_layout(*dims)[1]).items():
        out[prefix + "ring." + name] = a
    if snap["c"] is not None:
        out[prefix + "c"] = snap["c"]
    return out


def _window_payload(tr: Any) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Settings and arrays of a SequenceTrainer or Seq2Seq: its network(s), the optimizer's
    moments m1, m2 (P,) over their concatenated parameters and its counters."""
    snap = tr._upd._snapshot()
    c = snap["counters"]
    settings = {"loss": tr.loss, "optimizer": _opt_meta(tr.optimizer),
                "clip_value": tr.clip_value, "clip_norm": tr.clip_norm}
    arrays = {"trainer.counters": np.array([c[k] for k in _WCOUNTERS], dtype=np.int64),
              "trainer.fcounters": np.array([c[k] for k in _WFCOUNTERS], dtype=np.float64),
              "trainer.m1": snap["m1"], "trainer.m2": snap["m2"]}
    if isinstance(tr, Seq2Seq):
        start = tr.start
        settings.update(context=tr.context,
                        start=start.tolist() if isinstance(start, np.ndarray) else start)
        meta = {"encoder": _net_meta(tr.encoder), "decoder": _net_meta(tr.decoder),
                "trainer": settings}
        arrays.update({"encoder.parameters": tr.encoder.parameters(),
                       "decoder.parameters": tr.decoder.parameters()})
    else:
        meta = {"net": _net_meta(tr.net), "trainer": settings}
        arrays["net.parameters"] = tr.net.parameters()
    return meta, arrays


def _check_key(key: Any) -> Any:
    if key is None or isinstance(key, str) or (isinstance(key, int)
                                               and not isinstance(key, bool)):
        return key
    if isinstance(key, np.integer):
        return int(key)
    raise TypeError(f"only streams keyed by str, int or None can be saved, got key {key!r} "
                    f"of type {type(key).__name__}")


_FORECAST_ARRAYS = ("hist", "pend", "porig", "agg_r", "agg_s", "scores", "nscores", "alpha",
                    "hw", "hw_season")


def _forecaster_payload(f: Forecaster, only: Any = None
                        ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Settings and arrays of ``f``; with ``only`` (one of its streams): that stream alone,
    keyed None and without the shared network (Forecaster.export_stream)."""
    settings = f._settings()
    settings["optimizer"] = _opt_meta(f.optimizer)
    keys = [None] if only is not None else [_check_key(k) for k in f._streams]
    meta: Dict[str, Any] = {"settings": settings, "feature_names": f.feature_names,
                            "keys": keys}
    arrays: Dict[str, np.ndarray] = {}
    streams = [only] if only is not None else list(f._streams.values())
    if f.net is not None and only is None:
        meta["net"] = _net_meta(f.net)
        arrays["net.parameters"] = f.net.parameters()
    if streams:
        snaps = [s.trainer._snapshot() for s in streams]
        per = [_trainer_arrays(sn, _net_dims(s.trainer.net)) for sn, s in zip(snaps, streams)]
        for name in per[0]:
            # one stream (export_stream): a view with a leading axis of 1, copied by _encode
            arrays["streams." + name] = (per[0][name][None] if len(per) == 1
                                         else np.stack([p[name] for p in per]))
        if f.weights == "per_key":
            meta["net"] = _net_meta(streams[0].trainer.net)
            arrays["streams.parameters"] = np.stack([s.trainer.net.parameters()
                                                     for s in streams])
        arrays["streams.sy"] = np.array([s.sy.pack() for s in streams], dtype=np.float64)
        arrays["streams.sd"] = np.array([s.sd.pack() for s in streams], dtype=np.float64)
        arrays["streams.sx"] = np.stack([s.sx.pack() for s in streams]).astype(np.float64)
        arrays["streams.u"] = np.stack([s.u for s in streams])
        arrays["streams.last_y"] = np.array([s.last_y for s in streams], dtype=np.float64)
        # the scaled prediction of the step that ran ahead of its target (trainer pending)
        arrays["streams.pending"] = np.array([np.nan if s.o is None else s.o
                                              for s in streams], dtype=np.float64)
        arrays["streams.counts"] = np.array([[s.n_seen, s.n_obs, s.n_missing]
                                             for s in streams], dtype=np.int64)
        # season history, smoothing level, kept forecasts, combination and conformal state
        arrays["streams.ses"] = np.array([s.ses for s in streams], dtype=np.float64)
        for name in _FORECAST_ARRAYS:
            arrays["streams." + name] = (np.asarray(getattr(streams[0], name))[None]
                                         if len(streams) == 1 else
                                         np.stack([getattr(s, name) for s in streams]))
    return meta, arrays


def _encode_obj(obj: Any, metadata: Optional[Dict[str, Any]]
                ) -> Tuple[bytes, List[Tuple[int, np.ndarray]]]:
    """The header bytes and data blobs of ``obj`` (shared by save and dumps)."""
    user = {} if metadata is None else metadata
    if not isinstance(user, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(user).__name__}")
    try:
        json.dumps(user, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON-serialisable: {e}") from None
    # one thread contract: everything is read at one moment (the objects held as readers,
    # RuntimeError while another thread writes them) and encoded (copied to private bytes,
    # hashed) before the hold ends, so a save made while another thread trains is a whole
    # state that loads (its checksums are of the bytes written)
    with _snapshot_hold(obj):
        type_name, meta, arrays = _payload(obj)
        _refuse_unloadable(type_name, arrays)
        meta["user"] = user
        return _encode(type_name, meta, arrays)


def _snapshot_hold(obj: Any) -> Any:
    """A context that holds everything ``obj``'s payload reads (see ``_core._holding``)."""
    if isinstance(obj, Forecaster):
        return obj._reading(inner=True)
    if isinstance(obj, Seq2Seq):
        return _core._holding(obj.encoder, obj.decoder)
    if isinstance(obj, SequenceTrainer):
        return _core._holding(obj.net)
    if isinstance(obj, (OnlineTrainer, _Recurrent, _core.State, _core.StateBatch)):
        return _core._holding(obj)
    return _core._holding()


def _payload(obj: Any) -> Tuple[str, Dict[str, Any], Dict[str, np.ndarray]]:
    meta: Dict[str, Any]
    if isinstance(obj, OnlineTrainer):
        type_name = "OnlineTrainer"
        meta = {"net": _net_meta(obj.net), "trainer": _trainer_meta(obj)}
        arrays = {"net.parameters": obj.net.parameters()}
        arrays.update(_trainer_arrays(obj._snapshot(), _net_dims(obj.net), "trainer."))
    elif isinstance(obj, _Recurrent):
        type_name = type(obj).__name__
        meta = _net_meta(obj)
        arrays = {"parameters": obj.parameters()}
    elif isinstance(obj, _core.State):
        type_name = "State"
        meta = {"cell": obj.cell, "num_layers": obj.num_layers,
                "hidden_size": obj.hidden_size, "dtype": obj.dtype.name}
        arrays = {"h": obj.h}
        if obj.c is not None:
            arrays["c"] = obj.c
    elif isinstance(obj, _core.StateBatch):
        type_name = "StateBatch"
        meta = {"cell": obj.cell, "num_layers": obj.num_layers,
                "hidden_size": obj.hidden_size, "dtype": obj.dtype.name, "n": len(obj)}
        arrays = {"h": obj.h}
        if obj.c is not None:
            arrays["c"] = obj.c
    elif isinstance(obj, Forecaster):
        type_name = "Forecaster"
        meta, arrays = _forecaster_payload(obj)
    elif isinstance(obj, (SequenceTrainer, Seq2Seq)):
        type_name = type(obj).__name__
        meta, arrays = _window_payload(obj)
    else:
        raise TypeError(f"cannot save a {type(obj).__name__}: expected an LSTM, GRU, RNN, "
                        f"State, StateBatch, OnlineTrainer, SequenceTrainer, Seq2Seq or "
                        f"Forecaster")
    return type_name, meta, arrays


# What save writes, load reads: the arrays that load requires finite (so that a loaded
# object never starts from NaN/inf weights, states or moments) are checked at save, which
# refuses with a ValueError instead of writing a file that load would refuse. By the last
# part of the array's name: all finite / no inf (NaN there means "none"). Everything else
# (the ring of recorded activations, counters and the last loss and gradient norm, which
# report a skipped update) is written and read as it is.
_FINITE = frozenset({"parameters", "h", "c", "m1", "m2", "sy", "sd", "sx", "u"})
_NO_INF = frozenset({"last_y", "pending"})


def _refuse_unloadable(type_name: str, arrays: Dict[str, np.ndarray]) -> None:
    for name, a in arrays.items():
        last = name.rsplit(".", 1)[-1]
        if a.dtype.kind != "f" or (last not in _FINITE and last not in _NO_INF):
            continue
        bad = ~np.isfinite(a) if last in _FINITE else np.isinf(a)
        if bad.any():
            raise ValueError(
                f"cannot save this {type_name}: its {name!r} holds {int(bad.sum())} "
                f"{'NaN or inf' if last in _FINITE else 'inf'} value(s) (e.g. a state "
                f"overflowed by huge inputs, or weights written through the views), which "
                f"sr.load would refuse; nothing was written (reset() the state or restore "
                f"finite values first)")


def save(obj: Any, path: "os.PathLike[str] | str", *,
         metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write ``obj`` to ``path`` atomically in streamrnn's file format (see the module doc).

    The file is written to a temporary file next to ``path``, fsynced and renamed over
    ``path``: a crash leaves the old file or the new one, never a mix. Arrays are stored
    with their dtype (float32/float64), shape and a SHA-256 checksum; no pickle.

    Parameters
    ----------
    obj : LSTM, GRU, RNN, State, StateBatch, OnlineTrainer, SequenceTrainer, Seq2Seq or
        Forecaster
        What to save (a trainer with its network, ring buffer and optimizer moments; a
        Forecaster with every stream). A Forecaster can be saved when its stream keys are
        str, int or None.
    path : str or os.PathLike
        The file to write (replaced if it exists, keeping its permission bits; a new file
        gets 0o666 less the umask). A symbolic link is followed: its target is replaced and
        the link stays.
    metadata : dict or None
        Optional JSON-serialisable dict stored with it (``load(..., with_metadata=True)``).

    Raises
    ------
    TypeError
        ``obj`` of another type, a Forecaster with other keys, or ``metadata`` not a
        JSON-serialisable dict. Nothing is written then.
    ValueError
        ``obj`` holds NaN or inf where :func:`load` requires finite values (weights,
        states, optimizer moments, scaler statistics; e.g. a state overflowed by huge
        inputs): the message names the array. Nothing is written then. Or ``path`` (or
        the target of the link) exists and is a FIFO, socket or device, not a
        regular file. Nothing is written.
    OSError
        The file cannot be written (the previous file, if any, is left intact).

    See Also
    --------
    load, dumps

    Examples
    --------
    >>> import os, tempfile, streamrnn as sr
    >>> net = sr.GRU(2, 4, seed=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "net.srnn")
    ...     sr.save(net, path, metadata={"run": 1})
    ...     net2, meta = sr.load(path, sr.GRU, with_metadata=True)
    >>> meta, bool((net2.parameters() == net.parameters()).all())
    ({'run': 1}, True)
    """
    head, blobs = _encode_obj(obj, metadata)
    _write_atomic(path, head, blobs)


def dumps(obj: Any, *, metadata: Optional[Dict[str, Any]] = None) -> bytes:
    """``obj`` as bytes in streamrnn's file format: exactly the bytes :func:`save` writes.

    Parameters
    ----------
    obj : LSTM, GRU, RNN, State, StateBatch, OnlineTrainer, SequenceTrainer, Seq2Seq or
        Forecaster
    metadata : dict or None
        Optional JSON-serialisable dict stored with it.

    Returns
    -------
    bytes
        The file's content (:func:`loads` reads it back; no pickle).

    Raises
    ------
    TypeError
        ``obj`` of another type, a Forecaster with keys other than str/int/None, or
        ``metadata`` not a JSON-serialisable dict.
    ValueError
        As :func:`save`: NaN or inf where :func:`loads` requires finite values.

    Examples
    --------
    >>> import streamrnn as sr
    >>> net = sr.LSTM(2, 4, seed=0)
    >>> b = sr.dumps(net)
    >>> bool((sr.loads(b).parameters() == net.parameters()).all())
    True
    """
    return _join(*_encode_obj(obj, metadata))


def _join(head: bytes, blobs: List[Tuple[int, np.ndarray]]) -> bytes:
    """The bytes of an encoded object (head, then the blobs at their offsets)."""
    parts: List[Any] = [head]
    pos = 0
    for off, a in blobs:
        if off > pos:
            parts.append(b"\0" * (off - pos))
        parts.append(a.data if a.size else b"")    # (a private buffer of _encode)
        pos = off + a.nbytes
    return b"".join(parts)


# ---------------------------------------------------------------------- reading
def _open_regular(path: str) -> Any:
    """``open(path, "rb")`` for a regular file (symbolic links followed). Anything else is
    refused before a byte is read: a FIFO (whose open would wait for a writer forever: it is
    opened non-blocking, then checked), a socket or a device raise ValueError, a directory
    IsADirectoryError."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat.S_ISREG(mode):
            raise ValueError(f"path: {path} is {_kind(mode)}, not a regular file; a "
                             f"checkpoint is read from a regular file only")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Reader:
    """A validated view of one file: header, and arrays read (and checked) on demand."""

    def __init__(self, path: "os.PathLike[str] | str", data: Optional[bytes] = None
                 ) -> None:
        self.buf: Optional[memoryview] = None
        if data is not None:
            self.path = "<bytes>"
            self.f: Any = _io.BytesIO(data)
            self.buf = memoryview(data)
            self.size = len(data)
        else:
            self.path = os.fspath(path)
            self.f = _open_regular(self.path)
            self.size = os.fstat(self.f.fileno()).st_size
        try:
            self._read_header()
        except BaseException:
            self.f.close()
            raise

    def error(self, msg: str) -> FileFormatError:
        return FileFormatError(f"{self.path}: {msg}")

    def _read_header(self) -> None:
        size = self.size
        raw = self.f.read(_PREFIX.size)
        if raw[:len(MAGIC)] != MAGIC[:len(raw)] or not raw:
            raise self.error("not a streamrnn file (bad magic bytes)" if raw else
                             "empty file, not a streamrnn file")
        if len(raw) < _PREFIX.size:
            raise self.error(f"truncated: {size} bytes, shorter than the "
                             f"{_PREFIX.size}-byte file header")
        _, version, _, hlen, hsum = _PREFIX.unpack(raw)
        if version not in _READS:
            raise self.error(f"format version {version} is not supported (this streamrnn "
                             f"reads versions {', '.join(map(str, _READS))})"
                             + ("; it was written by a newer streamrnn"
                                if version > FORMAT_VERSION else ""))
        if hlen > size - _PREFIX.size or hlen > _MAX_HEADER:
            raise self.error(f"truncated or corrupted: the header claims {hlen} bytes, the "
                             f"file has {size - _PREFIX.size} after the prefix")
        hbytes = self.f.read(hlen)
        if hashlib.sha256(hbytes).digest() != hsum:
            raise self.error("corrupted: header checksum mismatch")
        try:
            header = json.loads(hbytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise self.error(f"corrupted: header is not valid JSON ({e})") from None
        except RecursionError:
            raise self.error("corrupted: header JSON nested too deeply") from None
        if not isinstance(header, dict) or header.get("format") != "streamrnn":
            raise self.error("corrupted: not a streamrnn header")
        if header.get("version") != version:
            raise self.error(f"corrupted: the header says version {header.get('version')!r}, "
                             f"the file prefix {version}")
        self.version = version
        for k, typ in (("type", str), ("meta", dict), ("arrays", dict), ("data_size", int)):
            if not isinstance(header.get(k), typ) or isinstance(header.get(k), bool):
                raise self.error(f"corrupted: header field {k!r} missing or not a "
                                 f"{typ.__name__}")
        self.data_start = _align(_PREFIX.size + hlen)
        data_size = header["data_size"]
        expected = self.data_start + data_size
        if data_size < 0:
            raise self.error("corrupted: negative data size")
        if size < expected:
            raise self.error(f"truncated: {size} bytes, expected {expected}")
        if size > expected:
            raise self.error(f"corrupted: {size - expected} unexpected bytes after the data")
        self.data_size = data_size
        for name, spec in header["arrays"].items():
            self._check_spec(name, spec)
        self.header = header
        self.type = header["type"]
        self.meta = header["meta"]

    def _check_spec(self, name: str, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise self.error(f"corrupted: array {name!r} has no description")
        code = spec.get("dtype")
        shape = spec.get("shape")
        off = spec.get("offset")
        nbytes = spec.get("nbytes")
        if not isinstance(code, str) or code not in _DTYPES:
            raise self.error(f"array {name!r} has unsupported dtype {code!r}")
        # (JSON numbers parse to int, float or bool only: "type(s) is int" is "an int, not a
        # bool")
        shape_ok = False
        count = 1
        if type(shape) is list and len(shape) <= 8:
            for s in shape:
                if type(s) is not int or s < 0:
                    break
                count *= s
            else:
                shape_ok = True
        if not shape_ok:
            raise self.error(f"corrupted: array {name!r} has an invalid shape {shape!r}")
        if not isinstance(off, int) or not isinstance(nbytes, int) or off < 0 \
                or off % _ALIGN:
            raise self.error(f"corrupted: array {name!r} has an invalid offset")
        if nbytes != count * _ITEMSIZE[code]:
            raise self.error(f"corrupted: array {name!r} of shape {shape} cannot have "
                             f"{nbytes} bytes")
        if off + nbytes > self.data_size:
            raise self.error(f"corrupted: array {name!r} extends past the end of the data")
        if not isinstance(spec.get("sha256"), str):
            raise self.error(f"corrupted: array {name!r} has no checksum")

    def has(self, name: str) -> bool:
        return name in self.header["arrays"]

    def array(self, name: str, dtype: Any = None, shape: Optional[Tuple[int, ...]] = None
              ) -> np.ndarray:
        """Array ``name`` (checked: present, checksum, optionally dtype and shape)."""
        spec = self.header["arrays"].get(name)
        if spec is None:
            raise self.error(f"array {name!r} is missing")
        dt = _NATIVE[spec["dtype"]]
        if dtype is not None and dt != np.dtype(dtype):
            raise self.error(f"array {name!r} has dtype {dt}, expected {np.dtype(dtype)}")
        if shape is not None and tuple(spec["shape"]) != tuple(shape):
            raise self.error(f"array {name!r} has shape {tuple(spec['shape'])}, expected "
                             f"{tuple(shape)}")
        start, nbytes = self.data_start + spec["offset"], spec["nbytes"]
        if self.buf is not None:      # bytes: a view of them (no copy until the result)
            raw: Any = self.buf[start:start + nbytes]
        else:
            self.f.seek(start)
            raw = self.f.read(nbytes)
        if len(raw) != nbytes:
            raise self.error(f"truncated while reading array {name!r}")
        if hashlib.sha256(raw).hexdigest() != spec["sha256"]:
            raise self.error(f"corrupted: checksum mismatch in array {name!r}")
        # a private, writable, native-order copy (astype copies)
        return np.frombuffer(raw, dtype=_LE_DTYPES[spec["dtype"]]).reshape(
            spec["shape"]).astype(dt)

    def shape(self, name: str) -> Tuple[int, ...]:
        spec = self.header["arrays"].get(name)
        if spec is None:
            raise self.error(f"array {name!r} is missing")
        return tuple(spec["shape"])

    def close(self) -> None:
        self.buf = None
        self.f.close()


def _num_params(meta: Dict[str, Any]) -> int:
    """The parameter count of the network the header describes, from the C core (which
    refuses sizes it cannot build, crafted ones included, before counting: ValueError)."""
    cls = meta["class"]
    # the parameter layout depends on the gate count (any RNN cell stands for both, either GRU
    # for both) and on the peepholes
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_tanh"}[cls]
    if cls == "LSTM" and meta.get("peepholes") is True:
        cell = "lstm_peephole"
    D, H, L, O = meta["input_size"], meta["hidden_size"], meta["num_layers"], meta["output_size"]
    nd = 2 if meta.get("bidirectional", False) else 1
    n: int = _core.num_params(cell, D, H, L, O, nd)
    return n


def _build_net(r: _Reader, meta: Any, params: np.ndarray) -> _Recurrent:
    if not isinstance(meta, dict) or meta.get("class") not in _NETS:
        raise r.error(f"invalid network description {meta!r}")
    for k in ("input_size", "hidden_size", "num_layers"):
        v = meta.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise r.error(f"invalid network {k}: {v!r}")
    O = meta.get("output_size")
    if O is not None and (not isinstance(O, int) or isinstance(O, bool) or O < 1):
        raise r.error(f"invalid network output_size: {O!r}")
    if meta.get("dtype") not in ("float32", "float64"):
        raise r.error(f"invalid network dtype {meta.get('dtype')!r}")
    # files written before bidirectional networks existed have no flag: unidirectional
    if not isinstance(meta.get("bidirectional", False), bool):
        raise r.error(f"invalid network bidirectional flag {meta.get('bidirectional')!r}")
    # the sizes must match the parameters actually in the file before anything is allocated
    try:
        expected = _num_params(meta)
    except (TypeError, ValueError) as e:
        raise r.error(f"network parameters have shape {params.shape}; the sizes in the header "
                      f"need a network streamrnn cannot build ({e})") from None
    if params.ndim != 1 or params.shape[0] != expected:
        raise r.error(f"network parameters have shape {params.shape}, the sizes in the header "
                      f"need ({expected},)")
    if params.dtype != np.dtype(meta["dtype"]):
        raise r.error(f"network parameters have dtype {params.dtype}, the header says "
                      f"{meta['dtype']}")
    if not np.all(np.isfinite(params)):
        raise r.error("network parameters hold NaN or inf")
    kwargs = {k: meta[k] for k in ("input_size", "hidden_size", "num_layers", "output_size",
                                   "dtype")}
    kwargs["seed"] = meta.get("seed")
    if meta["class"] == "RNN":
        kwargs["nonlinearity"] = meta.get("nonlinearity")
    if "reset_after" in meta:
        # a GRU variant's flag; files of version 1 (and PyTorch's GRU) have none
        if meta["class"] != "GRU" or not isinstance(meta["reset_after"], bool):
            raise r.error(f"invalid network reset_after {meta['reset_after']!r} (a GRU's "
                          f"True or False)")
        if r.version < 2 and not meta["reset_after"]:
            raise r.error("a GRU with reset_after=False in a version-1 file")
        kwargs["reset_after"] = meta["reset_after"]
    if "peepholes" in meta:
        if meta["class"] != "LSTM" or not isinstance(meta["peepholes"], bool):
            raise r.error(f"invalid network peepholes {meta['peepholes']!r} (an LSTM's True "
                          f"or False)")
        if r.version < 2 and meta["peepholes"]:
            raise r.error("an LSTM with peepholes=True in a version-1 file")
        kwargs["peepholes"] = meta["peepholes"]
    if meta.get("bidirectional", False):
        kwargs["bidirectional"] = True
    try:
        # seed=None skips nothing: the init draw is overwritten right after
        net: _Recurrent = _NETS[meta["class"]](**kwargs)
    except (TypeError, ValueError) as e:
        raise r.error(f"invalid network settings: {e}") from None
    net.parameters()[...] = params
    # files written before initial states existed (or with none) have no "initial_h": zeros
    if "initial_h" in meta or "initial_c" in meta:
        init: List[Optional[np.ndarray]] = []
        for key in ("initial_h", "initial_c"):
            v = meta.get(key)
            if v is None:
                init.append(None)
                continue
            try:
                a = np.array(v, dtype=np.float64)
            except (TypeError, ValueError):
                raise r.error(f"invalid network {key}: not a (num_layers, hidden_size) array "
                              f"of numbers") from None
            init.append(a)
        try:
            net.set_initial_state(*init)
        except (TypeError, ValueError) as e:
            raise r.error(f"invalid network initial state: {e}") from None
    return net


def _build_opt(r: _Reader, meta: Any) -> Any:
    if not isinstance(meta, dict) or meta.get("kind") not in _OPTS:
        raise r.error(f"invalid optimizer description {meta!r}")
    kw = {k: v for k, v in meta.items() if k != "kind"}
    if "betas" in kw and isinstance(kw["betas"], list):
        kw["betas"] = tuple(kw["betas"])
    try:
        return _OPTS[meta["kind"]](**kw)
    except (TypeError, ValueError) as e:
        raise r.error(f"invalid optimizer settings: {e}") from None


def _snap_from(r: _Reader, tr: OnlineTrainer, counters: np.ndarray, fcounters: np.ndarray,
               arrays: Dict[str, Optional[np.ndarray]]) -> Dict[str, Any]:
    if counters.shape != (len(_COUNTERS),) or fcounters.shape != (len(_FCOUNTERS),):
        raise r.error("trainer counters have the wrong length")
    snap: Dict[str, Any] = {"counters": {k: int(v) for k, v in zip(_COUNTERS, counters)}}
    snap["counters"].update({k: float(v) for k, v in zip(_FCOUNTERS, fcounters)})
    ref = tr._snapshot()
    for name in ("h", "c", "ring", "tags", "m1", "m2"):
        a = arrays.get(name)
        if ref[name] is None:
            if a is not None:
                raise r.error(f"trainer array {name!r} is not expected for this cell")
            snap[name] = None
            continue
        if a is None:
            raise r.error(f"trainer array {name!r} is missing")
        if a.shape != ref[name].shape or a.dtype != ref[name].dtype:
            raise r.error(f"trainer array {name!r} has shape {a.shape} and dtype {a.dtype}, "
                          f"expected {ref[name].shape} and {ref[name].dtype}")
        snap[name] = a
    out = tr.net.output_size or tr.net.hidden_size
    tags = snap["tags"]
    hi = 0 if tr.loss == "mse" else out - 1
    if tags.size and (tags.min() < -1 or tags.max() > hi):
        raise r.error("trainer ring tags out of range")
    for name in ("h", "c", "ring", "m1", "m2"):
        if snap[name] is not None and name != "ring" and not np.all(np.isfinite(snap[name])):
            raise r.error(f"trainer array {name!r} holds NaN or inf")
    return snap


def _ring_rows(r: _Reader, prefix: str) -> Tuple[int, ...]:
    """The leading shape of a stored ring buffer: (k2,) or (n, k2), then the rest."""
    return r.shape(prefix + ("ring" if r.has(prefix + "ring") else "ring.x"))


def _read_ring(r: _Reader, prefix: str, dims: _Dims, lead: Tuple[int, ...],
               dtype: Any) -> np.ndarray:
    """A stored ring buffer, lead + (record,), in the C core's record layout: from its named
    fields, or from the raw records of an older file (layout _ring_v1_fields)."""
    try:
        size, fields = _core.ring_layout(*dims)
    except (TypeError, ValueError) as e:
        raise r.error(f"invalid network sizes for a trainer: {e}") from None
    names = {f[0] for f in fields}
    stored = {k[len(prefix) + 5:] for k in r.header["arrays"] if k.startswith(prefix + "ring.")}
    if r.has(prefix + "ring"):
        if stored:
            raise r.error(f"{prefix}ring is stored both raw and by field")
        v1size, v1fields = _ring_v1_fields(dims)
        parts = _split_ring(r.array(prefix + "ring", dtype, lead + (v1size,)), v1fields)
    else:
        if stored - names:
            raise r.error(f"unknown ring buffer fields {sorted(stored - names)}")
        parts = {name: r.array(prefix + "ring." + name, dtype, lead + (c, n))
                 for name, _, c, n, _ in fields}
    return _join_ring(parts, dims, lead, dtype)


def _restore(r: _Reader, tr: OnlineTrainer, snap: Dict[str, Any]) -> None:
    try:
        tr._restore(snap)
    except (TypeError, ValueError, KeyError) as e:
        raise r.error(f"invalid trainer state: {e}") from None


def _load_trainer(r: _Reader) -> OnlineTrainer:
    meta = r.meta
    tmeta = meta.get("trainer")
    if not isinstance(tmeta, dict):
        raise r.error("missing trainer settings")
    net = _build_net(r, meta.get("net"), r.array("net.parameters"))
    k2 = tmeta.get("k2")
    if not isinstance(k2, int) or isinstance(k2, bool) or k2 < 1 \
            or _ring_rows(r, "trainer.")[:1] != (k2,):
        raise r.error(f"trainer k2 {k2!r} does not match its ring buffer")
    tm: Any = tmeta  # values from the file: OnlineTrainer validates them
    try:
        tr = OnlineTrainer(net, loss=tm.get("loss"), optimizer=_build_opt(r, tm.get(
            "optimizer")), k1=tm.get("k1"), k2=k2, clip_value=tm.get("clip_value"),
            clip_norm=tm.get("clip_norm"))
    except (TypeError, ValueError) as e:
        raise r.error(f"invalid trainer settings: {e}") from None
    arrays = {n: (r.array("trainer." + n) if r.has("trainer." + n) else None)
              for n in ("h", "c", "tags", "m1", "m2")}
    arrays["ring"] = _read_ring(r, "trainer.", _net_dims(net), (k2,), net.dtype)
    snap = _snap_from(r, tr, r.array("trainer.counters", np.int64),
                      r.array("trainer.fcounters", np.float64), arrays)
    _restore(r, tr, snap)
    return tr


def _state_meta(r: _Reader) -> Tuple[str, int, int, str]:
    m = r.meta
    cell, L, H, dt = m.get("cell"), m.get("num_layers"), m.get("hidden_size"), m.get("dtype")
    if cell not in _core.CELL_CODES or dt not in ("float32", "float64"):
        raise r.error(f"invalid state description (cell {cell!r}, dtype {dt!r})")
    if cell in _VARIANT_CELLS and r.version < 2:
        raise r.error(f"a {cell} state in a version-1 file")
    for v in (L, H):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise r.error(f"invalid state sizes: num_layers={L!r}, hidden_size={H!r}")
    return cell, L, H, dt


def _load_state(r: _Reader) -> Any:
    cell, L, H, dt = _state_meta(r)
    h = r.array("h", dt, (L, H))
    c = r.array("c", dt, (L, H)) if cell in _C_CELLS else None
    if r.has("c") and cell not in _C_CELLS:
        raise r.error(f"a {cell} state has no c")
    if not np.all(np.isfinite(h)) or (c is not None and not np.all(np.isfinite(c))):
        raise r.error("state holds NaN or inf")
    return _core._make_state(cell, L, H, dt, h, c)


def _load_batch(r: _Reader) -> Any:
    cell, L, H, dt = _state_meta(r)
    n = r.meta.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise r.error(f"invalid number of streams {n!r}")
    h = r.array("h", dt, (n, L, H))
    c = r.array("c", dt, (n, L, H)) if cell in _C_CELLS else None
    if r.has("c") and cell not in _C_CELLS:
        raise r.error(f"a {cell} state batch has no c")
    if not np.all(np.isfinite(h)) or (c is not None and not np.all(np.isfinite(c))):
        raise r.error("state batch holds NaN or inf")
    return _core._make_batch(cell, L, H, dt, n, h, c)


# Seasonal forecasters written by the release before the three experts below joined
# (dcacb26): 7 experts (these three are the newest, last in expert_names) and a season
# history of one season + 1 values. Their files load with those three experts' columns
# added empty (see _widen_v1_season).
_V1_SEASON_NEW_EXPERTS = ("seasonal_naive_2", "seasonal_drift", "seasonal_naive_best")


def _is_v1_season(r: _Reader, f: Forecaster, n: int) -> bool:
    """Whether ``r`` holds a seasonal forecaster's streams in the dcacb26 layout (its season
    history one season + 1 long; the current one is always longer)."""
    m = f.season
    return bool(m) and r.shape("streams.hist") == (n, m + 1) \
        and tuple(f.expert_names[-3:]) == _V1_SEASON_NEW_EXPERTS


def _widen_v1_season(r: _Reader, probe: Dict[str, np.ndarray], n: int
                     ) -> Dict[str, np.ndarray]:
    """hist, pend, agg_r and agg_s of a dcacb26 seasonal file in the current layout: the
    old values exactly where the current code keeps them; the three new experts' kept
    forecasts NaN (not issued: they take no part in scoring them) and their regrets 0 (as
    in a new stream); the history before the old one's oldest value NaN (not seen: the new
    experts take part once the history they need has been seen, as in a new stream)."""
    L = probe["hist"].shape[0]
    H, _, E2 = probe["pend"].shape
    E, Eo = E2 - 2, E2 - 2 - len(_V1_SEASON_NEW_EXPERTS)
    m1 = r.shape("streams.hist")[1]
    hist = np.full((n, L), np.nan)
    hist[:, L - m1:] = r.array("streams.hist", np.float64, (n, m1))
    pend = np.full((n, H, H, E2), np.nan)
    old = r.array("streams.pend", np.float64, (n, H, H, Eo + 2))
    pend[..., :Eo] = old[..., :Eo]           # the old experts' forecasts
    pend[..., E:] = old[..., Eo:]            # the combination and the conformal radius
    out = {"hist": hist, "pend": pend}
    for name in ("agg_r", "agg_s"):
        a = np.zeros((n, H, E))
        a[..., :Eo] = r.array("streams." + name, np.float64, (n, H, Eo))
        out[name] = a
    return out


def _forecast_state(r: _Reader, f: Forecaster, n: int) -> Optional[Dict[str, np.ndarray]]:
    """The streams' combination and conformal state, checked (None in files written before
    it existed: the streams start it afresh)."""
    if not r.has("streams.ses"):
        return None
    probe = f._new_stream_arrays()
    out: Dict[str, np.ndarray] = {"ses": r.array("streams.ses", np.float64, (n,))}
    if _is_v1_season(r, f, n):
        out.update(_widen_v1_season(r, probe, n))
    for name in _FORECAST_ARRAYS:
        if name in out:
            continue
        ref = probe[name]
        out[name] = r.array("streams." + name, ref.dtype, (n,) + ref.shape)
    # (NaN is allowed: |NaN| > MAX_ABS is False, as |nan_to_num(NaN)| = 0 is not > MAX_ABS)
    if np.isinf(out["ses"]).any() or (np.abs(out["ses"]) > MAX_ABS).any():
        raise r.error("stream smoothing levels out of range")
    if np.isinf(out["hist"]).any() or (np.abs(out["hist"]) > MAX_ABS).any():
        raise r.error("stream season history out of range")
    for name in ("agg_r", "agg_s", "scores", "alpha", "hw", "hw_season"):
        if not np.isfinite(out[name]).all():
            raise r.error(f"stream {name} holds NaN or inf")
    if (out["agg_s"] < 0).any() or (out["scores"] < 0).any() or (out["nscores"] < 0).any() \
            or (np.abs(out["alpha"]) > 2).any() or (out["porig"] < -1).any():
        raise r.error("stream combination or conformal state holds impossible values")
    return out


def _load_forecaster(r: _Reader, shared_net: Optional[_Recurrent] = None) -> Forecaster:
    """The Forecaster of ``r``; ``shared_net``: the shared network of streams written
    without it (Forecaster.import_stream)."""
    meta = r.meta
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        raise r.error("missing forecaster settings")
    settings = dict(settings)
    settings["optimizer"] = _build_opt(r, settings.get("optimizer"))
    try:
        f = Forecaster(**settings)
    except (TypeError, ValueError) as e:
        raise r.error(f"invalid forecaster settings: {e}") from None
    names = meta.get("feature_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) \
                or len(names) != f.n_features:
            raise r.error("invalid feature names")
        f._feature_names = names
    keys = meta.get("keys")
    if not isinstance(keys, list):
        raise r.error("missing stream keys")
    for k in keys:
        if not (k is None or isinstance(k, str) or (isinstance(k, int)
                                                    and not isinstance(k, bool))):
            raise r.error(f"invalid stream key {k!r}")
    if len(set(keys)) != len(keys):
        raise r.error("repeated stream keys")
    n = len(keys)
    if n and f.n_features is None:
        raise r.error("streams without a known number of features")
    if f.weights == "shared" and r.has("net.parameters"):
        f._net = _build_net(r, meta.get("net"), r.array("net.parameters"))
        if f.net.input_size != f.input_size or f.net.hidden_size != f.hidden_size:
            raise r.error("the network does not match the forecaster's settings")
    elif f.weights == "shared" and shared_net is not None:
        f._net = shared_net
        if f.net.input_size != f.input_size or f.net.hidden_size != f.hidden_size:
            raise r.error("the network does not match the forecaster's settings")
    elif f.weights == "shared" and n:
        raise r.error("streams without their shared network")
    if not n:
        return f
    D = f.input_size
    n_features = f.n_features
    assert D is not None and n_features is not None
    pk = None
    if f.weights == "per_key":
        if r.shape("streams.parameters")[:1] != (n,):
            raise r.error("per-key parameters do not match the number of streams")
        pk = r.array("streams.parameters")
    if _ring_rows(r, "streams.")[:2] != (n, f.k2):
        raise r.error("stream ring buffers do not match the settings")
    get: Dict[str, Optional[np.ndarray]] = {name: r.array("streams." + name) for name in
           ("counters", "fcounters", "h", "tags", "m1", "m2")}
    dims_net = f.net if pk is None else _build_net(r, meta.get("net"), pk[0])
    get["ring"] = _read_ring(r, "streams.", _net_dims(dims_net), (n, f.k2), f.dtype)
    get["c"] = r.array("streams.c") if r.has("streams.c") else None
    sy = r.array("streams.sy", np.float64, (n, 3))
    sd = r.array("streams.sd", np.float64, (n, 3))
    sx = r.array("streams.sx", np.float64, (n, 3, n_features))
    u = r.array("streams.u", f.dtype, (n, D))
    last_y = r.array("streams.last_y", np.float64, (n,))
    counts = r.array("streams.counts", np.int64, (n, 3))
    # absent in files of forecasters that never ran a step ahead of its target
    pending = (r.array("streams.pending", np.float64, (n,)) if r.has("streams.pending")
               else np.full(n, np.nan))
    if np.isinf(pending).any():
        raise r.error("stream pending prediction holds inf")
    for name, a in (("sy", sy), ("sd", sd), ("sx", sx), ("u", u)):
        if not np.all(np.isfinite(a)):
            raise r.error(f"stream {name} holds NaN or inf")
    # scaler rows are (n, mean, var): a count, a mean of values bounded by MAX_ABS and a
    # variance of their differences; anything else makes the next update overflow or sqrt fail
    for name, a in (("sy", sy), ("sd", sd), ("sx", sx)):
        cnt, mean, var = a[:, 0], a[:, 1], a[:, 2]
        if (cnt < 0).any() or (var < 0).any() or (np.abs(mean) > 2 * MAX_ABS).any() \
                or (var > (4 * MAX_ABS) ** 2).any():
            raise r.error(f"stream scaler {name} holds impossible statistics")
    if (counts < 0).any() or np.isinf(last_y).any() or (np.abs(last_y) > MAX_ABS).any():
        raise r.error("invalid stream counters")
    for name in ("counters", "fcounters", "h", "ring", "tags", "m1", "m2", "c"):
        g = get[name]
        if g is not None and g.shape[:1] != (n,):
            raise r.error(f"stream array {name!r} does not have one row per stream")
    extra = _forecast_state(r, f, n)
    for i, key in enumerate(keys):
        if pk is not None:
            # (the first stream's network was built, fresh and unshared, for the sizes above)
            net = dims_net if i == 0 else _build_net(r, meta.get("net"), pk[i])
            if net.input_size != D or net.hidden_size != f.hidden_size:
                raise r.error("a per-key network does not match the forecaster's settings")
            tr = OnlineTrainer(net, loss="mse", optimizer=f.optimizer, k1=f.k1, k2=f.k2,
                               clip_norm=f.clip_norm)
            s = f._wrap(tr, n_features)
        else:
            s = f._new_stream()
        arrays = {name: (None if g is None else g[i])
                  for name, g in ((k, get[k]) for k in ("h", "c", "ring", "tags", "m1", "m2"))}
        counters, fcounters = get["counters"], get["fcounters"]
        assert counters is not None and fcounters is not None
        snap = _snap_from(r, s.trainer, counters[i], fcounters[i], arrays)
        _restore(r, s.trainer, snap)
        s.sy.unpack(sy[i])
        s.sd.unpack(sd[i])
        s.sx.unpack(sx[i])
        s.u[...] = u[i]
        s.last_y = float(last_y[i])
        s.n_seen, s.n_obs, s.n_missing = (int(v) for v in counts[i])
        if s.trainer._c_pending():
            if not r.has("streams.pending") or s.last_y != s.last_y:
                raise r.error("a stream's step waits for its target without its prediction")
            s.o = float(pending[i])
        if extra is not None:
            s.ses = float(extra["ses"][i])
            for name in _FORECAST_ARRAYS:
                getattr(s, name)[...] = extra[name][i]
        f._streams[key] = s
    return f


def _load_window(r: _Reader) -> Any:
    """A SequenceTrainer or Seq2Seq: networks, settings, then the optimizer state, every
    piece checked before the object is returned."""
    meta = r.meta
    t = meta.get("trainer")
    if not isinstance(t, dict):
        raise r.error("missing trainer settings")
    kw: Dict[str, Any] = {k: t.get(k) for k in ("loss", "clip_value", "clip_norm")}
    kw["optimizer"] = _build_opt(r, t.get("optimizer"))
    try:
        if r.type == "Seq2Seq":
            enc = _build_net(r, meta.get("encoder"), r.array("encoder.parameters"))
            dec = _build_net(r, meta.get("decoder"), r.array("decoder.parameters"))
            start = t.get("start")
            if isinstance(start, list) and not all(isinstance(v, (int, float))
                                                   and not isinstance(v, bool) for v in start):
                raise r.error(f"invalid decoder start {start!r}")
            tr: Any = Seq2Seq(enc, dec, context=t.get("context"), start=start, **kw)  # type: ignore[arg-type]
        else:
            tr = SequenceTrainer(_build_net(r, meta.get("net"), r.array("net.parameters")),
                                 **kw)
    except (TypeError, ValueError) as e:
        raise r.error(f"invalid trainer settings: {e}") from None
    counters = r.array("trainer.counters", np.int64, (len(_WCOUNTERS),))
    fcounters = r.array("trainer.fcounters", np.float64, (len(_WFCOUNTERS),))
    # fcounters (last_loss, last_grad_norm) may be NaN or inf: they report a skipped update
    if (counters < 0).any() or fcounters[1] < 0:
        raise r.error("invalid trainer counters")
    ref = tr._upd._snapshot()
    m1 = r.array("trainer.m1", ref["m1"].dtype, ref["m1"].shape)
    m2 = r.array("trainer.m2", ref["m2"].dtype, ref["m2"].shape)
    if not (np.all(np.isfinite(m1)) and np.all(np.isfinite(m2))) or (m2 < 0).any():
        raise r.error("trainer moments hold NaN, inf or a negative second moment")
    snap = {"counters": {**{k: int(v) for k, v in zip(_WCOUNTERS, counters)},
                         **{k: float(v) for k, v in zip(_WFCOUNTERS, fcounters)}},
            "m1": m1, "m2": m2}
    try:
        tr._upd._restore(snap)
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise r.error(f"invalid trainer state: {e}") from None
    return tr


_LOADERS = {"State": _load_state, "StateBatch": _load_batch, "OnlineTrainer": _load_trainer,
            "Forecaster": _load_forecaster, "SequenceTrainer": _load_window,
            "Seq2Seq": _load_window}
_TYPES: Dict[str, Type[Any]] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN, "State": _core.State,
                                "StateBatch": _core.StateBatch,
                                "OnlineTrainer": OnlineTrainer, "Forecaster": Forecaster,
                                "SequenceTrainer": SequenceTrainer, "Seq2Seq": Seq2Seq}


def _check_expect(expect: Optional[Type[Any]]) -> None:
    if expect is not None and not isinstance(expect, type):
        raise TypeError(f"expect must be a class (e.g. streamrnn.Forecaster) or None, got "
                        f"{type(expect).__name__} {expect!r}")


_T = TypeVar("_T")


# Typing: with ``expect=SomeClass`` the result is typed as SomeClass (the file is checked to
# hold one); with ``with_metadata=True`` a (obj, metadata) pair.
@overload
def load(path: "os.PathLike[str] | str", expect: Type[_T], *,
         with_metadata: Literal[False] = ...) -> _T: ...
@overload
def load(path: "os.PathLike[str] | str", expect: Type[_T], *,
         with_metadata: Literal[True]) -> Tuple[_T, Dict[str, Any]]: ...
@overload
def load(path: "os.PathLike[str] | str", expect: None = ..., *,
         with_metadata: bool = ...) -> Any: ...


def load(path: "os.PathLike[str] | str", expect: Optional[Type[Any]] = None, *,
         with_metadata: bool = False) -> Any:
    """Read an object written by :func:`save`.

    Everything is validated before an object is built (format version, shapes, dtypes,
    checksums, settings, finite values): a bad file raises, it never crashes the process.
    The result continues bit for bit where the saved object stopped.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    expect : type or None
        A class (e.g. ``sr.Forecaster``, ``sr.LSTM``): a file holding anything else raises
        TypeError before it is decoded (and type checkers type the result as that class).
    with_metadata : bool
        Return ``(obj, metadata)`` with the ``metadata`` dict given to save ({} if none).

    Returns
    -------
    object or tuple
        The LSTM, GRU, RNN, State, StateBatch, OnlineTrainer, SequenceTrainer, Seq2Seq or
        Forecaster (with the
        dtype it was saved with), or ``(obj, metadata)``.

    Raises
    ------
    FileFormatError (a ValueError)
        Not a streamrnn file, truncated, corrupted (checksums), an unsupported format
        version, or content that fails validation.
    TypeError
        The file holds another type than ``expect``.
    ValueError
        ``path`` is a FIFO, socket or device, not a regular file (refused without reading
        or waiting).
    OSError
        The file cannot be opened (IsADirectoryError: a directory).

    See Also
    --------
    save, loads

    Examples
    --------
    >>> import os, tempfile, streamrnn as sr
    >>> tr = sr.OnlineTrainer(sr.LSTM(1, 4, output_size=1, seed=0))
    >>> _ = tr.learn_one([0.5], [1.0])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sr.save(tr, os.path.join(d, "tr.srnn"))
    ...     tr2 = sr.load(os.path.join(d, "tr.srnn"), sr.OnlineTrainer)
    >>> tr2.steps
    1
    """
    _check_expect(expect)
    return _decode(_Reader(path), expect, with_metadata)


@overload
def loads(data: bytes, expect: Type[_T], *, with_metadata: Literal[False] = ...) -> _T: ...
@overload
def loads(data: bytes, expect: Type[_T], *,
          with_metadata: Literal[True]) -> Tuple[_T, Dict[str, Any]]: ...
@overload
def loads(data: bytes, expect: None = ..., *, with_metadata: bool = ...) -> Any: ...


def loads(data: bytes, expect: Optional[Type[Any]] = None, *,
          with_metadata: bool = False) -> Any:
    """Read an object from bytes written by :func:`dumps` (or a file's content).

    Parameters
    ----------
    data : bytes, bytearray or memoryview
    expect : type or None
        As in :func:`load`.
    with_metadata : bool
        Return ``(obj, metadata)``.

    Returns
    -------
    object
        The LSTM, GRU, RNN, State, StateBatch, OnlineTrainer, SequenceTrainer, Seq2Seq or
        Forecaster.

    Raises
    ------
    FileFormatError
        Not valid streamrnn bytes (the message starts with ``<bytes>``).
    TypeError
        ``data`` not bytes-like, or it holds another type than ``expect``.

    Examples
    --------
    >>> import streamrnn as sr
    >>> s = sr.loads(sr.dumps(sr.LSTM(1, 3, seed=1)))
    >>> s.hidden_size
    3
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    _check_expect(expect)
    return _decode(_Reader("<bytes>", bytes(data)), expect, with_metadata)


def _decode(r: "_Reader", expect: Optional[Type[Any]], with_metadata: bool) -> Any:
    try:
        t = r.type
        if t not in _TYPES:
            raise r.error(f"unknown object type {t!r}")
        if expect is not None and not issubclass(_TYPES[t], expect):
            raise TypeError(f"{r.path} holds a {t}, expected a {expect.__name__}")
        try:
            if t in _NETS:
                obj = _build_net(r, {**r.meta, "class": t}, r.array("parameters"))
            else:
                obj = _LOADERS[t](r)
        except FileFormatError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError,
                RecursionError) as e:
            # validation above should catch everything; this is the last line of defence
            # against a crafted file (nothing of the caller's has been touched)
            raise r.error(f"invalid {t} content: {type(e).__name__}: {e}") from None
        user = r.meta.get("user", {})
    finally:
        r.close()
    return (obj, user) if with_metadata else obj


# ---------------------------------------------------------------------- one stream
# Forecaster.export_stream / import_stream: one stream of a Forecaster in the same format
# (type "ForecasterStream"): the payload of a Forecaster holding only that stream (keyed
# None), without the shared network, plus the fingerprint of the model configuration.
_STREAM_TYPE = "ForecasterStream"


def _stream_fingerprint(settings: Any, feature_names: Any) -> str:
    """sha256 of the configuration (settings incl. optimizer and n_features, feature names)
    that a stream's arrays are only meaningful under."""
    blob = json.dumps({"settings": settings, "feature_names": feature_names},
                      sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _dump_stream(f: Forecaster, s: Any) -> bytes:
    """The bytes of stream ``s`` of ``f`` (ValueError: what _load_stream would refuse)."""
    meta, arrays = _forecaster_payload(f, only=s)
    meta["fingerprint"] = _stream_fingerprint(meta["settings"], meta["feature_names"])
    _refuse_unloadable("stream", arrays)
    meta["user"] = {}
    return _join(*_encode(_STREAM_TYPE, meta, arrays))


def _load_stream(f: Forecaster, data: Any) -> Tuple[Any, Optional[_Recurrent], int,
                                                     Optional[List[str]]]:
    """Decode and validate one stream for ``f`` (nothing of ``f`` changes): the stream,
    the shared network it runs on (new if ``f`` has none yet), its n_features and feature
    names. FileFormatError for bad bytes or another configuration."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    r = _Reader("<stream>", bytes(data))
    r.path = "<stream>"
    try:
        if r.type != _STREAM_TYPE:
            raise r.error(f"holds a {r.type}, expected one stream of a Forecaster "
                          f"(Forecaster.export_stream)")
        meta = r.meta
        settings, names, fp = meta.get("settings"), meta.get("feature_names"), \
            meta.get("fingerprint")
        try:
            ok = isinstance(settings, dict) and fp == _stream_fingerprint(settings, names)
        except (TypeError, ValueError):
            ok = False
        if not ok or meta.get("keys") != [None]:
            raise r.error("corrupted: not one stream with a consistent model fingerprint")
        mine = f._settings()
        mine["optimizer"] = _opt_meta(f.optimizer)
        nf = settings.get("n_features")
        if mine["n_features"] is None and isinstance(nf, int) and not isinstance(nf, bool):
            mine["n_features"] = nf
        own = _stream_fingerprint(mine, names if f.feature_names is None
                                  else f.feature_names)
        if own != fp:
            raise r.error(f"the stream belongs to a forecaster of another configuration "
                          f"(fingerprint {fp[:12]}, this forecaster's {own[:12]}): "
                          f"{settings!r}")
        net = None
        try:
            if f.weights == "shared":
                net = f.net if f.net is not None else f._new_network(
                    1 + int(f.differencing) + int(f.season is not None) + nf)
            g = _load_forecaster(r, net)
        except FileFormatError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, ArithmeticError,
                AttributeError, RecursionError) as e:
            raise r.error(f"invalid stream content: {type(e).__name__}: {e}") from None
        if not r.has("streams.ses") or len(g._streams) != 1:
            raise r.error("corrupted: the stream's combination state is missing")
    finally:
        r.close()
    assert g.n_features is not None
    return g._streams[None], net, g.n_features, g.feature_names
