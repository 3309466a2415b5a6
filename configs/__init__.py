"""Typed settings and the model manifest, read by every other package (imports none of them)."""

from configs.settings import Settings, load_settings, nested_override, parse_override

__all__ = ["Settings", "load_settings", "nested_override", "parse_override"]
