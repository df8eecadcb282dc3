"""Tests of multi-criteria site scoring (yizhangtu.scoring) and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod, Transformer
from typer.testing import CliRunner

from yizhangtu.errors import InputError, ValidationError
from yizhangtu.scoring import (
    ahp_constants,
    ahp_weights,
    build_demo_sites,
    count_within,
    distance_to_nearest,
    html_to_pdf,
    metric_epsg_for,
    normalise,
    parse_scoring_config,
    render_dossier_html,
    render_dossier_pdf,
    score_sites,
)

DATA = Path(__file__).parent / "data" / "scoring"
SHARED = Path(__file__).resolve().parents[2] / "shared"
CHAOYANG = SHARED / "data" / "boundaries" / "beijing_chaoyang_subdistricts_wgs84.geojson"


@pytest.fixture(scope="module")
def chaoyang() -> gpd.GeoDataFrame:
    if not CHAOYANG.exists():
        pytest.skip("../shared/data is not available")
    return gpd.read_file(CHAOYANG)


@pytest.fixture(scope="module")
def demo(chaoyang):
    return build_demo_sites(chaoyang)


@pytest.fixture(scope="module")
def demo_result(demo):
    return score_sites(demo.sites, demo.config, layers=demo.layers, tables=demo.tables)


# --------------------------------------------------------------------------------------------
# AHP: a textbook example with published priorities.
#
# Source: "Analytic hierarchy process – leader example", Wikipedia (en), the worked example
# built by the AHP article's editors from Saaty's method (choose a leader among Tom, Dick and
# Harry on Experience, Education, Charisma and Age). The same matrices are used as reference
# data by independent implementations, e.g. the Haskell package `hahp` (module
# HAHP.Sample.LeaderChoice) and several AHP test suites on GitHub.
# Published priorities of the criteria: Experience .547, Education .127, Charisma .270,
# Age .056; of the alternatives: Tom .358, Dick .493, Harry .149; local priorities per
# criterion as listed below. The article's figure for the criteria matrix reports CR = 0.044.
# Derivation of that CR here: λmax = 4.1184, CI = (4.1184 − 4)/3 = 0.0395, RI(4) = 0.90
# (Saaty 1980), CR = 0.0395/0.90 = 0.0439 ≈ 0.044.
# --------------------------------------------------------------------------------------------
LEADER_CRITERIA = [[1, 4, 3, 7], ["1/4", 1, "1/3", 3], ["1/3", 3, 1, 5], ["1/7", "1/3", "1/5", 1]]
LEADER_LOCAL = {
    "Experience": ([[1, "1/4", 4], [4, 1, 9], ["1/4", "1/9", 1]], (0.217, 0.717, 0.066)),
    "Education": ([[1, 3, "1/5"], ["1/3", 1, "1/7"], [5, 7, 1]], (0.188, 0.081, 0.731)),
    "Charisma": ([[1, 5, 9], ["1/5", 1, 4], ["1/9", "1/4", 1]], (0.743, 0.194, 0.063)),
    "Age": ([[1, "1/3", 5], [3, 1, 9], ["1/5", "1/9", 1]], (0.265, 0.672, 0.063)),
}


def test_ahp_reproduces_published_leader_example():
    names = ["Experience", "Education", "Charisma", "Age"]
    res = ahp_weights(LEADER_CRITERIA, names)
    np.testing.assert_allclose(res.weights, [0.547, 0.127, 0.270, 0.056], atol=6e-4)
    assert res.cr == pytest.approx(0.044, abs=6e-4)
    assert res.lambda_max == pytest.approx(4.118, abs=1e-3)
    assert res.ri == 0.90 and res.consistent
    assert sum(res.weights) == pytest.approx(1.0)
    local = np.array([ahp_weights(m).weights for m, _ in LEADER_LOCAL.values()])
    for row, (_, published) in zip(local, LEADER_LOCAL.values(), strict=True):
        np.testing.assert_allclose(row, published, atol=6e-4)
    overall = np.array(res.weights) @ local
    np.testing.assert_allclose(overall, [0.358, 0.493, 0.149], atol=6e-4)


def test_ahp_constants_are_saaty_table():
    c = ahp_constants()
    assert c.random_index[3] == 0.58 and c.random_index[4] == 0.90 and c.random_index[10] == 1.49
    assert c.max_cr == 0.10
    assert "Saaty" in c.ri_source


def test_ahp_consistent_matrix_has_zero_cr():
    w = np.array([0.5, 0.3, 0.2])
    res = ahp_weights(w[:, None] / w[None, :])
    np.testing.assert_allclose(res.weights, w)
    assert res.cr == pytest.approx(0.0, abs=1e-9)


def test_ahp_refuses_inconsistent_matrix_and_names_the_judgement():
    # Consistent weights 8:4:2:1, then one judgement reversed: a over b becomes 1/6.
    w = np.array([8.0, 4.0, 2.0, 1.0])
    a = w[:, None] / w[None, :]
    a[0, 1], a[1, 0] = 1 / 6, 6
    with pytest.raises(ValidationError) as ei:
        ahp_weights(a, ["交通便捷性", "公共设施改善需求", "可实施性", "其他"])
    e = ei.value
    assert e.key == "ahp_inconsistent"
    assert "CR" in e.message and "0.10" in e.message
    # The reversed pair is named first.
    assert e.data["most_inconsistent"][0]["row"] == "公共设施改善需求"
    assert e.data["most_inconsistent"][0]["col"] == "交通便捷性"
    assert "「公共设施改善需求」相对「交通便捷性」判断为 6" in e.message
    assert e.data["cr"] > 0.1
    # Not enforced: result returned, flagged.
    assert not ahp_weights(a, enforce=False).consistent


def test_ahp_rejects_non_reciprocal_matrix():
    with pytest.raises(ValidationError) as ei:
        ahp_weights([[1, 3, 2], [3, 1, 1], ["1/2", 1, 1]], ["甲", "乙", "丙"])
    assert ei.value.key == "ahp_not_reciprocal"
    assert "互反" in ei.value.message and "「甲」对「乙」" in ei.value.message


def test_ahp_rejects_zero():
    with pytest.raises(ValidationError) as ei:
        ahp_weights([[1, 0], [0, 1]], ["甲", "乙"])
    assert ei.value.key == "ahp_zero"
    assert "不能为 0" in (ei.value.hint or "")


def test_ahp_rejects_non_square_and_text():
    with pytest.raises(ValidationError) as ei:
        ahp_weights([[1, 2], [0.5]])
    assert ei.value.key == "ahp_not_square"
    with pytest.raises(InputError) as ei2:
        ahp_weights([[1, "很重要"], [1, 1]])
    assert ei2.value.key == "ahp_not_number"


# --------------------------------------------------------------------------------------------
# TOPSIS and weighted sum on a hand-computed example (tests/data/scoring/hand_example.yaml).
#
#   site  c1 (benefit)  c2 (cost)      weights 0.6 / 0.4
#   A1    3             8
#   A2    4             6
#   A3    0             0
# Vector normalisation: ‖c1‖ = sqrt(9+16+0) = 5 → r1 = .6, .8, 0
#                       ‖c2‖ = sqrt(64+36+0) = 10 → r2 = .8, .6, 0
# Weighted: v1 = .36, .48, 0;  v2 = .32, .24, 0
# Ideal A+ = (max v1, min v2) = (.48, 0);  anti-ideal A− = (min v1, max v2) = (0, .32)
# A1: D+ = sqrt(.12² + .32²) = sqrt(.1168) = .341760;  D− = sqrt(.36² + 0²) = .36
#     C = .36 / (.341760 + .36) = .36 / .701760 = .512996
# A2: D+ = sqrt(0 + .24²) = .24;  D− = sqrt(.48² + .08²) = sqrt(.2368) = .486621
#     C = .486621 / .726621 = .669704
# A3: D+ = sqrt(.48² + 0) = .48;  D− = sqrt(0 + .32²) = .32;  C = .32 / .80 = .4
# Ranking: A2 (.6697) > A1 (.5130) > A3 (.4000).
# Weighted sum on min-max: c1 → .75, 1, 0; c2 (cost, (max − x)/(max − min)) → 0, .25, 1
#   A1 = .6·.75 + .4·0 = .45;  A2 = .6 + .1 = .70;  A3 = 0 + .4 = .40 → A2 > A1 > A3.
# --------------------------------------------------------------------------------------------
def _hand_config():
    import yaml

    return parse_scoring_config(
        yaml.safe_load((DATA / "hand_example.yaml").read_text(encoding="utf-8"))
    )


def _hand_sites():
    return pd.read_csv(DATA / "hand_example_sites.csv")


def test_topsis_hand_example():
    res = score_sites(_hand_sites(), _hand_config())
    assert res.method == "topsis"
    got = res.table["score"].to_dict()
    assert got["A1"] == pytest.approx(0.36 / (np.sqrt(0.1168) + 0.36), abs=1e-9)
    assert got["A1"] == pytest.approx(0.512996, abs=1e-6)
    assert got["A2"] == pytest.approx(0.669704, abs=1e-6)
    assert got["A3"] == pytest.approx(0.4, abs=1e-12)
    assert res.table["rank"].to_dict() == {"A2": 1, "A1": 2, "A3": 3}
    assert list(res.table.index) == ["A2", "A1", "A3"]


def test_weighted_sum_hand_example():
    res = score_sites(_hand_sites(), _hand_config(), method="weighted")
    got = res.table["score"].to_dict()
    assert got == pytest.approx({"A1": 0.45, "A2": 0.70, "A3": 0.40})
    assert res.normalised.loc["A1"].tolist() == pytest.approx([0.75, 0.0])
    assert res.contributions.loc["A2"].tolist() == pytest.approx([0.6, 0.1])


def test_normalisations():
    x = pd.Series([1.0, 2.0, 4.0], index=["a", "b", "c"])
    assert normalise(x, "cost", "minmax").tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    z = normalise(x, "benefit", "zscore")
    assert z.mean() == pytest.approx(0.0) and z.std(ddof=0) == pytest.approx(1.0)
    assert normalise(x, "cost", "rank").tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert normalise(pd.Series([5.0, 5.0]), "benefit", "minmax").tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------------------------
# Sensitivity: three sites on two criteria, weights 0.52 / 0.48, min-max values
#   P (1, 0) → .52;  Q (0, 1) → .48;  R (.5, .5) → .50   → ranks P 1, R 2, Q 3.
# w1 −10% → (.468, .48)/.948 = (.4937, .5063): P .4937, R .5, Q .5063 → Q 1, R 2, P 3.
# w2 +10% → (.52, .528)/1.048: P .4962, R .5, Q .5038 → ranks change the same way.
# w1 +10% and w2 −10% keep the base order. R keeps rank 2 under every change; P and Q do not.
# --------------------------------------------------------------------------------------------
def test_sensitivity_flags_sites_whose_rank_changes():
    sites = pd.DataFrame({"site_id": ["P", "Q", "R"], "x": [10.0, 0.0, 5.0], "y": [0.0, 10.0, 5.0]})
    cfg = parse_scoring_config(
        {
            "criteria": [
                {"name": "x", "label": "甲", "source": {"kind": "field", "field": "x"}},
                {"name": "y", "label": "乙", "source": {"kind": "field", "field": "y"}},
            ],
            "weights": {"direct": {"x": 0.52, "y": 0.48}},
        }
    )
    res = score_sites(sites, cfg)
    assert res.table["rank"].to_dict() == {"P": 1, "R": 2, "Q": 3}
    assert res.table["rank_stable"].to_dict() == {"P": False, "Q": False, "R": True}
    s = res.sensitivity
    assert set(s["change"]) == {"+10%", "-10%"}
    assert len(s) == 2 * 2 * 3
    row = s[(s.criterion == "x") & (s.change == "-10%") & (s.site_id == "P")].iloc[0]
    assert row.new_rank == 3 and not row.rank_kept
    assert row.weight == pytest.approx(0.468 / 0.948)
    kept = s[(s.criterion == "x") & (s.change == "+10%")]
    assert kept["rank_kept"].all()


# --------------------------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------------------------
def _simple_config(weights, source=None):
    return parse_scoring_config(
        {
            "criteria": [
                {"name": "x", "label": "甲", "source": source or {"kind": "field", "field": "x"}},
                {
                    "name": "y",
                    "label": "乙",
                    "direction": "cost",
                    "source": {"kind": "field", "field": "y"},
                },
            ],
            "weights": {"direct": weights},
        }
    )


def test_weights_not_summing_to_one_are_normalised_with_warning():
    sites = pd.DataFrame({"site_id": ["a", "b"], "x": [1.0, 2.0], "y": [3.0, 1.0]})
    res = score_sites(sites, _simple_config({"x": 3, "y": 1}))
    assert res.weights == pytest.approx({"x": 0.75, "y": 0.25})
    assert any("权重之和为 4" in w and "归一化" in w for w in res.warnings)
    quiet = score_sites(sites, _simple_config({"x": 0.75, "y": 0.25}))
    assert quiet.warnings == ()


def test_bad_weights_refused():
    sites = pd.DataFrame({"site_id": ["a", "b"], "x": [1.0, 2.0], "y": [3.0, 1.0]})
    with pytest.raises(ValidationError, match="没有权重"):
        score_sites(sites, _simple_config({"x": 1.0}))
    with pytest.raises(ValidationError, match="非负"):
        score_sites(sites, _simple_config({"x": -1.0, "y": 2.0}))
    with pytest.raises(ValidationError, match="全部为 0"):
        score_sites(sites, _simple_config({"x": 0, "y": 0}))


def test_criterion_with_no_values():
    sites = pd.DataFrame({"site_id": ["a", "b"], "x": [None, None], "y": [3.0, 1.0]})
    with pytest.raises(InputError) as ei:
        score_sites(sites, _simple_config({"x": 0.5, "y": 0.5}))
    assert ei.value.key == "criterion_no_values"
    assert "「甲」" in ei.value.message and "没有任何取值" in ei.value.message
    manual = _simple_config({"x": 0.5, "y": 0.5}, source={"kind": "manual", "values": {}})
    with pytest.raises(InputError, match="没有任何取值"):
        score_sites(sites.assign(x=1.0), manual)


def test_criterion_with_some_missing_values_names_sites():
    sites = pd.DataFrame({"site_id": ["a", "b", "c"], "x": [1.0, None, 2.0], "y": [3.0, 1.0, 2.0]})
    with pytest.raises(ValidationError) as ei:
        score_sites(sites, _simple_config({"x": 0.5, "y": 0.5}))
    assert ei.value.key == "criterion_missing_values" and ei.value.data["sites"] == ["b"]


def test_config_errors():
    with pytest.raises(ValidationError, match="类型未知"):
        parse_scoring_config(
            {"criteria": [{"name": "x", "source": {"kind": "magic"}}], "weights": {"x": 1}}
        )
    with pytest.raises(ValidationError, match="radius_m"):
        parse_scoring_config(
            {
                "criteria": [{"name": "x", "source": {"kind": "count_within", "layer": "l"}}],
                "weights": {"x": 1},
            }
        )
    with pytest.raises(ValidationError, match="未定义的准则"):
        parse_scoring_config(
            {
                "criteria": [{"name": "x", "source": {"kind": "field", "field": "x"}}],
                "weights": {"x": 1},
                "recommendation": {
                    "phases": [{"max_rank_fraction": 1, "phase": "近期"}],
                    "modes": [{"when": {"nope": {"min": 0.5}}, "mode": "m"}],
                },
            }
        )


def test_ahp_pairs_in_config_and_inconsistency_via_score_sites():
    import yaml

    raw = yaml.safe_load((DATA / "inconsistent_ahp.yaml").read_text(encoding="utf-8"))
    cfg = parse_scoring_config(raw)
    with pytest.raises(ValidationError) as ei:
        score_sites(_hand_sites(), cfg)
    assert ei.value.key == "ahp_inconsistent"
    assert "交通便捷性" in ei.value.message
    raw["weights"]["ahp"]["pairs"] = [["a", "b", 2], ["b", "c", "1/2"], ["a", "c", 1]]
    ok = score_sites(_hand_sites(), parse_scoring_config(raw))
    assert ok.ahp is not None and ok.ahp.cr == pytest.approx(0.0, abs=1e-9)
    assert ok.weights == pytest.approx({"a": 0.4, "b": 0.2, "c": 0.4})


# --------------------------------------------------------------------------------------------
# Spatial measures in the CGCS2000 Gauss–Krüger zone, checked against geodesic distances.
# --------------------------------------------------------------------------------------------
def test_spatial_measures_match_geodesic_distance():
    lon0, lat0 = 116.45, 39.92  # Chaoyang
    site = gpd.GeoDataFrame({"site_id": ["s"]}, geometry=[shapely.Point(lon0, lat0)], crs=4326)
    epsg = metric_epsg_for(site)
    assert epsg == 4548  # CGCS2000 / 3-degree GK CM 117E
    geod = Geod(ellps="GRS80")
    # Targets at geodesic distances 500, 900 and 2000 m, bearings 30°, 200°, 95°.
    pts = []
    for az, d in ((30, 500.0), (200, 900.0), (95, 2000.0)):
        lon, lat, _ = geod.fwd(lon0, lat0, az, d)
        pts.append(shapely.Point(lon, lat))
    targets = gpd.GeoDataFrame({"id": [1, 2, 3]}, geometry=pts, crs=4326)
    d = distance_to_nearest(site, targets)
    assert d[0] == pytest.approx(500.0, rel=1e-4)
    assert count_within(site, targets, 800).tolist() == [1.0]
    assert count_within(site, targets, 1000).tolist() == [2.0]
    assert count_within(site, targets, 2500).tolist() == [3.0]
    # A projected input (GK) gives the same answer.
    tr = Transformer.from_crs(4326, 4548, always_xy=True)
    x, y = tr.transform(lon0, lat0)
    site_gk = gpd.GeoDataFrame({"site_id": ["s"]}, geometry=[shapely.Point(x, y)], crs=4548)
    assert distance_to_nearest(site_gk, targets)[0] == pytest.approx(500.0, rel=1e-4)


def test_layer_field_and_table_sources(chaoyang):
    # Sites at the label points of two real streets, valued by a street field.
    two = chaoyang[chaoyang["name"].isin(["望京街道", "双井街道"])].copy()
    two["score_field"] = [10.0, 20.0]
    sites = gpd.GeoDataFrame(
        {"site_id": ["w", "s"]},
        geometry=[shapely.Point(r.label_lon, r.label_lat) for r in two.itertuples()],
        crs=4326,
    )
    cfg = parse_scoring_config(
        {
            "criteria": [
                {
                    "name": "f",
                    "label": "街道字段",
                    "source": {"kind": "layer_field", "layer": "streets", "field": "score_field"},
                },
                {
                    "name": "t",
                    "label": "表",
                    "source": {"kind": "table", "table": "tab", "field": "v"},
                },
            ],
            "weights": {"f": 0.5, "t": 0.5},
        }
    )
    res = score_sites(
        sites,
        cfg,
        layers={"streets": two},
        tables={"tab": pd.DataFrame({"site_id": ["s", "w"], "v": [1.0, 2.0]})},
    )
    assert res.raw.loc["w"].tolist() == [10.0, 2.0]
    assert res.raw.loc["s"].tolist() == [20.0, 1.0]


# --------------------------------------------------------------------------------------------
# Demo: 10 synthetic micro-centres inside real Chaoyang streets, scored on 002's criteria.
# --------------------------------------------------------------------------------------------
def test_demo_sites_inside_real_streets(demo, chaoyang):
    s = demo.sites
    assert len(s) == 10 and s["synthetic"].all()
    assert s["name"].str.contains("合成").all()
    streets = chaoyang.set_index("name").geometry
    for r in s.itertuples():
        assert streets[r.street_name].contains(r.geometry), r.site_id
    assert [c.label for c in demo.config.criteria] == ["交通便捷性", "公共设施改善需求", "可实施性"]
    assert demo.config.synthetic and "合成数据" in demo.config.title
    assert demo.layers["transit_stops"]["synthetic"].all()


def test_demo_scoring_ranks_and_phases(demo_result):
    t = demo_result.table
    assert sorted(t["rank"]) == list(range(1, 11))
    assert demo_result.ahp is not None and demo_result.ahp.cr < 0.1
    assert demo_result.metric_epsg == 4548
    # Rank bands from data: 1–3 近期, 4–7 中期, 8–10 远期.
    phase = dict(zip(t["rank"], t["phase"], strict=True))
    assert [phase[r] for r in range(1, 11)] == ["近期"] * 3 + ["中期"] * 4 + ["远期"] * 3
    assert t["mode"].ne("").all()
    # Transport convenience is a count of stops within 800 m (computed, not typed).
    assert (demo_result.raw["transport"] >= 3).all()
    d = demo_result.to_dict()
    assert d["synthetic"] and len(d["sites"]) == 10
    json.dumps(d, ensure_ascii=False)


def test_dossier_html_and_pdf(demo, demo_result, chaoyang):
    best = demo_result.table.index[0]
    html = render_dossier_html(
        demo_result, [best], sites=demo.sites, boundaries=chaoyang, layers=demo.layers
    )
    name = demo_result.table.loc[best, "name"]
    assert f"一站一策一档 — {name}" in html
    assert "合成数据" in html and "data:image/png;base64," in html
    for label in (
        "交通便捷性",
        "公共设施改善需求",
        "可实施性",
        "推荐实施时序",
        "推荐实施模式",
        "CR =",
    ):
        assert label in html
    assert '<span class="big">1</span> / 10' in html
    pdf, pages = render_dossier_pdf(
        demo_result, [best], sites=demo.sites, boundaries=chaoyang, layers=demo.layers
    )
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000 and pages >= 1


def test_html_to_pdf_renders_chinese():
    pdf, pages = html_to_pdf(
        '<html><body style="font-family: Noto Sans CJK SC">一站一档</body></html>'
    )
    assert pdf[:5] == b"%PDF-" and pages == 1


# --------------------------------------------------------------------------------------------
# CLI (files, not the store).
# --------------------------------------------------------------------------------------------
def test_cli_demo_run_and_dossier(tmp_path, chaoyang):
    from yizhangtu.cli.scoring import score_app

    runner = CliRunner()
    r = runner.invoke(
        score_app, ["demo", "--boundaries", str(CHAOYANG), "--out", str(tmp_path), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["synthetic"] is True
    out = tmp_path / "dossiers"
    r = runner.invoke(
        score_app,
        [
            "run",
            str(tmp_path / "config.yaml"),
            "--json",
            "--dossier",
            str(out),
            "--site",
            "S06",
            "--format",
            "html",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert len(d["sites"]) == 10 and d["method"] == "weighted"
    assert (
        len(d["dossiers"]) == 1
        and Path(d["dossiers"][0]).read_text(encoding="utf-8").count("一站一策一档") >= 1
    )
    r = runner.invoke(
        score_app, ["run", str(tmp_path / "config.yaml"), "--method", "topsis", "--json"]
    )
    assert r.exit_code == 0 and json.loads(r.output)["method"] == "topsis"


def test_cli_hand_example_and_errors():
    from yizhangtu.cli.scoring import score_app

    runner = CliRunner()
    r = runner.invoke(score_app, ["run", str(DATA / "hand_example.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    ranks = {s["site_id"]: s["rank"] for s in json.loads(r.output)["sites"]}
    assert ranks == {"A2": 1, "A1": 2, "A3": 3}
    r = runner.invoke(score_app, ["ahp", str(DATA / "inconsistent_ahp.yaml")])
    assert isinstance(r.exception, ValidationError) and r.exception.key == "ahp_inconsistent"
    r = runner.invoke(
        score_app, ["run", str(DATA / "hand_example.yaml"), "--dossier", "x", "--format", "doc"]
    )
    assert isinstance(r.exception, InputError)
