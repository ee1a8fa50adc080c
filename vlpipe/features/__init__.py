"""Feature stores (Zarr v3): one per (extractor, shard)."""

from vlpipe.features.store import ClipFeatures, FeatureStore, write_store

__all__ = ["ClipFeatures", "FeatureStore", "write_store"]
