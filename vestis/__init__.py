"""Vestis: structured, searchable descriptions of what people wear in videos and photos."""

__version__ = "0.1.0"
