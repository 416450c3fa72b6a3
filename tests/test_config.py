"""Settings are read once from MOCKML_* variables and `.env`, and a bad value names the variable to fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import REPO_ROOT, Settings, get_settings
from app.errors import BadInput, ConfigError

OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MOCKML_* variable at all (the developer's shell may set some), and HOME in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("MOCKML_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_defaults_are_offline_with_the_data_dir_under_home_expanded(clean_env: Path) -> None:
    s = get_settings()
    assert s.data_dir == clean_env / ".local" / "share" / "mockml"
    assert "~" not in str(s.data_dir) and s.data_dir.is_absolute()
    assert s.chroma_dir == s.data_dir / "chroma"
    assert s.model == "offline" and s.offline
    assert s.chroma_host is None and s.port == 7860 and s.host == "127.0.0.1"
    assert s.knowledge_dir == REPO_ROOT / "knowledge"
    assert s.api_key is None and s.auth is None


def test_settings_are_read_once(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("MOCKML_PORT", "9001")
    assert get_settings() is first and first.port == 7860
    get_settings.cache_clear()
    assert get_settings().port == 9001


def test_environment_overrides(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOCKML_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MOCKML_PORT", "9000")
    monkeypatch.setenv("MOCKML_MODEL", "openai/gpt-4o-mini")
    s = get_settings()
    assert s.data_dir == tmp_path / "elsewhere"
    assert s.port == 9000
    assert s.model == "openai/gpt-4o-mini" and not s.offline


def test_data_dir_from_the_environment_expands_tilde(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCKML_DATA_DIR", "~/mock-data")
    assert get_settings().data_dir == clean_env / "mock-data"


@pytest.mark.parametrize("value", ["", "offline", "none", "  Offline  ", "NONE"])
def test_offline_spellings(clean_env: Path, value: str) -> None:
    assert Settings(model=value).offline


def test_dotenv_in_the_working_directory_is_read(clean_env: Path, tmp_path: Path) -> None:
    assert Path.cwd() == tmp_path  # conftest's isolation runs each test in its own tmp_path
    (tmp_path / ".env").write_text(
        "MOCKML_PORT=8123\nMOCKML_MODEL=ollama/llama3\nMOCKML_API_KEY=sk-secret\nSOMETHING_ELSE=ignored\n", encoding="utf-8"
    )
    s = get_settings()
    assert s.port == 8123 and s.model == "ollama/llama3"
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(s)  # a secret never shows up in a log line


def test_environment_beats_dotenv(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("MOCKML_PORT=8123\n", encoding="utf-8")
    monkeypatch.setenv("MOCKML_PORT", "8124")
    assert get_settings().port == 8124


def test_bad_value_in_dotenv_names_the_variable(clean_env: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MOCKML_JUDGE_MODE=lenient\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^MOCKML_JUDGE_MODE: "):
        get_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MOCKML_PORT", "abc"),
        ("MOCKML_PORT", "70000"),
        ("MOCKML_LLM_RETRIES", "99"),
        ("MOCKML_LLM_TIMEOUT", "0"),
        ("MOCKML_CHROMA_PORT", "-1"),
        ("MOCKML_COLLECTION", "a b"),
        ("MOCKML_MAX_ANSWER_CHARS", "many"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        get_settings()
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    assert "\n" not in message  # one line, fit for `error: ...` at the CLI edge
    assert isinstance(info.value, BadInput) and info.value.exit_code == 2


def test_unwritable_data_dir_says_set_mockml_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    s = Settings(data_dir=blocker / "data")  # mkdir under a regular file fails even for root
    with pytest.raises(ConfigError, match="set MOCKML_DATA_DIR") as info:
        s.ensure_data_dir()
    assert str(blocker / "data") in str(info.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through directory permissions")
def test_read_only_data_dir_says_set_mockml_data_dir(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="set MOCKML_DATA_DIR"):
            Settings(data_dir=locked).ensure_data_dir()
    finally:
        locked.chmod(0o700)


def test_writable_data_dir_is_created_and_left_clean(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "data"
    assert Settings(data_dir=target).ensure_data_dir() == target
    assert target.is_dir() and list(target.iterdir()) == []


def _env_after_import(env: dict[str, str]) -> dict[str, str | None]:
    code = f"import json, os, app; print(json.dumps({{k: os.environ.get(k) for k in {sorted(OFFLINE_DEFAULTS)!r}}}))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_importing_app_sets_the_offline_defaults() -> None:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_DEFAULTS}
    assert _env_after_import(env) == OFFLINE_DEFAULTS


def test_importing_app_keeps_values_the_user_set() -> None:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_DEFAULTS}
    env.update(HF_HUB_OFFLINE="0", GRADIO_ANALYTICS_ENABLED="True")
    seen = _env_after_import(env)
    assert seen["HF_HUB_OFFLINE"] == "0" and seen["GRADIO_ANALYTICS_ENABLED"] == "True"
    assert {k: v for k, v in seen.items() if k not in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED")} == {
        k: v for k, v in OFFLINE_DEFAULTS.items() if k not in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED")
    }
