"""Load ``templates/<name>.toml`` (fields: version, description, text) and render it strictly."""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class TemplateError(Exception):
    """A template is missing, malformed, or rendered without all of its variables."""


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned template; ``ref`` (name@version) goes into the audit trail."""

    name: str
    version: int
    text: str
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(
            field for _, field, _, _ in string.Formatter().parse(self.text) if field is not None and field != ""
        )


@cache
def load_template(name: str, directory: Path = TEMPLATES_DIR) -> PromptTemplate:
    """Read the template called ``name`` from ``directory``."""
    path = directory / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TemplateError(f"no prompt template named {name!r} in {directory}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"prompt template {name!r} is not valid TOML: {exc}") from exc
    try:
        return PromptTemplate(
            name=name, version=int(data["version"]), text=str(data["text"]), description=data.get("description", "")
        )
    except (KeyError, ValueError) as exc:
        raise TemplateError(f"prompt template {name!r} needs an integer 'version' and a 'text'") from exc


def render(template: PromptTemplate, values: Mapping[str, object]) -> str:
    """Fill ``template``; every variable must be given and nothing else."""
    needed = template.variables
    missing = sorted(needed - values.keys())
    if missing:
        raise TemplateError(f"template {template.ref} is missing values for: {', '.join(missing)}")
    extra = sorted(values.keys() - needed)
    if extra:
        raise TemplateError(f"template {template.ref} has no variables named: {', '.join(extra)}")
    return template.text.format_map(dict(values))
