"""Command-line options shared by several commands (declared once, so their names and help agree)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

#: ``--executor local|ray``: where embeddings and units run (default: the run config's ``executor``, else local).
ExecutorOption = Annotated[Optional[Literal["local", "ray"]], typer.Option(
    "--executor",
    help="Where embeddings and units run: local (this process) or ray (a Ray cluster at $RAY_ADDRESS or the "
         "config's ray_address, else a local Ray instance; pip install 'spatial-probing\\[ray]'). Default: the "
         "config's executor, else local.")]
