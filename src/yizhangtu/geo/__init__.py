"""Geometry helpers: CRS handling, ellipsoidal areas, GCJ-02/BD-09 offsets, clean coverages."""
