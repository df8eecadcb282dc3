"""Settings of the web adapter (``YIZHANGTU_`` environment variables, read only by the CLI)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from yizhangtu.settings import Settings

__all__ = ["WebSettings", "web_settings"]


class WebSettings(Settings):
    """Everything :class:`~yizhangtu.settings.Settings` has, plus the web server's limits.

    Attributes
    ----------
    upload_max_bytes : int
        Largest upload accepted (413 above).
    upload_max_uncompressed_bytes, upload_max_ratio, upload_max_members
        Zip-bomb limits: total declared size, per-member compression ratio, member count.
    json_max_bytes : int
        Largest request body of any other route.
    session_ttl_seconds : int
        Session and bearer token lifetime.
    cookie_secure : bool | None
        Secure flag of the session cookie; None: set it when the request came over HTTPS.
    login_max_failures, login_window_seconds, login_tracked_keys
        Login throttling per (client address, user name).
    tile_cache_bytes, tile_max_zoom, tile_simplify_px
        Tile cache size, highest zoom, simplification in screen pixels.
    tile_full_attributes_zoom : int
        From this zoom on, tiles carry every attribute; below it only the catalogued code,
        id and jurisdiction fields.
    count_estimate_threshold : int
        Above this many features, numberMatched of a filtered query is estimated (or omitted).
    ogc_default_limit, ogc_max_limit
        Page sizes of ``/items``.
    reports_dir : str | None
        Report directory; default ``<workspace dir>/reports`` (GeoPackage) or ``./reports``.
    uploads_dir : str | None
        Checked uploads awaiting confirmation, shared by every server process of the workspace;
        default ``<workspace dir>/.yizhangtu-uploads`` or ``./.yizhangtu-uploads``.
    store_threads, job_workers
        Threads serving the store, and background job workers.
    diff_sync_max_features : int
        Largest snapshot pair compared inside a request (larger: a job).
    """

    model_config = SettingsConfigDict(env_prefix="YIZHANGTU_", extra="ignore")

    upload_max_bytes: int = 200 * 1024 * 1024
    upload_max_uncompressed_bytes: int = 2 * 1024 * 1024 * 1024
    upload_max_ratio: float = 100.0
    upload_max_members: int = 1000
    json_max_bytes: int = 2 * 1024 * 1024
    session_ttl_seconds: int = 8 * 3600
    cookie_secure: bool | None = None
    login_max_failures: int = 5
    login_window_seconds: int = 300
    login_tracked_keys: int = 10_000
    tile_cache_bytes: int = 64 * 1024 * 1024
    tile_max_zoom: int = 24
    tile_simplify_px: float = 1.0
    tile_full_attributes_zoom: int = 14
    count_estimate_threshold: int = 100_000
    ogc_default_limit: int = 10
    ogc_max_limit: int = 10_000
    reports_dir: str | None = None
    uploads_dir: str | None = None
    store_threads: int = 4
    job_workers: int = 2
    diff_sync_max_features: int = 200_000

    def reports_path(self) -> Path:
        """Return the report directory."""
        if self.reports_dir:
            return Path(self.reports_dir)
        if self.workspace.startswith(("postgresql://", "postgres://")):
            return Path.cwd() / "reports"
        return Path(self.workspace).resolve().parent / "reports"

    def uploads_path(self) -> Path:
        """Return the directory of checked uploads awaiting confirmation."""
        if self.uploads_dir:
            return Path(self.uploads_dir)
        if self.workspace.startswith(("postgresql://", "postgres://")):
            return Path.cwd() / ".yizhangtu-uploads"
        return Path(self.workspace).resolve().parent / ".yizhangtu-uploads"


def web_settings(settings: Settings | None) -> WebSettings:
    """Web settings from plain settings without reading the environment again."""
    if isinstance(settings, WebSettings):
        return settings
    if settings is None:
        return WebSettings()
    defaults = {
        name: f.get_default(call_default_factory=True)
        for name, f in WebSettings.model_fields.items()
        if name not in Settings.model_fields
    }
    return WebSettings.model_construct(**(defaults | settings.model_dump()))
