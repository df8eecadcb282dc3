"""Write a small synthetic roster (合成数据) for trying ``yizhangtu rights import`` by hand.

Run: .venv/bin/python tests/data/rights/make_sample.py — writes roster_sample.xlsx and
parcels_sample.geojson next to this script: five parcels in 虎门镇 (one shared, one holder
with two parcels, one holder 下落不明), checksum-valid synthetic IDs (GB 11643), three
consents and one signed agreement for unit DEMO-SAMPLE. Not real people or land.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
from openpyxl import Workbook
from shapely.geometry import box

from yizhangtu.rights.demo import synthetic_id_number

HERE = Path(__file__).resolve().parent
X0, Y0, D = 113.672, 22.815, 0.0006  # inside 虎门镇


def main() -> None:
    rng = np.random.default_rng(11)
    gpd.GeoDataFrame(
        {
            "parcel_code": [f"SAMPLE-P{i}" for i in range(1, 6)],
            "rights_type": [
                "集体经营性建设用地使用权",
                "宅基地使用权",
                "宅基地使用权",
                "国有建设用地使用权",
                "土地承包经营权",
            ],
            "registered_area_m2": [1200.0, 600.0, 400.0, 800.0, 1000.0],
            "certificate_no": [f"粤(2021)东莞市不动产权第{9000000 + i}号(合成)" for i in range(5)],
            "town": ["虎门镇"] * 5,
            "synthetic": [True] * 5,
        },
        geometry=[box(X0 + i * D, Y0, X0 + (i + 1) * D, Y0 + D) for i in range(5)],
        crs="EPSG:4326",
    ).to_file(HERE / "parcels_sample.geojson")
    wb = Workbook()
    wb.remove(wb.active)
    sheets = {
        "权益人": (
            ["权益人编号", "姓名或名称", "类型", "证件号码", "联系电话", "特殊情形", "备注"],
            [
                [
                    "S-H1",
                    "陈某一",
                    "个人",
                    synthetic_id_number(rng),
                    "13800001111",
                    "正常",
                    "合成数据",
                ],
                [
                    "S-H2",
                    "李某二",
                    "个人",
                    synthetic_id_number(rng),
                    "13800002222",
                    "正常",
                    "合成数据",
                ],
                ["S-H3", "黄某三", "个人", synthetic_id_number(rng), None, "下落不明", "合成数据"],
                [
                    "S-H4",
                    "张某四",
                    "个人",
                    synthetic_id_number(rng),
                    "13800004444",
                    "境外",
                    "合成数据",
                ],
            ],
        ),
        "权属份额": (
            ["宗地代码", "权益人编号", "份额"],
            [
                ["SAMPLE-P1", "S-H1", "1/2"],
                ["SAMPLE-P1", "S-H2", "1/2"],
                ["SAMPLE-P2", "S-H2", 1],
                ["SAMPLE-P3", "S-H2", 1],
                ["SAMPLE-P4", "S-H3", 1],
                ["SAMPLE-P5", "S-H4", 1],
            ],
        ),
        "意愿与签约": (
            [
                "记录编号",
                "权益人编号",
                "单元编号",
                "宗地代码",
                "类型",
                "日期",
                "凭证编号",
                "状态",
                "撤回日期",
                "特别程序",
            ],
            [
                [
                    "S-R1",
                    "S-H1",
                    "DEMO-SAMPLE",
                    None,
                    "意愿",
                    "2025-02-01",
                    "YY-001",
                    "有效",
                    None,
                    None,
                ],
                [
                    "S-R2",
                    "S-H2",
                    "DEMO-SAMPLE",
                    "SAMPLE-P2",
                    "意愿",
                    "2025-02-03",
                    "YY-002",
                    "有效",
                    None,
                    None,
                ],
                [
                    "S-R3",
                    "S-H4",
                    "DEMO-SAMPLE",
                    None,
                    "意愿",
                    "2025-02-05",
                    "YY-003",
                    "有效",
                    None,
                    "境外权益人签约及产权注销操作方法",
                ],
                [
                    "S-R4",
                    "S-H1",
                    "DEMO-SAMPLE",
                    None,
                    "签约",
                    "2025-05-10",
                    "XY-001",
                    "有效",
                    None,
                    None,
                ],
            ],
        ),
        "土地流转": (
            [
                "流转编号",
                "宗地代码",
                "流出方权益人编号",
                "流入方",
                "流转方式",
                "起始日期",
                "终止日期",
            ],
            [
                [
                    "S-T1",
                    "SAMPLE-P5",
                    "S-H4",
                    "合成数据·虎门农业合作社",
                    "出租",
                    "2020-01-01",
                    "2029-12-31",
                ],
            ],
        ),
    }
    for name, (head, rows) in sheets.items():
        ws = wb.create_sheet(name)
        ws.append(head)
        for r in rows:
            ws.append(r)
    wb.create_sheet("说明").append(["合成数据: 仅供试用 yizhangtu rights import, 不代表真实权益人"])
    wb.save(HERE / "roster_sample.xlsx")


if __name__ == "__main__":
    main()
