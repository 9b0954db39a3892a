"""Trial results on disk: the results files, what `--decide` changes, and reading them back.

`results/<stack>/<date>-<id>.json` holds one trial: its command, environment, machine, every run, statistics and
verdict. Without `--decide` that file is the only thing a trial writes. With it, the patches' notes, result,
baseline and status, and the stack's result in pins.lock change as well: all of them are staged on the command's
transaction (`txn`) and committed through its one journal. A trial killed before the commit point changed nothing;
one killed after it is finished by the next patchq command, so the workspace never shows half a decision.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import BadInput
from .model import PatchEntry, Status
from .patchfile import read_patch_file, render_patch_file
from .txn import Txn, recover
from .workspace import LOCK_NAME, Workspace, series_bytes
from .yamlio import dump as dump_yaml, editable as _editable

RESULTS_DIR = "results"


@dataclass(frozen=True)
class Recorded:
    """What a trial wrote or would write: the results file and the other files `--decide` changed."""

    results_file: str
    changed: tuple[str, ...]
    decided: bool
    next_steps: tuple[str, ...]


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def results_path(ws: Workspace, doc: dict[str, Any]) -> Path:
    """A new file name: results/<stack>/<date>-<candidate ids or 'verify'>[-N].json."""
    if doc["candidate"]:
        label = "+".join(ref.rpartition(":")[2] for ref in doc["candidate"])
    elif doc["kind"] == "verify":
        label = "verify"
    else:
        label = f"vs-{doc['baseline']['stack']}"
    label = re.sub(r"[^a-z0-9._+-]", "-", label.lower())[:120]
    folder = ws.root / RESULTS_DIR / str(doc["stack"])
    stem = f"{_today()}-{label}"
    path, number = folder / f"{stem}.json", 2
    while path.exists():
        path, number = folder / f"{stem}-{number}.json", number + 1
    return path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def summary_line(doc: dict[str, Any]) -> str:
    """One line with the numbers: what the patch's `result` field gets."""
    st = doc.get("statistics")
    unit = doc["command"].get("unit") or ""
    unit = f" {unit}" if unit else ""
    if not st or not st.get("gain"):
        return f"{doc['verdict']}: {doc['reason']}"
    gain, base, cand = st["gain"], st["baseline"], st["candidate"]
    rel = st.get("relative")
    pct = f", {rel['value'] * 100:+.1f}%" if rel else ""
    return (f"{gain['value']:+.4g}{unit}{pct} ({_fmt(base['mean'])} -> {_fmt(cand['mean'])}; 95% "
            f"[{gain['low']:+.4g}, {gain['high']:+.4g}], {st['difference']['method']}, "
            f"n={base['n']}+{cand['n']})")


def baseline_line(doc: dict[str, Any]) -> str:
    st = doc.get("statistics") or {}
    source = st.get("baseline_source") or f"stack {doc['baseline']['stack']}"
    return f"{source}, trial of {doc['started'][:10]}"


def next_steps(ws: Workspace, doc: dict[str, Any], rel: str, decided: bool) -> list[str]:
    steps = []
    refs = " ".join(f"--with {r}" for r in doc["candidate"])
    verdict = doc["verdict"]
    if doc["kind"] == "verify" or decided:
        pass
    elif verdict == "promote":
        steps.append(f"promote it: patchq trial {doc['stack']} {refs} --decide (or 'patchq mark "
                     f"{doc['candidate'][0]} promoted')")
    elif verdict == "reject":
        steps.append(f"archive it with its numbers: patchq trial {doc['stack']} {refs} --decide")
    elif doc["candidate"]:
        steps.append("neutral: more repeats narrow the interval (--repeats N), or keep it out of the stack")
    steps.append(f"results: {rel}; plot: patchq results {Path(rel).stem} --plot")
    return steps


def record(ws: Workspace, t: Txn, doc: dict[str, Any], *, decide: bool) -> Recorded:
    """Stage the results file; with `decide`, the patches and the stack change too, all or nothing."""
    path = results_path(ws, doc)
    rel = ws.rel(path)
    doc["id"] = path.stem
    doc["decided"] = decide and doc["kind"] == "trial"
    data = (json.dumps(doc, indent=2) + "\n").encode()
    t.write(path, data)
    if not doc["decided"]:
        return Recorded(rel, (), False, tuple(next_steps(ws, doc, rel, False)))
    files = _decision_files(ws, doc, rel)
    for target, new in files.items():
        t.write(target, new)
    return Recorded(rel, tuple(ws.rel(p) for p in files), True,
                    tuple(next_steps(ws, doc, rel, True)))


def _decision_files(ws: Workspace, doc: dict[str, Any], rel: str) -> dict[Path, bytes]:
    """The new bytes of every patch file, series.yaml and pins.lock that the decision changes."""
    verdict = doc["verdict"]
    status = {"promote": Status.PROMOTED, "reject": Status.NEGATIVE_ARCHIVED}.get(verdict)
    line, baseline = summary_line(doc), baseline_line(doc)
    out: dict[Path, bytes] = {}
    by_upstream: dict[str, list[PatchEntry]] = {}
    for ref in doc["candidate"]:
        entry = ws.find_patch(ref)
        why = entry.why
        if status == Status.NEGATIVE_ARCHIVED:
            why = (why + "\n\n" if why else "") + f"Trial {doc['started'][:10]}: rejected, {doc['reason']}; " \
                                                  f"{line}. Results: {rel}"
        new_status = status or entry.status
        if new_status == Status.PROMOTED and entry.salvaged:
            new_status = entry.status          # salvaged from a damaged bundle: never promoted (queue.set_status)
        updated = replace(entry, status=new_status, result=line, baseline=baseline,
                          notes=tuple(n for n in entry.notes if n != rel) + (rel,), why=why)
        path = ws.patch_path(entry)
        patch = read_patch_file(path.read_bytes(), source=ws.rel(path))
        out[path] = render_patch_file(updated, patch.diff)
        by_upstream.setdefault(entry.upstream, []).append(updated)
    for upstream, updates in by_upstream.items():
        new = {e.id: e for e in updates}
        entries = [new.get(e.id, e) for e in ws.queue(upstream).entries]
        out[ws.queue_dir(upstream) / "series.yaml"] = series_bytes(ws, upstream, entries)
    if verdict == "promote":
        out[ws.lock_path] = _stack_result_bytes(ws, doc, rel)
    return out


def _stack_result_bytes(ws: Workspace, doc: dict[str, Any], rel: str) -> bytes:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    lock = ws.lock_doc = _editable(ws.lock_doc, ws.root / LOCK_NAME, LOCK_NAME)
    node = lock["stacks"][doc["stack"]]
    if node.get("result") is None:
        node["result"] = CommentedMap()
    result = node["result"]
    mean = doc["statistics"]["candidate"]["mean"]
    result["metric"] = result.get("metric") or doc["command"].get("unit") or "metric"
    result["value"] = float(f"{mean:.6g}")
    result["date"] = doc["started"][:10]
    gates = CommentedSeq([g["name"] for g in doc.get("gates") or []])
    gates.fa.set_flow_style()
    if gates:
        result["gates"] = gates
    result["record"] = rel
    return dump_yaml(lock)


def finish_interrupted(root: Path) -> bool:
    """Finish the recording of a trial killed after its transaction committed; True when there was one.

    Call it holding the workspace lock (`txn.workspace_txn` calls the same recovery itself)."""
    return recover(root)


# ---- reading results back -----------------------------------------------------------------------------------------

def load_result(path: Path, root: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"not a patchq results file: {exc}", path=os.path.relpath(path, root)) from None
    if not isinstance(doc, dict) or doc.get("patchq_results") != 1:
        raise BadInput("not a patchq results file (no 'patchq_results: 1')", path=os.path.relpath(path, root))
    doc["_path"] = os.path.relpath(path, root)
    return doc


def all_results(ws: Workspace) -> list[dict[str, Any]]:
    folder = ws.root / RESULTS_DIR
    if not folder.is_dir():
        return []
    docs = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            docs.append(load_result(path, ws.root))
        except BadInput:
            continue
    return sorted(docs, key=lambda d: (d.get("started", ""), d["_path"]))


def select_results(ws: Workspace, target: str | None) -> list[dict[str, Any]]:
    """All trials, a stack's, a patch's (by id, upstream:id or status:id), or one results file by its id."""
    docs = all_results(ws)
    if not target:
        return docs
    if target in ws.stacks:
        return [d for d in docs if d["stack"] == target]
    by_file = [d for d in docs if d.get("id") == target or Path(d["_path"]).stem == target or d["_path"] == target]
    if by_file:
        return by_file
    entry = ws.find_patch(target)
    return [d for d in docs if entry.ref in d.get("candidate", [])]


def recorded_baseline(ws: Workspace, stack_name: str) -> dict[str, Any]:
    """The stack's recorded numbers: the repeats of the trial its result came from, else just the value."""
    stack = ws.stack(stack_name)
    result = stack.result
    if result is None:
        raise BadInput(f"stack {stack_name!r} has no recorded result", path=LOCK_NAME)
    if result.record:
        path = ws.root / result.record
        if not path.is_file():
            raise BadInput(f"stack {stack_name!r}: result.record {result.record} does not exist", path=LOCK_NAME)
        doc = load_result(path, ws.root)
        values = ((doc.get("statistics") or {}).get("candidate") or {}).get("values") or []
        return {"values": values, "value": result.value, "source": result.record}
    return {"values": [], "value": result.value, "source": "pins.lock"}
