"""Typed settings and the model manifest, read by every other package (imports none of them)."""

from configs.settings import Settings, load_settings, parse_override

__all__ = ["Settings", "load_settings", "parse_override"]
