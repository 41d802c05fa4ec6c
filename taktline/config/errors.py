"""Config errors, each located by file, line and key path.

ConfigError            one or more located problems in a config file
  └─ issues: list[ConfigIssue(file, line, key_path, message)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem: where it is and what is wrong."""

    file: Path
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(Exception):
    """A config file cannot be used; `issues` says every place that is wrong."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))
