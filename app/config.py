"""One typed settings object, read once at the entry point from `MOCKML_*` variables and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable; each field is `MOCKML_<NAME>` in the environment or `.env`."""

    model_config = SettingsConfigDict(env_prefix="MOCKML_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("~/.local/share/mockml"), description="where the index and sessions live")
    knowledge_dir: Path = Field(default=REPO_ROOT / "knowledge", description="the question bank YAML folder")
    seeds_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "seeds", description="source documents (for bank check)")
    chroma_host: str | None = Field(default=None, description="Chroma server host; embedded when unset")
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    collection: str = Field(default="mockml_bank", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,62}$")
    model: str = Field(default="offline", description="offline | local | any litellm model id, e.g. openai/gpt-4o-mini")
    api_base: str | None = Field(default=None, description="OpenAI-compatible base URL for the model")
    api_key: SecretStr | None = Field(default=None, description="API key; provider variables such as OPENAI_API_KEY also work")
    llm_timeout: float = Field(default=30.0, gt=0)
    llm_retries: int = Field(default=2, ge=0, le=5)
    judge_mode: str = Field(default="auto", pattern=r"^(auto|rubric|yesno)$")
    local_model_path: Path | None = Field(
        default=None, description="a GGUF for MOCKML_MODEL=local instead of the one `mockml local setup` assembles"
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite under data_dir when unset")
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    auth: SecretStr | None = Field(default=None, description="user:password to require a login in the browser app")
    max_answer_chars: int = Field(default=20_000, gt=0)
    embedding_backend: str = Field(default="onnx", pattern=r"^(onnx|torch)$", description="onnx, or torch (sentence-transformers)")

    @field_validator("data_dir", "knowledge_dir", "seeds_dir", "local_model_path", mode="after")
    @classmethod
    def _expand(cls, path: Path | None) -> Path | None:
        return path.expanduser() if path is not None else None

    @field_validator("local_model_path", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `MOCKML_LOCAL_MODEL_PATH=` (empty) means "use the set-up model", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def offline(self) -> bool:
        return self.model.strip().lower() in {"", "offline", "none"}

    def ensure_data_dir(self) -> Path:
        """Create the data directory, or say how to point it somewhere writable."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"data directory {self.data_dir} is not writable ({exc.strerror or exc}): "
                "set MOCKML_DATA_DIR to a folder you can write to"
            ) from exc
        return self.data_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once; a bad value becomes a ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "MOCKML_" + str(err["loc"][0]).upper() if err["loc"] else "a MOCKML_ setting"
        raise ConfigError(f"{name}: {err['msg']}") from exc
