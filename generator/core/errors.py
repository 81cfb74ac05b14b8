"""The one error root.

    GenError                 a user error: exit status 1, a clear message, no traceback
      ├── ProblemReport      many located problems collected before reporting (validation, compile)
      ├── OperationalError   gen could not tell (git failed, a commit is missing, a server is
      │                      unreachable): exit status 3, so CI never takes it for "differences"
      └── (stage errors)     raised where a third-party error enters, chained with ``from``

Anything that is not a GenError is a bug: the CLI prints a short hint to report it and exits 70.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from generator.core.location import Location


@dataclass(frozen=True, order=True)
class Problem:
    """One located user-facing problem: where, which value, what is wrong and what to do."""

    location: Location | None
    path: str  # JSON path such as ``$.services.gatekeeper.replicas``, or "" when not applicable
    message: str

    def format(self) -> str:
        """``file:line:col  $.json.path  message``: the line users grep and editors jump to."""
        where = str(self.location) if self.location else "-"
        parts = [where]
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return "  ".join(parts)


class GenError(Exception):
    """A problem the user can fix. ``str(e)`` is the complete message to show."""


class OperationalError(GenError):
    """The inputs may be fine but gen could not finish: a git command failed, a commit cannot be
    found or fetched, a server cannot be reached. The answer ("same" or "differs") is unknown."""


@dataclass
class ProblemReport(GenError):
    """Every problem found by a stage, reported at once."""

    problems: list[Problem] = field(default_factory=list)
    summary: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.summary)

    def __str__(self) -> str:
        lines = [p.format() for p in sorted(self.problems, key=problem_key)]
        if self.summary:
            lines.append(self.summary)
        return "\n".join(lines)


def problem_key(p: Problem) -> tuple[str, int, int, str, str]:
    loc = p.location
    return (
        loc.file if loc else "",
        loc.line if loc else 0,
        loc.column if loc else 0,
        p.path,
        p.message,
    )


def located(location: Location | None, message: str, path: str = "") -> ProblemReport:
    """A report of a single problem; the usual way to raise one located error."""
    return ProblemReport([Problem(location, path, message)])
