"""A typer app with one option of each kind gen uses (for test_coerce; imports only typer)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class Mode(str, Enum):
    fast = "fast"
    slow = "slow"


def make() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run(
        root: Path = Path("."),
        name: str = "x",
        jobs: Annotated[int, typer.Option(min=0)] = 0,
        mode: Mode = Mode.fast,
        tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
        shard: str | None = None,
        where: Annotated[Path | None, typer.Option(exists=True, file_okay=False)] = None,
        count: int | None = None,
    ) -> None:
        print(repr((root, name, jobs, mode, tag, shard, where, count)))

    @app.command()
    def other() -> None:  # a second command, so ``run`` is named on the command line
        pass

    return app
