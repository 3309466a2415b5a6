"""Vestis: structured, searchable descriptions of what people wear in videos and photos.

The Python API (vestis/api.py): `vestis.ingest(paths, ...)`, `vestis.search("red dress", ...)`,
`vestis.open_store(...)`; loaded on first use, so `import vestis` stays light.
"""

from typing import Any

from configs import package_version

__version__ = package_version()
__all__ = ["__version__", "ingest", "open_store", "search", "settings_for"]


def __getattr__(name: str) -> Any:
    if name in ("ingest", "open_store", "search", "settings_for"):
        from vestis import api

        return getattr(api, name)
    raise AttributeError(f"module 'vestis' has no attribute {name!r}")
