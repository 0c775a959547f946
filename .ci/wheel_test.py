"""Run the test suite against an *installed* streamrnn, from outside the source tree.

Usage: python .ci/wheel_test.py PROJECT_DIR [pytest args...]

Copies PROJECT_DIR/tests (and the files some tests read: README.md, examples/,
benchmarks/*.py) into a fresh temporary directory, checks that ``import streamrnn`` from
there resolves to an installed copy (site-packages), not to PROJECT_DIR, then runs pytest
there. Used by .ci/wheel and by cibuildwheel's test-command, so plain Python (no bash:
Windows runs it too).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    project = Path(sys.argv[1]).resolve()
    extra = sys.argv[2:]
    with tempfile.TemporaryDirectory(prefix="streamrnn-wheel-tests-") as tmp:
        root = Path(tmp)
        shutil.copytree(project / "tests", root / "tests",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in ("README.md",):
            if (project / name).exists():
                shutil.copy2(project / name, root / name)
        for sub in ("examples", "benchmarks"):
            if (project / sub).is_dir():
                shutil.copytree(project / sub, root / sub,
                                ignore=shutil.ignore_patterns("__pycache__", "*.png", "out"))
        # STREAMRNN_SKIP_MISSING_FILES: files the copied tests read next to them (README.md,
        # examples/, benchmarks/) may be missing here, and only here do their tests skip.
        # The comparison suites (torch, onnx, keras) are required by the main CI run
        # (.ci/run's STREAMRNN_REQUIRE); this venv holds the wheel and the test extras only.
        env = dict(os.environ, STREAMRNN_EXPECT_INSTALLED="1", STREAMRNN_SKIP_MISSING_FILES="1")
        env.pop("PYTHONPATH", None)
        env.pop("STREAMRNN_REQUIRE", None)
        where = subprocess.run(
            [sys.executable, "-c", "import streamrnn, sys; sys.stdout.write(streamrnn.__file__)"],
            cwd=root, env=env, capture_output=True, text=True, check=True).stdout
        pkg = Path(where).resolve().parent
        print(f"wheel_test: streamrnn imported from {pkg}")
        if project in pkg.parents or pkg == project:
            print(f"wheel_test: streamrnn resolves into the source tree {project}", file=sys.stderr)
            return 1
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra",
               "--rootdir", str(root), "tests", *extra]
        return subprocess.call(cmd, cwd=root, env=env)


if __name__ == "__main__":
    sys.exit(main())
