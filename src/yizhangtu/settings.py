"""Runtime settings, read from the environment with the prefix ``YIZHANGTU_``."""

from __future__ import annotations

import getpass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


class Settings(BaseSettings):
    """Settings for one process.

    Attributes
    ----------
    workspace : str
        GeoPackage path or ``postgresql://`` URI of the workspace.
    actor : str
        Who is acting; recorded in the audit trail.
    storage_crs : str
        CRS in which layers are stored. Areas never depend on it.
    import_chunk_size : int
        Features per chunk when streaming a large import.
    secret_key : str | None
        Key for encrypting personal data and signing sessions. Never in the repo.
    """

    model_config = SettingsConfigDict(env_prefix="YIZHANGTU_", extra="ignore")

    workspace: str = "yizhangtu.gpkg"
    actor: str = Field(default_factory=_default_actor)
    storage_crs: str = "EPSG:4490"
    import_chunk_size: int = 50_000
    secret_key: str | None = None
    sliver_area_m2: float = 1.0
    workers: int = 0


def get_settings(**overrides: object) -> Settings:
    """Read settings now (never at import), with explicit overrides."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
