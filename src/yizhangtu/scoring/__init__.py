"""Multi-criteria site scoring (站点综合评价, 一站一策一档).

Criteria with values from fields, tables, indicators, spatial measures or manual scores;
min-max / z-score / rank normalisation; weights set directly or by AHP (with consistency
check); weighted sum or TOPSIS; rank sensitivity to ±10% weight changes; phase and mode
recommendation by data rules; dossiers in HTML and PDF.
"""

from yizhangtu.scoring.ahp import (
    AHPResult,
    InconsistentJudgement,
    ahp_constants,
    ahp_matrix_from_pairs,
    ahp_weights,
    check_pairwise_matrix,
)
from yizhangtu.scoring.criteria import (
    Criterion,
    CriterionSource,
    RecommendationRules,
    ScoringConfig,
    WeightSpec,
    parse_recommendation_rules,
    parse_scoring_config,
)
from yizhangtu.scoring.demo import DemoScoring, build_demo_sites, demo_config_mapping
from yizhangtu.scoring.dossier import (
    html_to_pdf,
    render_dossier_html,
    render_dossier_pdf,
    site_map_png,
)
from yizhangtu.scoring.methods import (
    ScoringResult,
    default_recommendation_rules,
    rank_scores,
    recommend,
    resolve_weights,
    score_sites,
    sensitivity_analysis,
    topsis,
    weighted_sum,
)
from yizhangtu.scoring.normalize import normalise, normalise_frame
from yizhangtu.scoring.values import (
    count_within,
    criterion_values,
    distance_to_nearest,
    metric_epsg_for,
    raw_values,
)

__all__ = [
    "AHPResult",
    "Criterion",
    "CriterionSource",
    "DemoScoring",
    "InconsistentJudgement",
    "RecommendationRules",
    "ScoringConfig",
    "ScoringResult",
    "WeightSpec",
    "ahp_constants",
    "ahp_matrix_from_pairs",
    "ahp_weights",
    "build_demo_sites",
    "check_pairwise_matrix",
    "count_within",
    "criterion_values",
    "default_recommendation_rules",
    "demo_config_mapping",
    "distance_to_nearest",
    "html_to_pdf",
    "metric_epsg_for",
    "normalise",
    "normalise_frame",
    "parse_recommendation_rules",
    "parse_scoring_config",
    "rank_scores",
    "raw_values",
    "recommend",
    "render_dossier_html",
    "render_dossier_pdf",
    "resolve_weights",
    "score_sites",
    "sensitivity_analysis",
    "site_map_png",
    "topsis",
    "weighted_sum",
]
