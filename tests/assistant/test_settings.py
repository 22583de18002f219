from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.settings import Settings, load_settings


def test_defaults_bind_loopback_and_use_the_embedded_engine() -> None:
    s = load_settings(env={})
    assert s.host == "127.0.0.1" and s.engine_host == "127.0.0.1"
    assert s.uses_embedded_engine and s.port == 7860


def test_environment_overrides_toml_and_overrides_win(tmp_path: Path) -> None:
    cfg = tmp_path / "radassist.toml"
    cfg.write_text('[radassist]\nport = 9000\nllm_max_tokens = 64\ndata_dir = "/tmp/x"\n', encoding="utf-8")
    s = load_settings(env={"RADASSIST_PORT": "9100"}, config_file=cfg, llm_max_tokens=32)
    assert s.port == 9100 and s.llm_max_tokens == 32 and s.data_dir == Path("/tmp/x")


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('llm_url = "http://gpu-box:8000"\n', encoding="utf-8")
    s = load_settings(env={"RADASSIST_CONFIG": str(cfg)})
    assert s.llm_url == "http://gpu-box:8000" and not s.uses_embedded_engine


def test_settings_are_frozen() -> None:
    s = load_settings(env={})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"RADASSIST_PORT": "eighty"}, "port"),
        ({"RADASSIST_PORT": "70000"}, "port must be a TCP port"),
        ({"RADASSIST_LLM_URL": "gpu-box:8000"}, "llm_url must start with http"),
        ({"RADASSIST_NO_SUCH_THING": "1"}, "RADASSIST_NO_SUCH_THING"),
        ({"RADASSIST_AUTH_USER": "alice"}, "auth_user and auth_password"),
        ({"RADASSIST_LLM_TIMEOUT_S": "0"}, "llm_timeout_s must be positive"),
    ],
)
def test_bad_values_are_named_in_the_error(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        load_settings(env=env)


def test_bad_toml_is_reported_with_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("port = = 3\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="broken.toml"):
        load_settings(env={}, config_file=cfg)


def test_password_is_not_in_the_repr() -> None:
    s = Settings(auth_user="alice", auth_password="s3cret")
    assert "s3cret" not in repr(s)


def test_empty_string_clears_an_optional_setting() -> None:
    assert load_settings(env={"RADASSIST_LLM_URL": ""}).llm_url is None


@pytest.mark.parametrize(
    ("env", "phrases"),
    [
        ({}, False),  # the embedded 135M default: phrasings rarely pass the check, so it is off
        ({"RADASSIST_LLM_MODEL": "/models/medgemma"}, True),
        ({"RADASSIST_LLM_URL": "http://gpu:8000"}, True),
        ({"RADASSIST_GUIDELINE_PHRASING": "on"}, True),
        ({"RADASSIST_LLM_URL": "http://gpu:8000", "RADASSIST_GUIDELINE_PHRASING": "off"}, False),
    ],
)
def test_guideline_phrasing_follows_the_model(env: dict[str, str], phrases: bool) -> None:
    assert load_settings(env=env).phrases_guidelines is phrases


def test_guideline_phrasing_rejects_unknown_values() -> None:
    with pytest.raises(ConfigurationError, match="guideline_phrasing"):
        load_settings(env={"RADASSIST_GUIDELINE_PHRASING": "sometimes"})


def test_shipped_index_folders_are_paths_from_the_environment_or_the_toml_file(tmp_path: Path) -> None:
    assert load_settings(env={}).guideline_index is None and load_settings(env={}).vision_teaching_index is None
    env = {"RADASSIST_GUIDELINE_INDEX": "/srv/index/guidelines", "RADASSIST_VISION_TEACHING_INDEX": "~/images"}
    s = load_settings(env=env)
    assert s.guideline_index == Path("/srv/index/guidelines")
    assert s.vision_teaching_index == Path("~/images").expanduser()
    cfg = tmp_path / "c.toml"
    cfg.write_text('guideline_index = "/mnt/guidelines"\n', encoding="utf-8")
    assert load_settings(env={}, config_file=cfg).guideline_index == Path("/mnt/guidelines")
    assert load_settings(env={"RADASSIST_GUIDELINE_INDEX": ""}, config_file=cfg).guideline_index is None


def test_a_shipped_teaching_index_and_a_corpus_to_build_from_exclude_each_other() -> None:
    with pytest.raises(ConfigurationError, match="vision_teaching_index .* vision_teaching_corpus"):
        load_settings(env={"RADASSIST_VISION_TEACHING_INDEX": "/srv/images",
                           "RADASSIST_VISION_TEACHING_CORPUS": "/srv/cases.jsonl"})  # fmt: skip
