"""Shell completion of stack names, patch ids and upstream names (click's own completion protocol).

Completion runs on every Tab press, so it reads names with a line scan of `pins.lock` and the `series.yaml` files
instead of loading the workspace (no YAML library, no engine import). A file it cannot read completes nothing;
it never prints an error into the user's shell.

Enable it with `eval "$(_PATCHQ_COMPLETE=bash_source patchq)"` (zsh_source, fish_source for the other shells).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_NAME = r"[a-z0-9][a-z0-9._-]*"
_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):")
_CHILD_KEY = re.compile(rf"^(\s+)[\"']?({_NAME})[\"']?:")
_ID_LINE = re.compile(rf"^\s*-?\s*id:\s*[\"']?({_NAME})")


def find_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "pins.lock").is_file():
            return folder
    return None


def _root(ctx: Any) -> Path | None:
    top = ctx.find_root() if ctx is not None else None
    given = top.params.get("workspace_opt") if top is not None else None
    return find_root(Path(given or os.getcwd()).resolve())


def section_keys(text: str, section: str) -> list[str]:
    """The keys directly under a top-level mapping (`upstreams:` or `stacks:`) of pins.lock."""
    keys: list[str] = []
    inside, indent = False, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        top = _TOP_KEY.match(line)
        if top:
            inside, indent = top.group(1) == section, None
            continue
        if not inside:
            continue
        child = _CHILD_KEY.match(line)
        if child and (indent is None or len(child.group(1)) == indent):
            indent = len(child.group(1))
            keys.append(child.group(2))
    return keys


def names(root: Path, section: str) -> list[str]:
    try:
        return section_keys((root / "pins.lock").read_text(encoding="utf-8", errors="replace"), section)
    except OSError:
        return []


def patch_ids(root: Path) -> list[str]:
    found: list[str] = []
    for series in sorted((root / "queues").glob("*/series.yaml")):
        try:
            text = series.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found.extend(m.group(1) for m in map(_ID_LINE.match, text.splitlines()) if m)
    return found


def _items(values: list[str], incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem
    return [CompletionItem(v) for v in dict.fromkeys(values) if v.startswith(incomplete)]


def complete_stack(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    root = _root(ctx)
    return _items(names(root, "stacks"), incomplete) if root else []


def complete_upstream(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    """Upstream names; after `NAME@` (pin, rebase --onto) the name is kept and `latest` offered."""
    root = _root(ctx)
    if root is None:
        return []
    if "@" in incomplete:
        name, _, ref = incomplete.partition("@")
        return _items([f"{name}@latest"], incomplete) if "latest".startswith(ref) else []
    return _items(names(root, "upstreams"), incomplete)


def complete_id(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    root = _root(ctx)
    return _items(patch_ids(root), incomplete) if root else []


def complete_stack_or_id(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    root = _root(ctx)
    return _items(names(root, "stacks") + patch_ids(root), incomplete) if root else []
