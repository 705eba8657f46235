"""Datasets: the store (one LMDB file per dataset), access and splits (``access``), structure-set
builders, generation, info."""

from .info import dataset_info
from .store import DatasetStore, StoreError

__all__ = ["DatasetStore", "StoreError", "dataset_info"]
