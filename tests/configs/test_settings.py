"""Settings: bundled defaults < YAML file < VESTIS_* environment < CLI overrides, all validated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from configs.settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings, parse_override


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("VESTIS_"):
            monkeypatch.delenv(name)


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_defaults_load_and_match_the_bundled_yaml():
    settings = load_settings()
    bundled = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert settings.data_dir == Path(bundled["data_dir"]) == Path("vestis-data")
    assert settings.sampling.fps == 1.0
    assert settings.sampling.shot_threshold == 0.4
    assert settings.sampling.max_side == 1280
    assert settings.sampling.segment_seconds == 60
    assert settings.sampling.thumbnail_side == 640
    assert settings.store.elasticsearch_url is None and settings.store.index_prefix == "vestis"
    assert settings.cluster.scheduler is None and settings.cluster.workers is None
    assert settings.cluster.threads_per_worker == 1 and settings.cluster.gpu == "auto"
    assert settings.vision.stages == ["person_detection", "garments", "face_expression"] and settings.vision.batch_size == 8
    # every bundled key is a real setting (a typo in default.yaml would raise above)
    for section, values in bundled.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert hasattr(getattr(settings, section), key)


def test_precedence_yaml_env_cli(tmp_path, monkeypatch):
    config = write_yaml(tmp_path / "vestis.yaml", {"sampling": {"fps": 3, "max_side": 500}, "data_dir": "/from/yaml"})
    settings = load_settings(config)
    assert settings.sampling.fps == 3.0 and settings.sampling.max_side == 500
    assert settings.data_dir == Path("/from/yaml")
    assert settings.sampling.shot_threshold == 0.4  # untouched defaults survive a partial section

    monkeypatch.setenv("VESTIS_SAMPLING__FPS", "4")
    settings = load_settings(config)
    assert settings.sampling.fps == 4.0
    assert settings.sampling.max_side == 500  # env replaces one key, not the YAML's whole section

    settings = load_settings(config, [parse_override("sampling.fps=5")])
    assert settings.sampling.fps == 5.0 and settings.sampling.max_side == 500
    assert settings.data_dir == Path("/from/yaml")

    monkeypatch.setenv("VESTIS_DATA_DIR", "/from/env")
    settings = load_settings(config, [{"data_dir": "/from/cli"}])
    assert settings.data_dir == Path("/from/cli")
    assert load_settings(config).data_dir == Path("/from/env")


def test_config_file_from_environment(tmp_path, monkeypatch):
    config = write_yaml(tmp_path / "env.yaml", {"cluster": {"gpu": "off", "workers": 3}})
    monkeypatch.setenv("VESTIS_CONFIG", str(config))
    settings = load_settings()
    assert settings.cluster.gpu == "off" and settings.cluster.workers == 3
    other = write_yaml(tmp_path / "explicit.yaml", {"cluster": {"workers": 5}})
    assert load_settings(other).cluster.workers == 5  # an explicit file wins over VESTIS_CONFIG


def test_gpu_off_in_a_yaml_file(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text("cluster:\n  gpu: off\n")
    assert load_settings(config).cluster.gpu == "off"
    config.write_text("cluster:\n  gpu: require\n")
    assert load_settings(config).cluster.gpu == "require"
    config.write_text("cluster:\n  gpu: on\n")
    with pytest.raises(ConfigError, match="cluster.gpu"):
        load_settings(config)


def test_env_list_value(monkeypatch):
    monkeypatch.setenv("VESTIS_VISION__STAGES", '["pass_through", "person_detection"]')
    assert load_settings().vision.stages == ["pass_through", "person_detection"]


def test_later_overrides_win_and_merge():
    settings = load_settings(None, [
        parse_override("sampling.fps=2"), parse_override("sampling.max_side=320"), parse_override("sampling.fps=7.5"),
    ])
    assert settings.sampling.fps == 7.5 and settings.sampling.max_side == 320


@pytest.mark.parametrize(
    ("source", "setting"),
    [
        ("yaml", "sampling.fpz"),
        ("cli", "sampling.fpz"),
        ("yaml", "samplng"),
        ("cli", "samplng"),
        ("env", "sampling.fpz"),
    ],
)
def test_unknown_key_names_the_setting(tmp_path, monkeypatch, source, setting):
    section, _, key = setting.partition(".")
    nested = {section: {key: 2}} if key else {section: 2}
    with pytest.raises(ConfigError) as info:
        if source == "yaml":
            load_settings(write_yaml(tmp_path / "bad.yaml", nested))
        elif source == "env":
            monkeypatch.setenv("VESTIS_" + setting.upper().replace(".", "__"), "2")
            load_settings()
        else:
            load_settings(None, [parse_override(f"{setting}=2")])
    assert setting in str(info.value)


@pytest.mark.parametrize(
    ("source", "setting", "value"),
    [
        ("cli", "sampling.fps", "abc"),
        ("env", "sampling.fps", "abc"),
        ("yaml", "sampling.fps", "abc"),
        ("cli", "sampling.fps", "0"),        # must be > 0
        ("cli", "sampling.max_side", "10"),  # below the minimum
        ("cli", "cluster.gpu", "maybe"),
        ("cli", "cluster.workers", "0"),
        ("cli", "vision.stages", "7"),
    ],
)
def test_bad_value_names_the_setting(tmp_path, monkeypatch, source, setting, value):
    section, _, key = setting.partition(".")
    with pytest.raises(ConfigError) as info:
        if source == "yaml":
            load_settings(write_yaml(tmp_path / "bad.yaml", {section: {key: value}}))
        elif source == "env":
            monkeypatch.setenv(f"VESTIS_{section.upper()}__{key.upper()}", value)
            load_settings()
        else:
            load_settings(None, [parse_override(f"{setting}={value}")])
    assert setting in str(info.value)


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("sampling: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings(empty).sampling.fps == 1.0


def test_parse_override():
    assert parse_override("sampling.fps=2") == {"sampling": {"fps": 2}}
    assert parse_override("sampling.fps=2.5") == {"sampling": {"fps": 2.5}}
    assert parse_override(" data_dir = /tmp/x ") == {"data_dir": "/tmp/x"}
    assert parse_override("vision.stages=[pass_through, person_detection]") == {
        "vision": {"stages": ["pass_through", "person_detection"]}
    }
    assert parse_override("store.elasticsearch_url=") == {"store": {"elasticsearch_url": None}}
    assert parse_override("store.elasticsearch_url=http://es:9200/?a=b") == {
        "store": {"elasticsearch_url": "http://es:9200/?a=b"}
    }
    assert load_settings(None, [parse_override("cluster.gpu=off")]).cluster.gpu == "off"  # YAML reads off as false
    for bad in ["sampling.fps", "=2", "", " =x"]:
        with pytest.raises(ConfigError, match="section.key=value"):
            parse_override(bad)
    with pytest.raises(ConfigError, match="vision.stages"):
        parse_override("vision.stages=[unclosed")


def test_from_dict_round_trip_ignores_worker_environment(monkeypatch):
    settings = load_settings(None, [parse_override("sampling.fps=3"), {"data_dir": "/data/here"}])
    values = settings.model_dump(mode="json")
    monkeypatch.setenv("VESTIS_SAMPLING__FPS", "9")
    rebuilt = Settings.from_dict(values)
    assert rebuilt.sampling.fps == 3.0 and rebuilt.data_dir == Path("/data/here")
    assert rebuilt == settings
