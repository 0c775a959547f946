"""The install trap: a source tree without its compiled core says what to do (instead of a
bare ``No module named 'streamrnn._core'``); the console script and --version."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest
from conftest import require_file

import streamrnn
from streamrnn import cli

PKG = pathlib.Path(streamrnn.__file__).resolve().parent
ROOT = PKG.parent


def isolated_python(code, pythonpath, cwd):
    """Python without site-packages' .pth files (-S: no editable-install finder that could
    supply a _core from elsewhere), NumPy reachable through PYTHONPATH."""
    site = sysconfig.get_paths()["purelib"]
    plat = sysconfig.get_paths()["platlib"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pythonpath), site, plat]))
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not (PKG / "_core.pyx").exists(), reason="needs the source tree")
def test_a_source_tree_without_the_core_says_what_to_do(tmp_path):
    src = tmp_path / "clone" / "streamrnn"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    assert not list(src.glob("_core*.so")) and (src / "_core.pyx").exists()
    for code in ("import streamrnn", "import runpy; runpy.run_module('streamrnn')"):
        r = isolated_python(code, src.parent, src.parent)
        assert r.returncode != 0
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("ImportError: streamrnn is being imported from its source "
                               "tree"), r.stderr
        assert "pip install -e ." in last and "from another directory" in last
        assert "No module named" not in r.stderr


def test_an_installed_package_without_the_core_says_reinstall(tmp_path):
    dst = tmp_path / "site" / "streamrnn"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "__pycache__", "*.pyx", "*.pxd", "*.c"))
    r = isolated_python("import streamrnn", dst.parent, tmp_path)
    assert r.returncode != 0
    assert "reinstall streamrnn" in r.stderr.strip().splitlines()[-1], r.stderr


def test_console_script_is_declared_and_names_itself():
    tomllib = pytest.importorskip("tomllib")
    pyproject = ROOT / "pyproject.toml"
    require_file(pyproject, "pyproject.toml")   # skips only in the installed-wheel run
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    assert scripts == {"streamrnn": "streamrnn.cli:main"}
    code = ("import sys; sys.argv[0] = '/venv/bin/streamrnn'; from streamrnn.cli import main; "
            "sys.exit(main(['--version']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0 and r.stdout == f"streamrnn {streamrnn.__version__}\n"
    r = subprocess.run([sys.executable, "-c", code.replace("--version", "forecast")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("streamrnn forecast: error:")
    assert callable(cli.main)
