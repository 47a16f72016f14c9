"""The versioned model store: ``<store>/<model>/<version>/`` on any fsspec filesystem."""

from modelcore.store.layout import check_model_name, is_model_name, parse_version
from modelcore.store.store import ModelStore, open_store

__all__ = ["ModelStore", "check_model_name", "is_model_name", "open_store", "parse_version"]
