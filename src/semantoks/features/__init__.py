"""Per-scan feature tables: the one table format, connectivity and dynamics measures, the feature-set registry.

Modules are imported where used (numpy/pyarrow only at this level; nilearn inside the tangent fold).
"""
