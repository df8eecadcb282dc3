"""Land-use code tables as data (地类代码表), crosswalks and groups.

Code systems (``list_systems()``):

- ``gbt21010-2017``: GB/T 21010-2017 土地利用现状分类 (12 + 73 classes);
- ``sandiao``: 第三次全国国土调查工作分类 (merged classes 00, 05H1, 08H1, 08H2 …, plus
  K/A codes such as 0201K, 1104A);
- ``sandiao-czcsxm``: 三调城镇村属性码 (201 城市 … 205 特殊用地; to be verified);
- ``landsea-2023``: 用地用海分类指南 2023;
- ``landsea-2020``: the 2020 trial version, derived from 2023 + the change list.

Example
-------
>>> import pandas as pd
>>> from yizhangtu import codes
>>> codes.load_table("sandiao").level1("0603")
'00'
>>> codes.classify(pd.Series(["0701", "0701"]), system="sandiao",
...                group="urban_rural_construction", czcsxm=pd.Series(["201", None])).tolist()
['城乡建设用地', '非城乡建设用地']
"""

from __future__ import annotations

from yizhangtu.codes.changes import convert_landsea_2020_to_2023, landsea_changes
from yizhangtu.codes.crosswalk import CROSSWALK_PAIRS, crosswalk, map_codes
from yizhangtu.codes.groups import (
    LEVEL_GROUPS,
    GroupSet,
    classify,
    list_group_sets,
    load_groups,
)
from yizhangtu.codes.tables import (
    Code,
    CodeTable,
    list_systems,
    load_table,
    normalize_code,
    normalize_codes,
    unknown_codes,
)

__all__ = [
    "CROSSWALK_PAIRS",
    "LEVEL_GROUPS",
    "Code",
    "CodeTable",
    "GroupSet",
    "classify",
    "convert_landsea_2020_to_2023",
    "crosswalk",
    "landsea_changes",
    "list_group_sets",
    "list_systems",
    "load_groups",
    "load_table",
    "map_codes",
    "normalize_code",
    "normalize_codes",
    "unknown_codes",
]
