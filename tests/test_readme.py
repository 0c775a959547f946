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
