"""Valid save files of every type, and helpers to take them apart and re-sign them (so that
a mutation gets past the checksums and reaches the loader's validation)."""
from __future__ import annotations

import hashlib
import json

import numpy as np

import streamrnn as sr
from streamrnn import io as srio


def valid_objects():
    f = sr.Forecaster(hidden_size=4, seed=0)
    for t in range(30):
        f.learn_one(float(np.sin(0.3 * t)), key="a" if t % 3 else 7)
    fk = sr.Forecaster(cell="gru", hidden_size=3, weights="per_key", n_features=1, seed=1)
    for t in range(12):
        fk.learn_one(float(np.cos(0.2 * t)), [t * 0.1], key=t % 2)
    tr = sr.OnlineTrainer(sr.GRU(2, 3, output_size=1, seed=1), k1=2, k2=3)
    for t in range(7):
        tr.learn_one([t * 0.1, 1.0], [0.5])
    trx = sr.OnlineTrainer(sr.LSTM(2, 3, output_size=3, seed=2, dtype="float32"),
                           loss="cross_entropy", optimizer=sr.SGD(0.1, momentum=0.9),
                           k1=1, k2=2)
    for t in range(5):
        trx.learn_one([t * 0.1, -1.0], t % 3)
    seq = sr.SequenceTrainer(sr.GRU(2, 3, output_size=2, bidirectional=True, seed=4),
                             loss="cross_entropy", optimizer=sr.Adam(0.01), clip_norm=1.0)
    seq.learn_sequence(np.ones((4, 2), np.float32), [0, 1, -1, 1])
    s2s = sr.Seq2Seq(sr.LSTM(2, 3, seed=5), sr.LSTM(2, 3, output_size=2, seed=6), loss="mse",
                     start=[0.0, 1.0], optimizer=sr.RMSprop(0.01))
    s2s.learn(np.ones((3, 2), np.float32), np.zeros((2, 2), np.float32))
    return {"forecaster": f, "forecaster_per_key": fk, "trainer": tr, "trainer_xent": trx,
            "seq_trainer": seq, "seq2seq": s2s,
            "rnn": sr.RNN(2, 3, seed=2, nonlinearity="relu"),
            "lstm32": sr.LSTM(1, 2, 2, output_size=1, dtype="float32", seed=3),
            "state": sr.GRU(1, 3).new_state(), "batch": sr.LSTM(1, 2).new_states(2)}


def valid_files(tmp_dir):
    out = {}
    for name, obj in valid_objects().items():
        p = tmp_dir / (name + ".srnn")
        sr.save(obj, p)
        out[name] = p.read_bytes()
    return out


def split(raw):
    """(header dict, data bytes) of a valid file."""
    _, _, _, hlen, _ = srio._PREFIX.unpack_from(raw)
    header = json.loads(raw[srio._PREFIX.size:srio._PREFIX.size + hlen])
    return header, raw[srio._align(srio._PREFIX.size + hlen):]


def join(header, data, version=srio.FORMAT_VERSION, resign_arrays=True, hbytes=None):
    """A file with this header (any JSON value, or raw ``hbytes``) and data, with correct
    checksums for the header and (when the header allows) every array."""
    if resign_arrays and isinstance(header, dict) and isinstance(header.get("arrays"), dict):
        for spec in header["arrays"].values():
            if isinstance(spec, dict) and isinstance(spec.get("offset"), int) \
                    and isinstance(spec.get("nbytes"), int) and spec["offset"] >= 0 \
                    and spec["nbytes"] >= 0:
                blob = data[spec["offset"]:spec["offset"] + spec["nbytes"]]
                spec["sha256"] = hashlib.sha256(blob).hexdigest()
    if hbytes is None:
        hbytes = json.dumps(header).encode()
    head = srio._PREFIX.pack(srio.MAGIC, version, 0, len(hbytes),
                             hashlib.sha256(hbytes).digest()) + hbytes
    head += b"\0" * (srio._align(len(head)) - len(head))
    return head + data


def exercise(obj):
    """Use a loaded object a little: a file that loads must give a working object."""
    if isinstance(obj, sr.Forecaster):
        for key in obj.keys() or [None]:
            x = [0.0] * obj.n_features if obj.n_features else None
            obj.learn_one(0.5, x, key=key)
            obj.forecast(2, key=key)
    elif isinstance(obj, sr.OnlineTrainer):
        x = np.zeros(obj.net.input_size, dtype=obj.net.dtype)
        y = (0 if obj.loss == "cross_entropy" else
             np.zeros(obj.net.output_size or obj.net.hidden_size, dtype=obj.net.dtype))
        for _ in range(3):
            obj.learn_one(x, y)
    elif isinstance(obj, sr.SequenceTrainer):
        X = np.zeros((3, obj.net.input_size), dtype=obj.net.dtype)
        out = obj.net.output_size or obj.net.hidden_size * obj.net.num_directions
        Y = (np.zeros(3, np.int64) if obj.loss == "cross_entropy"
             else np.zeros((3, out), dtype=obj.net.dtype))
        obj.learn_sequence(X, Y)
        obj.predict(X)
    elif isinstance(obj, sr.Seq2Seq):
        X = np.zeros((3, obj.encoder.input_size), dtype=obj.encoder.dtype)
        Y = (np.zeros(2, np.int64) if obj.loss == "cross_entropy"
             else np.zeros((2, obj.decoder.output_size), dtype=obj.decoder.dtype))
        obj.learn(X, Y)
        obj.generate(X, 3)
    elif isinstance(obj, (sr.LSTM, sr.GRU, sr.RNN)):
        obj.run(np.zeros((3, obj.input_size), dtype=obj.dtype), obj.new_state())
    else:
        obj.copy()
