"""atheris harness for sr.load (coverage-guided; needs ``pip install atheris``).

Three modes, chosen by the first input byte: raw bytes as a file; a valid file (of every
type) with bytes overwritten at fuzzer-chosen places; a valid file's data under a
fuzzer-written JSON header with correct checksums (the header and every array: so the
mutation reaches the loader's validation instead of stopping at a checksum). Any exception
other than sr.FileFormatError from load, or any exception from using a loaded object, is a
crash.

Run::

    python tests/fuzz/fuzz_load.py -max_total_time=20      # CI: .ci/reliability
    python tests/fuzz/fuzz_load.py -max_total_time=600 -print_final_stats=1
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))      # this checkout's streamrnn
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # tests/ helpers

with atheris.instrument_imports(include=["streamrnn"]):
    import streamrnn as sr

from _hostile_files import exercise, join, split, valid_files  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="srnn-fuzz-"))
FILES = valid_files(_DIR)
NAMES = sorted(FILES)
TARGET = _DIR / "input.srnn"


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, name, rest = data[0] % 3, NAMES[data[1] % len(NAMES)], data[2:]
    if mode == 0:
        raw = rest
    elif mode == 1:
        raw = bytearray(FILES[name])
        for i in range(0, len(rest) - 4, 5):     # (position, value) pairs
            pos = int.from_bytes(rest[i:i + 4], "little") % len(raw)
            raw[pos] = rest[i + 4]
        raw = bytes(raw)
    else:
        _, body = split(FILES[name])
        try:
            header = json.loads(rest)
        except (ValueError, RecursionError):
            raw = join(None, body, hbytes=rest)
        else:
            raw = join(header, body)
    TARGET.write_bytes(raw)
    try:
        obj = sr.load(TARGET)
    except sr.FileFormatError:
        return
    exercise(obj)


def main() -> None:
    # seed corpus: the valid headers (mode 2) so the fuzzer starts from real structure
    corpus = _DIR / "corpus"
    corpus.mkdir()
    for i, name in enumerate(NAMES):
        header, _ = split(FILES[name])
        (corpus / f"h{i}").write_bytes(bytes([2, i]) + json.dumps(header).encode())
        (corpus / f"m{i}").write_bytes(bytes([1, i, 3]) + os.urandom(16))
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(str(corpus))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
