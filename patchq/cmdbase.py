"""The `patchq` command group, its context and the decorators every command module shares.

Its own module so that the command modules (`cli`, `cmd_loop`, `cmd_capture`, `cmd_trial`) all import it and none
imports another: `cli.py` imports the others only to register their commands, and the import graph has no cycle.
"""

from __future__ import annotations

import click

from . import __version__
from .output import Context, PatchqGroup

# Kept literal so that `--help` and completion need not import the model (tests/test_output.py checks they agree).
STATUS_CHOICES = click.Choice(["promoted", "negative-archived", "diagnostic"])

pass_ctx = click.make_pass_decorator(Context)

__all__ = ["STATUS_CHOICES", "Context", "cli", "pass_ctx"]


@click.group(cls=PatchqGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.option("--workspace", "-w", "workspace_opt", metavar="DIR",
              help="Workspace folder (default: walk up from here to the folder holding pins.lock).")
@click.version_option(__version__, prog_name="patchq")
@click.pass_context
def cli(ctx: click.Context, workspace_opt: str | None) -> None:
    """patchq: annotated patch queues against pinned upstreams — apply, rebase, audit, bundle, build."""
    if ctx.obj is None:
        ctx.obj = Context()
    ctx.obj.workspace_opt = workspace_opt
