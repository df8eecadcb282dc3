"""Land accounting (用地核算): overlay and tabulation of areas by class and unit.

Pure functions over GeoDataFrames; the PostGIS push-down takes a connection from the caller.
"""

from yizhangtu.accounting.engines.postgis_sql import postgis_tabulate, postgis_tabulate_sql
from yizhangtu.accounting.overlay import HOWS, overlay
from yizhangtu.accounting.tabulate import ENGINES, AreaTable, tabulate

__all__ = [
    "ENGINES",
    "HOWS",
    "AreaTable",
    "overlay",
    "postgis_tabulate",
    "postgis_tabulate_sql",
    "tabulate",
]
