"""Reading user files: formats, encodings, coordinate systems and offsets, with a report.

The import command and the store build on :func:`inspect_source`, :func:`read_source` and
:func:`iter_source`; see :mod:`yizhangtu.io.read` for the decisions they take.
"""

from yizhangtu.io.read import ReadReport, inspect_source, iter_source, read_source

__all__ = ["ReadReport", "inspect_source", "iter_source", "read_source"]
