"""Demo material: seeded synthetic land-survey parcels (合成数据) inside real boundaries."""

from yizhangtu.demo.synthetic import (
    CHANGE_LOG_COLUMNS,
    SCENARIOS,
    SURVEY_COLUMNS,
    construction_mask,
    default_shared_dir,
    evolve_survey,
    generate_benchmark,
    generate_survey,
    load_profile,
)

__all__ = [
    "CHANGE_LOG_COLUMNS",
    "SCENARIOS",
    "SURVEY_COLUMNS",
    "construction_mask",
    "default_shared_dir",
    "evolve_survey",
    "generate_benchmark",
    "generate_survey",
    "load_profile",
]
