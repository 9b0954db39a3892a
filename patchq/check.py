"""`patchq check`: is the workspace consistent with itself?

Loading already refuses what would make later steps unsafe (bad YAML, unknown keys and statuses, short pins,
missing files). This adds what loading tolerates: trailers that disagree with series.yaml, patch files that do not
parse, orphan patch files, and declared env flags that differ from the flags found in the code.
"""

from __future__ import annotations

from .errors import PatchqError
from .model import Finding, Status
from .patchfile import read_patch_file
from .queue import trailer_mismatches
from .workspace import SERIES_NAME, Workspace


def check_workspace(ws: Workspace, *, flags: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    for upstream, queue in sorted(ws.queues.items()):
        listed = {e.file for e in queue.entries}
        folder = ws.queue_dir(upstream)
        for entry in queue.entries:
            path = ws.patch_path(entry)
            rel = ws.rel(path)
            try:
                read_patch_file(path.read_bytes(), source=rel)
            except PatchqError as exc:
                findings.append(Finding("bad-patch", exc.message, exc.path or rel, exc.line))
                continue
            for field_name, series_value, trailer_value in trailer_mismatches(ws, entry):
                findings.append(Finding("trailer-mismatch",
                                        f"{entry.id}: {field_name} is {series_value!r} in {SERIES_NAME} but "
                                        f"{trailer_value!r} in the patch trailers", rel))
        findings.extend(_requires_findings(ws, upstream))
        for path in sorted(folder.glob("*.patch")):
            if path.name not in listed:
                findings.append(Finding("orphan", f"{path.name} is not listed in {SERIES_NAME}", ws.rel(path),
                                        severity="warning"))
    if flags:
        findings.extend(_flag_findings(ws))
    return findings


def _requires_findings(ws: Workspace, upstream: str) -> list[Finding]:
    """Requirements listed after the patch that needs them; salvaged patches marked promoted."""
    out = []
    queue = ws.queue(upstream)
    position = {e.id: i for i, e in enumerate(queue.entries)}
    series = f"queues/{upstream}/{SERIES_NAME}"
    for index, entry in enumerate(queue.entries):
        for need in entry.requires:
            if position.get(need, -1) > index:
                out.append(Finding("requires-order", f"{entry.id} requires {need}, which comes after it in the "
                                                     "queue: move it up", series))
        if entry.salvaged and entry.status == Status.PROMOTED:
            out.append(Finding("salvaged-promoted", f"{entry.id} was salvaged from a damaged bundle "
                                                    f"({entry.salvaged}) and can never be promoted", series))
    return out


def _flag_findings(ws: Workspace) -> list[Finding]:
    from .audit import declared_vs_found
    return declared_vs_found(ws)
