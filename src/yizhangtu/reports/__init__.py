"""Report adapters (HTML/PDF/xlsx) over domain results.

Modules are imported explicitly to keep this package light:

- :mod:`yizhangtu.reports.health_check`: ``render_health_check``, ``export_evaluation_xlsx``;
- :mod:`yizhangtu.reports.mapping`: ``choropleth_png`` (legend, north arrow, true scale bar),
  ``cjk_rc`` (matplotlib settings for Chinese text), reusable by other reports.

Shared templates live in ``templates/``: ``report_base.html`` (Jinja2 base with ``title``,
``subtitle``, ``synthetic`` banner and a ``content`` block) and ``report_base.css`` (A4 page,
page numbers, CJK fonts, tables, status badges).
"""

__all__: list[str] = []
