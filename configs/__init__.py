"""Typed settings and the model manifest, read by every other package (imports none of them)."""

from importlib.metadata import PackageNotFoundError, version

from configs.settings import Settings, load_settings, nested_override, parse_override


def package_version() -> str:
    """The installed distribution's version (pyproject's, once installed; a bare checkout has none)."""
    try:
        return version("vestis")
    except PackageNotFoundError:
        return "0+unknown"


__all__ = ["Settings", "load_settings", "nested_override", "package_version", "parse_override"]
