"""Datasets: the unified on-disk format (:mod:`.unified`), adapters for RELLIS-3D, RUGD and
GOOSE (:mod:`.adapters`, tables in :mod:`.mappings`), conversion (:mod:`.convert`), merging
(:mod:`.merge`) and the ``offroad data`` commands (:mod:`.commands`)."""
