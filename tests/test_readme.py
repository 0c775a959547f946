"""The README's Python examples run as written."""
import pathlib
import re

import pytest

from conftest import optional_missing, require_file

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
require_file(README, "README.md")  # skips only in the installed-wheel run
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files (checkpoints, plots)
    for pkg in ("torch", "onnxruntime", "onnx", "keras"):  # optional extras: skip if absent
        if re.search(rf"^(import|from) {pkg}\b", BLOCKS[i], re.M):
            for mod in (pkg, "torch") if pkg == "keras" else (pkg,):  # keras: torch backend
                if optional_missing(mod):
                    pytest.skip(f"optional package {mod} is not installed")
    exec(compile(BLOCKS[i], f"README.md python block {i}", "exec"), {"__name__": "__readme__"})


# ---------------------------------------------------------------------- the command lines
def command_section_lines():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Command line\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [ln for b in blocks for ln in b.splitlines() if ln.strip()]


def test_readme_command_lines_run_as_written(tmp_path):
    """Every line of the README's Command line block, in order, run by bash as written:
    `python` is this interpreter and imports this tree's streamrnn; data.csv has a column
    `load`. The `tail -f` pipeline never ends by itself: after its forecasts of the 10 lines
    tail prints (without the header: the checkpoint's columns name them) it gets SIGTERM, as
    a user's Ctrl-C, and must save and exit 130."""
    import math
    import os
    import shutil
    import signal
    import subprocess
    import sys

    import streamrnn as sr

    if shutil.which("bash") is None or shutil.which("tail") is None or os.name != "posix":
        pytest.skip("needs bash and tail")
    lines = command_section_lines()
    assert len(lines) == 4 and any(ln.startswith("tail -f data.csv |") for ln in lines)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    root = str(README.parent)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    with open(tmp_path / "data.csv", "w") as fh:
        fh.write("t,load,temp\n")
        for t in range(300):
            fh.write(f"{t},{50 + 10 * math.sin(0.3 * t):.4f},{t % 7}\n")
    for line in lines:
        if line.startswith("tail -f"):
            before = sr.load(tmp_path / "model.srnn", sr.Forecaster).stats()["observations"]
            p = subprocess.Popen(["bash", "-c", line], cwd=tmp_path, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
            try:
                header = p.stdout.readline()
                assert header.startswith("line,value,forecast_1,"), header
                rows = [p.stdout.readline() for _ in range(10)]
                assert all(r.count(",") == 25 for r in rows), rows     # 24 forecasts
                os.killpg(p.pid, signal.SIGTERM)
                out, err = p.communicate(timeout=300)
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            assert "Traceback" not in err and "interrupted by SIGTERM" in err, err
            assert "saved model.srnn" in err
            after = sr.load(tmp_path / "model.srnn", sr.Forecaster).stats()["observations"]
            assert after == before + 10
            continue
        r = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, (line, r.stderr)
        assert "Traceback" not in r.stderr
    assert (tmp_path / "model.srnn").exists()
