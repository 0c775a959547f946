"""Small real series shipped inside the package (see ``streamrnn/data/SOURCE.md``)."""
from __future__ import annotations

import csv
import io
from typing import List, Tuple

__all__ = ["load_sunspots", "sunspots_path"]


def _read_text(name: str) -> str:
    try:
        from importlib.resources import files
    except ImportError:  # pragma: no cover - Python < 3.9
        import pkgutil

        data = pkgutil.get_data(__package__, "data/" + name)
        assert data is not None
        return data.decode("utf-8")
    return (files(__package__) / "data" / name).read_text(encoding="utf-8")


def sunspots_path() -> str:
    """Filesystem path of the embedded ``sunspots.csv`` (columns ``year,sunspots``)."""
    import os

    return os.path.join(os.path.dirname(__file__), "data", "sunspots.csv")


def load_sunspots() -> Tuple[List[int], List[float]]:
    """Yearly mean sunspot numbers 1700-2008 (309 values; NGDC/NOAA, public domain).

    Returns ``(years, values)``.

    >>> years, values = load_sunspots()
    >>> years[0], values[0], len(values)
    (1700, 5.0, 309)
    """
    rows = list(csv.reader(io.StringIO(_read_text("sunspots.csv"))))
    if rows[0] != ["year", "sunspots"]:
        raise ValueError(f"unexpected header in sunspots.csv: {rows[0]}")
    return [int(r[0]) for r in rows[1:]], [float(r[1]) for r in rows[1:]]
