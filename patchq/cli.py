"""Click commands only: parse options, call one function of the core, render its result.

Exit codes: 0 ok, 1 the patches need you, 2 bad input, 3 the environment failed, 128+N interrupted by signal N.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import signals
from .cmdbase import STATUS_CHOICES, Context, cli, pass_ctx
from .complete import (
    complete_id,
    complete_stack,
    complete_stack_or_id,
    complete_upstream,
)
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_NEEDS_YOU,
    BadInput,
    PatchqError,
    describe_os_error,
)
from .output import error_envelope, guess_command, json_requested

if TYPE_CHECKING:                  # the engine is imported inside the commands: --help must not load it
    from .build.stack import OverlayReport
    from .overlay import OverlayResult

__all__ = ["Context", "cli", "main", "pass_ctx"]


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@pass_ctx
def init(c: Context, folder: Path) -> None:
    """Make FOLDER a new, empty workspace (pins.lock, queues/, kernels/)."""
    from .workspace import init_workspace
    lock = init_workspace(folder.resolve())
    c.emit({"created": str(lock)}, lambda: c.console.print(f"new workspace: {lock}"))


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--no-apply", is_flag=True, help="Only build the sample workspace.")
@pass_ctx
def demo(c: Context, folder: Path | None, no_apply: bool) -> None:
    """Build a self-contained sample workspace (offline) and apply its stack."""
    from .demo import build_demo
    target = (folder or Path("patchq-demo")).resolve()
    root = build_demo(target)
    if no_apply:
        def render_workspace() -> None:
            c.console.print("[bold]sample workspace:[/bold]")
            c.console.line(f"  {root}")
        c.emit({"workspace": str(root), "apply": None, "build": None}, render_workspace)
        return
    from .apply import apply_stack
    from .build.stack import build_after_apply
    from .report import render_apply, render_build
    from .workspace import load_workspace
    if not c.json:
        c.console.print("[bold]sample workspace:[/bold]")
        c.console.line(f"  {root}")
    ws = load_workspace(root)
    report = apply_stack(ws, "promoted-demo", keep_going=True,
                         extra=("diagnostic:decode-timing", "negative-archived:mtp-spec-decode"))
    build = build_after_apply(ws, report)

    def render_demo() -> None:
        render_apply(c.console, report)
        render_build(c.console, build)
    c.emit({"workspace": str(root), "apply": report, "build": build}, render_demo)
    c.note("\ntry:")
    if not c.json and not c.quiet:
        for command in (f"cd {root}", "patchq list", "patchq flags promoted-demo",
                        "patchq trial measured-demo --with argmax-sampling"):
            c.console.line(f"  {command}")


@cli.command("list")
@click.option("--stack", "stack_name", help="Only the patches this stack applies.", shell_complete=complete_stack)
@click.option("--status", type=STATUS_CHOICES, help="Only patches with this status.")
@click.option("--upstream", "-u", help="Only this upstream's queue.", shell_complete=complete_upstream)
@pass_ctx
def list_cmd(c: Context, stack_name: str | None, status: str | None, upstream: str | None) -> None:
    """The queues: each patch with its status, flags and measured result."""
    from .model import PatchEntry
    from .report import render_entries
    ws = c.ws()
    entries: list[PatchEntry] = []
    if stack_name:
        stack = ws.stack(stack_name)
        for up in stack.upstreams:
            entries.extend(ws.stack_entries(stack, up))
    else:
        for name in ws.upstreams:
            entries.extend(ws.queue(name).entries)
    if upstream:
        ws.upstream(upstream)
        entries = [e for e in entries if e.upstream == upstream]
    if status:
        entries = [e for e in entries if e.status.value == status]
    c.emit(entries, lambda: render_entries(c.console, entries, title=f"stack {stack_name}" if stack_name
                                           else f"queues of {ws.root.name}"))


@cli.command()
@click.argument("patch_ref", metavar="ID", shell_complete=complete_id)
@pass_ctx
def show(c: Context, patch_ref: str) -> None:
    """One patch: its annotation and where it is used."""
    from .report import render_entry
    ws = c.ws()
    entry = ws.find_patch(patch_ref)
    stacks = [s.name for s in ws.stacks.values() if entry in ws.stack_entries(s, entry.upstream)]
    from .workspace import required_by
    needed_by = required_by(ws.queue(entry.upstream), entry.id)
    extra = {"required-by": ", ".join(needed_by), "stacks": ", ".join(stacks)}
    c.emit({"patch": entry, "stacks": stacks, "required_by": needed_by},
           lambda: render_entry(c.console, entry, extra))


@cli.command()
@pass_ctx
def check(c: Context) -> None:
    """Is the workspace consistent: files, trailers vs series, pins, declared vs found env flags."""
    from .check import check_workspace
    from .report import render_findings
    ws = c.ws()
    findings = check_workspace(ws)
    c.emit(findings, lambda: render_findings(c.console, findings, ok_text="workspace is consistent"))
    if any(f.severity == "error" for f in findings):
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="STACK", shell_complete=complete_stack)
@click.option("--into", type=click.Path(file_okay=False, path_type=Path),
              help="Make fresh checkouts in this new folder (one subfolder per upstream).")
@click.option("--keep-going", is_flag=True, help="Report every patch instead of stopping at the first conflict.")
@click.option("--verify", is_flag=True, help="Compare each result tree with the one recorded in pins.lock.")
@click.option("--upstream", "-u", "only", multiple=True, help="Only these upstreams of the stack.",
              shell_complete=complete_upstream)
@click.option("--with", "extra", multiple=True, metavar="STATUS:ID",
              help="Add a non-included patch on top, e.g. diagnostic:decode-timing.")
@click.option("--check", "check_only", is_flag=True, help="Judge the queues without touching any checkout.")
@click.option("--force", is_flag=True,
              help="Set local commits and uncommitted changes in patchq's checkout aside under refs/patchq/saved/ "
                   "and regenerate it.")
@click.option("--upto", metavar="ID", help="Stop after this patch (its upstream's later patches are left out).")
@click.option("--no-build", is_flag=True, help="Do not rebuild affected native targets.")
@pass_ctx
def apply(c: Context, stack_name: str, into: Path | None, keep_going: bool, verify: bool, only: tuple[str, ...],
          extra: tuple[str, ...], check_only: bool, force: bool, upto: str | None, no_build: bool) -> None:
    """Regenerate STACK: clean checkouts at the pins, queues applied in order, one outcome per patch."""
    from .apply import apply_stack
    from .report import render_apply, render_build
    with c.txn(f"apply {stack_name}") as (ws, _):
        report = apply_stack(ws, stack_name, into=into.resolve() if into else None, keep_going=keep_going,
                             verify=verify, only=only, extra=extra, check_only=check_only, force=force,
                             upto=upto)
        build = None
        if not check_only:            # the builder's modules only where a build can follow
            from .build.stack import build_after_apply
            build = build_after_apply(ws, report, dry_run=no_build)

    def render_both() -> None:
        render_apply(c.console, report)
        if build is not None:
            render_build(c.console, build)
    # --check has the same shape: the build is null because nothing was built
    c.emit({"apply": report, "build": build}, render_both)
    if not report.ok or (build is not None and not build.ok):
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="STACK", shell_complete=complete_stack)
@pass_ctx
def lock(c: Context, stack_name: str) -> None:
    """Record each upstream's result tree for STACK in pins.lock (for apply --verify)."""
    from .apply import lock_stack
    from .workspace import set_lock_values
    with c.txn(f"lock {stack_name}") as (ws, t):
        trees = lock_stack(ws, stack_name)
        t.write(ws.lock_path, set_lock_values(ws, trees={stack_name: trees}))

    def render_trees() -> None:
        for up, tree in trees.items():
            c.console.print(f"{stack_name}: {up} tree {tree}")
    c.emit({"stack": stack_name, "trees": trees}, render_trees)


@cli.command()
@click.argument("spec", metavar="UPSTREAM@REF", shell_complete=complete_upstream)
@click.option("--stack", "stack_name", help="Pin only this stack (default: the upstream's default pin).",
              shell_complete=complete_stack)
@pass_ctx
def pin(c: Context, spec: str, stack_name: str | None) -> None:
    """Resolve a short SHA, tag, branch or 'latest' and write the full commit id into pins.lock."""
    from .releases import pin_target
    from .workspace import set_lock_values
    name, _, ref = spec.partition("@")
    if not ref:
        raise BadInput(f"expected UPSTREAM@REF, got {spec!r}")
    with c.txn(f"pin {spec}") as (ws, t):
        upstream = ws.upstream(name)
        sha, label, releases = pin_target(upstream, ref, ws.root)
        chain = {name: releases} if releases is not None else None
        if stack_name:
            ws.stack(stack_name)
            data = set_lock_values(ws, stack_pins={stack_name: {name: sha}}, releases=chain)
        else:
            data = set_lock_values(ws, pins={name: sha}, releases=chain)
        t.write(ws.lock_path, data)
    c.emit({"upstream": name, "ref": ref, "pin": sha, "release_added": releases is not None},
           lambda: c.console.print(f"{name}: {ref} → {sha}  ({label})"))


@cli.command()
@click.argument("target", metavar="[STACK|ID]", required=False, shell_complete=complete_stack_or_id)
@click.option("--fail-on", "fail_on", default="", metavar="KINDS",
              help="Comma-separated finding kinds that make the exit code 1 ('all' for any). Kinds: "
                   "declared-not-found, found-not-declared, profile-unread, negative-in-profile, default-mismatch, "
                   "default-on, dynamic-name, approximate.")
@pass_ctx
def flags(c: Context, target: str | None, fail_on: str) -> None:
    """Env-flag audit: which flags each patch reads, defaults, and whether a stack's profile fits them."""
    from .audit import FINDING_KINDS, audit_stack, audit_workspace
    from .report import render_flag_audit
    wanted = {k.strip() for k in fail_on.split(",") if k.strip()}
    unknown = wanted - set(FINDING_KINDS) - {"all"}
    if unknown:
        raise BadInput(f"unknown --fail-on kind(s): {', '.join(sorted(unknown))} (known: {', '.join(FINDING_KINDS)})")
    ws = c.ws()
    audit = audit_stack(ws, target) if target and target in ws.stacks else audit_workspace(ws, target)
    c.emit(audit, lambda: render_flag_audit(c.console, audit))
    if any("all" in wanted or f.kind in wanted for f in audit.findings):
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="[STACK]", required=False, shell_complete=complete_stack)
@click.option("--out", "-o", "out_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Folder to write the bundles into (created if missing; other files in it are left alone).")
@click.option("--upstream", "-u", "upstreams", multiple=True, help="Only these upstreams (default: all of them).",
              shell_complete=complete_upstream)
@click.option("--format", "fmt", type=click.Choice(["gz.b64", "patch", "mbox", "quilt"]), default="gz.b64",
              show_default=True, help="One .patch.gz.b64, a folder of .patch files, an mbox, or a quilt series.")
@click.option("--force", is_flag=True,
              help="Replace files in the way even when no earlier export of this bundle wrote them.")
@click.option("--check", "check_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Instead of exporting, verify the bundles in DIR against the workspace (STACK optional).")
@click.option("--max-size", "max_size", type=click.IntRange(min=1), default=64 * 1024 * 1024, show_default=True,
              help="With --check: refuse bundles that decompress to more bytes than this.")
@pass_ctx
def export(c: Context, stack_name: str | None, out_dir: Path | None, upstreams: tuple[str, ...], fmt: str,
           force: bool, check_dir: Path | None, max_size: int) -> None:
    """Write deterministic bundles of STACK into DIR (one per upstream, with a manifest), or --check DIR [STACK]."""
    from .export import export_stack
    from .export_check import check_export
    from .report import render_export, render_export_check
    if check_dir is not None:
        if out_dir is not None or upstreams or force:
            raise BadInput("--check takes a folder and optionally a stack; -o, -u and --force do not apply")
        with c.reading("export --check") as ws:
            report = check_export(ws, check_dir, stack_name=stack_name, limit=max_size)
        c.emit(report, lambda: render_export_check(c.console, report))
        if not report.ok:
            sys.exit(EXIT_NEEDS_YOU)
        return
    if stack_name is None or out_dir is None:
        raise BadInput("usage: patchq export STACK -o DIR [-u UPSTREAM] [--format F]  |  patchq export --check DIR "
                       "[STACK]")
    with c.reading(f"export {stack_name}") as ws:
        result = export_stack(ws, stack_name, out_dir=out_dir, upstreams=upstreams, fmt=fmt, force=force)
    c.emit(result, lambda: render_export(c.console, result))


@cli.command()
@click.argument("stack_name", metavar="[STACK]", required=False, shell_complete=complete_stack)
@click.option("--onto", metavar="UPSTREAM@REF", shell_complete=complete_upstream,
              help="Where to move the queue: a full or short SHA, a tag, a branch, or 'latest'.")
@click.option("--continue", "resume", is_flag=True, help="Go on after resolving and staging in the work tree.")
@click.option("--skip", is_flag=True, help="Leave the stopped patch out of the new stack (it stays in the queue).")
@click.option("--abort", is_flag=True, help="Undo the rebase: every workspace file back as it was.")
@click.option("--dry-run", is_flag=True,
              help="The whole report (outcomes, breaking commits) without changing anything.")
@click.option("--accept-fuzz", is_flag=True, help="Take results that applied only with reduced context without "
              "stopping for review.")
@click.option("--archive-left-out", is_flag=True, help="Mark the patches the rebase leaves out negative-archived "
              "(default: the stack stops applying them); either way the reason is noted on each.")
@pass_ctx
def rebase(c: Context, stack_name: str | None, onto: str | None, resume: bool, skip: bool, abort: bool,
           dry_run: bool, accept_fuzz: bool, archive_left_out: bool) -> None:
    """Move STACK's queue for one upstream onto UPSTREAM@REF, with a resolution work tree on conflicts."""
    from .rebase import abort_rebase, continue_rebase, skip_patch, start_rebase
    from .report import render_rebase
    actions = [name for name, on in (("--onto", onto is not None), ("--continue", resume), ("--skip", skip),
                                     ("--abort", abort)) if on]
    if len(actions) != 1:
        raise BadInput("say one of --onto UPSTREAM@REF, --continue, --skip or --abort"
                       + (f" (got {' and '.join(actions)})" if actions else ""))
    if (dry_run or stack_name or accept_fuzz or archive_left_out) and onto is None:
        raise BadInput("STACK, --dry-run, --accept-fuzz and --archive-left-out go with --onto")
    root = c.root()
    if onto is not None:
        report = start_rebase(root, onto, stack_name, dry_run=dry_run, accept_fuzz=accept_fuzz,
                              archive_left_out=archive_left_out)
    elif resume:
        report = continue_rebase(root)
    elif skip:
        report = skip_patch(root)
    else:
        report = abort_rebase(root)
    c.emit(report, lambda: render_rebase(c.console, report))
    if not report.ok:
        sys.exit(EXIT_NEEDS_YOU)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A byte count with an optional K, M or G suffix (powers of 1024)."""
    import re
    m = re.fullmatch(r"\s*(\d+)\s*([KkMmGg]?)(?:i?[Bb])?\s*", str(value))
    if not m or int(m.group(1)) <= 0:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 67108864, 64M, 1G)")
    return int(m.group(1)) << 10 * " KMG".index((m.group(2) or " ").upper())


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path), metavar="PATH...")
@click.option("--upstream", "-u", help="Put everything in this upstream's queue (default: found per patch).",
              shell_complete=complete_upstream)
@click.option("--status", "-s", type=STATUS_CHOICES, help="Give every imported patch this status.")
@click.option("--map", "map_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              help="YAML: glob or id -> status / upstream / id, per file, overriding what import infers.")
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@click.option("--max-size", "max_size", default="64M", show_default=True, callback=_size, metavar="N",
              help="Refuse inputs (decompressed bundles included) larger than this.")
@click.option("--strict", is_flag=True, help="Write nothing unless every input can be imported.")
@click.option("--salvage", is_flag=True,
              help="Import the complete file sections of a damaged bundle as a diagnostic patch (never promotable).")
@click.option("--update", is_flag=True,
              help="An input whose id names an existing patch replaces that patch's diff (annotation kept).")
@pass_ctx
def import_cmd(c: Context, paths: tuple[Path, ...], upstream: str | None, status: str | None,
               map_file: Path | None, dry_run: bool, max_size: int, strict: bool, salvage: bool,
               update: bool) -> None:
    """Import lab patch folders, bundles, quilt series and mbox files into the queues, each file accounted for."""
    from .import_setup import prepared_import
    from .importer import import_paths
    from .report import render_import
    with prepared_import(c.ws(), paths, dry_run=dry_run) as (ws, created):   # upstreams and stacks of manifests
        report = import_paths(ws, paths, upstream=upstream, status=status, mapping=map_file, dry_run=dry_run,
                              limit=max_size, strict=strict, salvage=salvage, update=update)
    if created:
        import dataclasses
        report = dataclasses.replace(report, warnings=(*created, *report.warnings))
    c.emit(report, lambda: render_import(c.console, report, paths, c.verbose))
    if not report.ok:
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="STACK", shell_complete=complete_stack)
@click.option("--target", "-t", "targets", multiple=True, help="Build exactly these targets (default: affected ones).")
@click.option("--dry-run", is_flag=True, help="Say what would build; build nothing.")
@click.option("--jobs", "-j", type=int, help="Parallel jobs (default: from the recipe and this machine's memory).")
@click.option("--launcher", help="Compiler launcher, e.g. ccache or sccache.")
@click.option("--force", is_flag=True, help="Discard uncommitted changes in patchq's own checkouts.")
@pass_ctx
def build(c: Context, stack_name: str, targets: tuple[str, ...], dry_run: bool, jobs: int | None,
          launcher: str | None, force: bool) -> None:
    """Rebuild the native targets STACK's changes touch, cached by content."""
    from .build.stack import build_stack
    from .report import render_build
    with c.txn(f"build {stack_name}") as (ws, _):
        report = build_stack(ws, stack_name, targets=targets, dry_run=dry_run, jobs=jobs, launcher=launcher,
                             force=force)
    c.emit(report, lambda: render_build(c.console, report))
    if not report.ok:
        sys.exit(EXIT_NEEDS_YOU)


@cli.command()
@click.argument("stack_name", metavar="STACK", required=False, shell_complete=complete_stack)
@click.option("--site-packages", "site", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The site-packages folder holding the installed package.")
@click.option("--python", "python", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Another interpreter (e.g. a venv's bin/python): overlay its site-packages.")
@click.option("--upstream", "-u", default="vllm", show_default=True, help="Which upstream's Python changes.",
              shell_complete=complete_upstream)
@click.option("--package", help="Installed distribution name (default: the upstream name).")
@click.option("--expect-version", help="Installed version to require (default: the upstream's 'version' in pins.lock).")
@click.option("--revert", is_flag=True, help="Undo the last overlay of this site-packages, byte for byte.")
@click.option("--status", "show_status", is_flag=True,
              help="Say whether the package is overlaid, by which stack, and whether its files still match RECORD.")
@pass_ctx
def overlay(c: Context, stack_name: str | None, site: Path | None, python: Path | None, upstream: str,
            package: str | None, expect_version: str | None, revert: bool, show_status: bool) -> None:
    """Apply STACK's Python changes onto an installed package (with a backup), or --revert them, or --status."""
    from .build.stack import overlay_stack, revert_overlay, status_of_overlay
    from .report import render_overlay, render_overlay_status
    where = BadInput("say where the package is installed: --site-packages DIR or --python INTERPRETER (one)")
    if python is not None:
        if site is not None:
            raise where
        from .overlay import site_packages_of
        site = site_packages_of(python)
    if site is None:
        raise where
    if revert and show_status:
        raise BadInput("--revert and --status do not go together")
    if show_status:
        state = status_of_overlay(c.ws(), site, package or upstream)
        c.emit(state, lambda: render_overlay_status(c.console, state))
        return
    result: OverlayResult | OverlayReport
    with c.txn("overlay") as (ws, _):
        if revert:
            result = revert_overlay(ws, site)
        else:
            if not stack_name:
                raise BadInput("name the STACK to overlay (or pass --revert or --status)")
            result = overlay_stack(ws, stack_name, site, upstream=upstream, package=package, version=expect_version)
    c.emit(result, lambda: render_overlay(c.console, result))


@cli.command()
@click.argument("stack_name", metavar="STACK", shell_complete=complete_stack)
@click.option("--wheel", "wheel_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The upstream's binary wheel for the pin.")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--upstream", "-u", default="vllm", show_default=True)
@pass_ctx
def wheel(c: Context, stack_name: str, wheel_path: Path, out_dir: Path, upstream: str) -> None:
    """An installable wheel for a Python-only STACK: the upstream wheel with the patched files, no compiler."""
    from .build.stack import wheel_for_stack
    ws = c.ws()
    report = wheel_for_stack(ws, stack_name, wheel_path, out_dir, upstream=upstream)

    def render_wheel() -> None:
        c.console.print(f"wheel {report.version} ({len(report.replaced)} files replaced, "
                        f"{len(report.deleted)} removed):")
        c.console.line(f"  {report.wheel}")
    c.emit(report, render_wheel)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error becomes one line on stderr (and a JSON envelope on stdout with --json) and its exit
    code, never a traceback."""
    signals.started()
    args = sys.argv[1:] if argv is None else list(argv)
    obj = Context(json=json_requested(args))
    try:
        cli.main(args=args, prog_name="patchq", standalone_mode=False, obj=obj)
    except PatchqError as exc:
        _fail(obj, args, f"error: {exc}", exc.exit_code, exc.message, kind=_kind(exc), path=exc.path, line=exc.line,
              hint=exc.hint)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        if isinstance(cause, KeyboardInterrupt):      # SIGINT, SIGTERM or SIGHUP, after the cleanup on the way out
            said = f"interrupted ({signals.name_of(cause)}): nothing half-written was left in the workspace"
            _fail(obj, args, said, signals.exit_code(cause), said, kind="interrupted")
        _fail(obj, args, "interrupted", 130, "interrupted", kind="interrupted")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        code = EXIT_BAD_INPUT if exc.exit_code == 2 else exc.exit_code
        if obj.json:
            _json_error(obj, args, exc.format_message(), code, kind="usage")
        exc.show()
        sys.exit(code)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:   # the machine refused a file operation: disk full, read-only, permissions
        if exc.errno == errno.E2BIG:      # the input names more paths than one command line can carry
            if os.environ.get("PATCHQ_DEBUG"):
                import traceback
                traceback.print_exc()
            message = "the input names more paths than one git command can take (Argument list too long)"
            _fail(obj, args, f"error: {message}", EXIT_BAD_INPUT, message, kind="bad-input")
        message = describe_os_error(exc)
        _fail(obj, args, f"error: {message}", EXIT_ENVIRONMENT, message, kind="environment", path=exc.filename)
    except Exception as exc:  # a bug in patchq: say so plainly, keep the traceback for those who ask
        if os.environ.get("PATCHQ_DEBUG"):
            import traceback
            traceback.print_exc()
        message = (f"internal error: {type(exc).__name__}: {exc} (this is a patchq bug; "
                   "rerun with PATCHQ_DEBUG=1 for the traceback)")
        _fail(obj, args, message, 70, message, kind="internal")
    sys.exit(0)


def _kind(exc: PatchqError) -> str:
    return {EXIT_NEEDS_YOU: "needs-you", EXIT_BAD_INPUT: "bad-input", EXIT_ENVIRONMENT: "environment"}.get(
        exc.exit_code, "error")


def _json_error(obj: Context, args: list[str], message: str, code: int, **fields: Any) -> None:
    command = obj.command or guess_command(args, cli)
    click.echo(error_envelope(command, message, exit_code=code, **fields))


def _fail(obj: Context, args: list[str], said: str, code: int, message: str, **fields: Any) -> NoReturn:
    """The error on stderr for people, and with --json also as the envelope on stdout; then the exit code."""
    if obj.json:
        _json_error(obj, args, message, code, **fields)
    click.echo(said, err=True)
    hint = fields.get("hint")
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


# --- command modules, each registering its commands on import: capture; refresh, new, mark, status, sync, edit,
# upstream, stack; trial, results ---
from . import cmd_capture, cmd_loop, cmd_trial  # noqa: E402,F401

if __name__ == "__main__":
    main()
