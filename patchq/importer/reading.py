"""Reading every input into candidates (one per patch or mbox message) and notes, in the order given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..bundle import Manifest, read_bundle, read_manifest, sha256_hex
from ..errors import BadInput
from ..patchtext import is_mbox, split_mbox
from ..workspace import SERIES_NAME
from ..yamlio import load as load_yaml
from .decode import clean_text, read_bytes
from .inputs import Candidate, InputFile, NoteFile, candidate
from .items import ImportAction, ImportItem, Order, Refused, State
from .naming import NOTE_SUFFIXES, stem_of


@dataclass
class Reading:
    singles: list[tuple[Order, Candidate]] = field(default_factory=list)
    groups: dict[int, list[tuple[Order, Candidate]]] = field(default_factory=dict)
    notes: list[NoteFile] = field(default_factory=list)
    count: int = 0
    next_group: int = 0
    manifests: dict[Path, tuple[Path, Manifest]] = field(default_factory=dict)   # bundle path -> its manifest
    metadata: dict[Path, str] = field(default_factory=dict)                      # export files that are not patches
    ordered_folders: set[Path] = field(default_factory=set)   # patchq folders whose patch files apply in order
    folder_groups: dict[Path, int] = field(default_factory=dict)
    broken_manifests: dict[Path, str] = field(default_factory=dict)   # folder/label of an invalid manifest -> why


def _find_manifests(inputs: list[InputFile], read: Reading) -> None:
    """patchq export manifests among the inputs: they name the upstream and the checksums of their bundle."""
    for item in inputs:
        if item.path.name == SERIES_NAME and not item.problem and _is_patchq_series(item.path):
            read.metadata[item.path] = "series.yaml of a patchq queue: its folder's patch files are applied in order"
            read.ordered_folders.add(item.path.parent)
            continue
        if not item.path.name.endswith(".manifest.json") or item.problem:
            continue
        try:
            manifest = read_manifest(item.path)
        except BadInput as exc:      # its bundle must not be imported unchecked: refuse the files it would cover
            label = item.path.name[: -len(".manifest.json")]
            read.broken_manifests[item.path.parent / label] = f"{item.path.name} is invalid ({exc.message})"
            continue
        except OSError:
            continue
        read.manifests[item.path.parent / manifest.bundle] = (item.path, manifest)
        if manifest.format == "patch":
            read.ordered_folders.add(item.path.parent / manifest.bundle)
        read.metadata[item.path] = f"manifest of the patchq bundle {manifest.bundle}: used to check it and place it " \
                                   f"in {manifest.upstream}"
        readme = item.path.parent / f"{manifest.label}.repro.md"
        read.metadata[readme] = f"repro instructions of the patchq bundle {manifest.bundle} (not a note)"


def _is_patchq_series(path: Path) -> bool:
    try:
        doc = load_yaml(path, what=SERIES_NAME)
    except (BadInput, OSError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("patches"), list)


def _check_against_manifest(item: InputFile, read: Reading, limit: int) -> tuple[str, list[str]]:
    """The upstream a manifest names for this input, after checking the input against the manifest."""
    for label, why in read.broken_manifests.items():
        if item.path == label.parent / f"{label.name}.manifest.json":
            raise Refused(f"manifest {why.partition(' is ')[2]}: the bundle it describes is not imported")
        if item.path.parent == label.parent and item.path.name.startswith(label.name + ".") \
                or item.path.parent == label or label in item.path.parents:
            raise Refused(f"its manifest {why}: not imported unchecked")
    found = read.manifests.get(item.path) or read.manifests.get(item.path.parent)
    if found is None:
        return "", []
    manifest_path, manifest = found
    if item.path == manifest_path.parent / manifest.bundle:
        try:
            read_bundle(item.path, limit=limit, manifest=manifest)
        except BadInput as exc:
            raise Refused(f"does not match its manifest {manifest_path.name}: {exc.message}") from None
    else:
        expected = manifest.files.get(f"{manifest.bundle}/{item.path.name}")
        if expected is not None and sha256_hex(item.path.read_bytes()) != expected:
            raise Refused(f"does not match the checksum in its manifest {manifest_path.name}")
    return manifest.upstream, [f"checked against {manifest_path.name}"]


def read_all(inputs: list[InputFile], limit: int, state: State, *, salvage: bool = False) -> Reading:
    read = Reading()
    _find_manifests(inputs, read)
    counter = 0
    for item in inputs:
        counter += 1
        read.count += 1
        if item.path in read.metadata and item.members is None:
            state.add((counter, 0), ImportItem(item.source, ImportAction.METADATA, reason=read.metadata[item.path]))
            continue
        if item.members is not None:
            state.add((counter, 0), ImportItem(item.source, ImportAction.SERIES,
                                               reason=f"quilt series of {len(item.members)} patch(es)",
                                               remarks=item.problems))
            read.next_group += 1
            group = read.next_group
            for member in item.members:
                counter += 1
                read.count += 1
                _read_one(member, counter, group, limit, state, read, salvage)
            continue
        _read_one(item, counter, None, limit, state, read, salvage)
    return read


def _read_one(item: InputFile, counter: int, group: int | None, limit: int, state: State, read: Reading,
              salvage: bool) -> None:
    order = (counter, 0)
    if item.problem:
        state.add(order, ImportItem(item.source, ImportAction.SKIPPED, reason=item.problem))
        return
    try:
        if item.path.name.lower().endswith(NOTE_SUFFIXES):
            if item.path.stat().st_size > limit:
                raise Refused(f"file is over the size limit of {limit} bytes (--max-size)")
            read.notes.append(NoteFile(item, item.path.read_bytes(), stem_of(item.path.name), order))
            return
        hint, checked = _check_against_manifest(item, read, limit)
        decoded = read_bytes(item, limit, salvage=salvage)
        remarks, bundle = checked + decoded.remarks, decoded.bundle
        data, more = clean_text(decoded.data)
        messages = split_mbox(data) if is_mbox(data) and not decoded.salvaged else None
    except Refused as exc:
        state.add(order, ImportItem(item.source, ImportAction.SKIPPED, reason=exc.reason))
        return
    except OSError as exc:
        state.add(order, ImportItem(item.source, ImportAction.SKIPPED, reason=f"cannot read it: {exc.strerror}"))
        return
    if messages is None:
        messages = [(1, data)]
        many = False
    else:
        many = len(messages) > 1
    if group is None and item.path.parent in read.ordered_folders:
        if item.path.parent not in read.folder_groups:          # a patchq folder of patch files: in order
            read.next_group += 1
            read.folder_groups[item.path.parent] = read.next_group
        group = read.folder_groups[item.path.parent]
    if many and group is None:
        read.next_group += 1
        group = read.next_group
    for number, (_, chunk) in enumerate(messages, 1):
        source = f"{item.source}#{number}" if many else item.source
        sub = (counter, number - 1)
        try:
            cand = candidate(item, source, number if many else None, chunk, remarks + more, bundle)
            cand.salvaged = decoded.salvaged
        except Refused as exc:
            reason = exc.reason
            if many and reason.startswith("not a diff"):
                reason = "a message without a diff (a cover letter?): nothing to import"
            state.add(sub, ImportItem(source, ImportAction.SKIPPED, reason=reason))
            continue
        cand.group = group
        cand.hint = hint
        if group is None:
            read.singles.append((sub, cand))
        else:
            read.groups.setdefault(group, []).append((sub, cand))


