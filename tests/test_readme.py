"""The README's Python examples run as written."""
import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
if not README.exists():  # tests copied out of the tree without the README
    pytest.skip("README.md not available next to the tests", allow_module_level=True)
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files (checkpoints, plots)
    for pkg in ("torch", "onnxruntime", "onnx", "keras"):  # optional extras: skip if absent
        if re.search(rf"^(import|from) {pkg}\b", BLOCKS[i], re.M):
            for mod in (pkg, "torch") if pkg == "keras" else (pkg,):  # keras: torch backend
                if importlib.util.find_spec(mod) is None:
                    pytest.skip(f"optional package {mod} is not installed")
    exec(compile(BLOCKS[i], f"README.md python block {i}", "exec"), {"__name__": "__readme__"})
