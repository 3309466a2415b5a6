"""Vestis: structured, searchable descriptions of what people wear in videos and photos."""

from configs import package_version

__version__ = package_version()
