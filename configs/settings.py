"""Settings: defaults < YAML file < VESTIS_* environment < CLI overrides, validated by pydantic."""

from __future__ import annotations

import difflib
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Section):
    elasticsearch_url: str | None = None
    elasticsearch_api_key: SecretStr | None = None  # VESTIS_STORE__ELASTICSEARCH_API_KEY keeps it out of files
    index_prefix: str = Field("vestis", pattern=r"^[a-z0-9][a-z0-9_.-]*$")  # index names are lower case


class SamplingSettings(_Section):
    fps: float = Field(1.0, gt=0, le=120)
    shot_threshold: float = Field(0.4, gt=0, le=1)
    max_side: int = Field(1280, ge=64, le=8192)
    segment_seconds: float = Field(60.0, gt=0)
    thumbnail_side: int = Field(640, ge=32, le=4096)


class ClusterSettings(_Section):
    scheduler: str | None = None
    workers: int | None = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    gpu: Literal["auto", "require", "off"] = "auto"

    @field_validator("gpu", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` (in a config file or --set cluster.gpu=off) as false.
        return "off" if value is False else value


class PersonDetectionSettings(_Section):
    # Class-aware confidence (objectness x P(person)) a box needs to become a Person.
    confidence_threshold: float = Field(0.25, gt=0, le=1)
    nms_iou: float = Field(0.45, gt=0, le=1)
    # A second pass sees the frame shrunk into a canvas this many times larger (grey around it):
    # people who fill the frame score under the threshold at full size and well above it so.
    # 1 turns the second pass off.
    zoom_out: float = Field(1.6, ge=1, le=4)
    # Images per network call. None: 1 on CPU (batch 8 is 1.3-1.6x slower per image there: the large
    # early layers of eight images no longer fit in the cache), vision.batch_size on a GPU.
    batch_size: int | None = Field(None, ge=1, le=1024)


class VisionSettings(_Section):
    stages: list[str] = ["person_detection", "garments", "face_expression"]
    device: str = "auto"
    batch_size: int = Field(8, ge=1, le=1024)
    person_detection: PersonDetectionSettings = PersonDetectionSettings()


class ModelSettings(_Section):
    cache_dir: Path = Path("~/.cache/vestis/models")
    manifest: Path | None = None  # a user manifest replacing configs/models.yaml


class SearchSettings(_Section):
    # Manifest record of the text model that maps words outside the vocabulary by meaning; empty or
    # null: exact words and synonyms only, and a search loads no torch.
    text_model: str | None = "minilm-l6-v2"

    @field_validator("text_model")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class ReviewSettings(_Section):
    # reviewer name -> token; the review page's writes need one (Authorization: Bearer <token>). Better
    # set as VESTIS_REVIEW__REVIEWERS='{"alice": "..."}' than in a file. Empty: review is read-only.
    reviewers: dict[str, SecretStr] = {}

    @field_validator("reviewers")
    @classmethod
    def _names_and_tokens(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, token in value.items():
            if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"reviewer name {name!r}: use letters, digits, '-', '_' or '.'")
            if len(token.get_secret_value()) < 8:
                raise ValueError(f"the token of reviewer {name!r} is shorter than 8 characters")
        return value


class ServerSettings(_Section):
    # Origins (scheme://host[:port], as browsers send them in `Origin`) whose pages may call the API
    # from a browser. Empty: none; the app's own pages are same-origin and need no entry.
    cors_origins: list[str] = []
    # Host names (the Host header, without the port) the server answers to; anything else gets 400.
    # Localhost names only by default: a page of another site that rebinds its own DNS name to
    # 127.0.0.1 then still sends its own name and is refused. Serving on a network: add the server's
    # names ("*.example.org" matches subdomains; "*" turns the check off).
    trusted_hosts: list[str] = ["localhost", "127.0.0.1", "[::1]"]
    # Seconds a client may take to send a request's headers, and its body; then the connection is
    # closed (headers) or answered 408 (body). A slow or stalled client holds one descriptor that long.
    request_timeout: float = Field(10.0, gt=0, le=600)
    keep_alive_timeout: int = Field(5, ge=1, le=600)  # an idle kept-alive connection is closed after this
    max_connections: int = Field(512, ge=8, le=100_000)  # more at once are answered 503

    @field_validator("trusted_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if host != "*" and not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", host):
                raise ValueError(f"trusted host {host!r}: write a host name or address without scheme or port "
                                 "(an IPv6 address in brackets), '*.domain' for its subdomains, or '*' for any")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?",
                                origin):
                raise ValueError(f"CORS origin {origin!r}: write scheme://host[:port], without a path or a "
                                 "trailing slash ('*' is not allowed: name each origin)")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VESTIS_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("vestis-data")
    store: StoreSettings = StoreSettings()
    sampling: SamplingSettings = SamplingSettings()
    cluster: ClusterSettings = ClusterSettings()
    vision: VisionSettings = VisionSettings()
    models: ModelSettings = ModelSettings()
    search: SearchSettings = SearchSettings()
    review: ReviewSettings = ReviewSettings()
    server: ServerSettings = ServerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Later sources lose: CLI (init) beats environment beats YAML.
        return init_settings, env_settings, InitSettingsSource(settings_cls, _yaml_values.get())

    def shipped(self) -> dict[str, Any]:
        """Plain values for another process (a Dask worker), with the secrets it needs: model_dump
        masks SecretStr. Review tokens stay behind: workers never need them."""
        values = self.model_dump(mode="json", exclude={"review"})
        key = self.store.elasticsearch_api_key
        values["store"]["elasticsearch_api_key"] = key.get_secret_value() if key else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Settings":
        """Rebuild settings shipped to a Dask worker, without reading the worker's environment."""
        return cls.model_validate(values)


_yaml_values: ContextVar[dict[str, Any]] = ContextVar("_yaml_values", default={})


class ConfigError(ValueError):
    """A setting is unknown or has a bad value; the message names it."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def nested_override(key: str, value: Any) -> dict[str, Any]:
    """Turn ("sampling.fps", 2) into {"sampling": {"fps": 2}}."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def parse_override(text: str) -> dict[str, Any]:
    """Turn `sampling.fps=2` into {"sampling": {"fps": 2}} (the value is parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"override {key.strip()}: value {raw!r} is not valid YAML ({problem})") from None
    return nested_override(key.strip(), value)


def _did_you_mean(error: Any) -> str:
    """For an unknown key, the closest known key of the same section (`sampling.fpz` -> `sampling.fps`)."""
    if error.get("type") != "extra_forbidden":
        return ""
    *section, key = [str(p) for p in error["loc"]]
    model: Any = Settings
    for part in section:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean {'.'.join([*section, close[0]])}?)" if close else ""


def load_settings(config_file: Path | str | None = None, overrides: list[dict[str, Any]] | None = None) -> Settings:
    """Build settings from the bundled defaults, a user YAML file, the environment and CLI overrides."""
    values = _read_yaml(DEFAULT_CONFIG)
    config_file = config_file or os.environ.get("VESTIS_CONFIG")
    if config_file:
        values = _deep_merge(values, _read_yaml(Path(config_file)))
    cli: dict[str, Any] = {}
    for override in overrides or []:
        cli = _deep_merge(cli, override)
    token = _yaml_values.set(values)
    try:
        return Settings(**cli)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}{_did_you_mean(err)}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    finally:
        _yaml_values.reset(token)
