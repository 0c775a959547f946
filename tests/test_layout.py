"""Issue 15: one source for layout facts, a file format that names its fields, interop
through the public names of network.py."""
import ast
import pathlib

import pytest

import streamrnn

PKG = pathlib.Path(streamrnn.__file__).parent


def _network_private_uses(path):
    """Names starting with '_' that a module takes from streamrnn.network."""
    tree = ast.parse(path.read_text())
    bad = []
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("network"):
            for a in node.names:
                if a.name.startswith("_"):
                    bad.append(a.name)
        if isinstance(node, ast.ImportFrom) and node.module in (None, "") and node.level:
            for a in node.names:
                if a.name == "network":
                    aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")):
            bad.append(node.attr)
    return bad


@pytest.mark.parametrize("name", sorted(p.name for p in (PKG / "interop").glob("*.py")))
def test_interop_uses_only_public_network_names(name):
    assert _network_private_uses(PKG / "interop" / name) == []


def test_private_use_detector_can_fail(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("from .. import network as _n\nfrom ..network import _check_dtype\n"
                 "x = _n._Recurrent\n")
    assert sorted(_network_private_uses(p)) == ["_Recurrent", "_check_dtype"]


def test_check_dtype_lives_in_checks():
    from streamrnn import _checks
    import numpy as np
    assert _checks.check_dtype("float32") == np.float32
    for bad in (None, "int32", "nonsense"):
        with pytest.raises(TypeError, match="dtype must be 'float32' or 'float64'"):
            _checks.check_dtype(bad)
