"""Prompt templates: Jinja2 files in the top-level `prompts` package, rendered with StrictUndefined."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable

import jinja2

from app.errors import MockmlError

PACKAGE = "prompts"
SUFFIX = ".j2"


class PromptError(MockmlError):
    """A prompt template is missing or was rendered without a variable it needs (a bug, not user input)."""


def _root() -> Traversable:
    return files(PACKAGE)


def _load(name: str) -> tuple[str, str, None]:
    """Jinja2 FunctionLoader hook: (source, filename, uptodate); resources never change at run time."""
    path = _root().joinpath(name)
    if not path.is_file():
        raise jinja2.TemplateNotFound(name)
    return path.read_text(encoding="utf-8"), name, None


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Markdown, not HTML: escaping would corrupt quotes the grader must copy verbatim.
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def template_names() -> list[str]:
    """Every template file shipped in the `prompts` package."""
    return sorted(p.name for p in _root().iterdir() if p.is_file() and p.name.endswith(SUFFIX))


def render(name: str, **variables: object) -> str:
    """Render `prompts/<name>` (the `.j2` suffix is optional); every variable it uses must be given."""
    filename = name if name.endswith(SUFFIX) else name + SUFFIX
    try:
        template = _environment().get_template(filename)
    except jinja2.TemplateNotFound:
        known = ", ".join(template_names()) or "none"
        raise PromptError(f"no prompt template {filename!r} in the prompts package (have: {known})") from None
    try:
        return template.render(**variables).strip() + "\n"
    except jinja2.UndefinedError as exc:
        raise PromptError(f"prompt template {filename!r} needs a variable that was not given: {exc.message}") from exc
