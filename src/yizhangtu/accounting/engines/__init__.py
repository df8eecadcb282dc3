"""Interchangeable engines for overlay and tabulation: local processes, Dask, PostGIS push-down.

All engines measure areas in the same equal-area plane, so their results agree to floating
point noise (tests compare them to 1e-6 relative).
"""

__all__: list[str] = []
