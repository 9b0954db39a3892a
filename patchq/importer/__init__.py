"""Import a lab's patch folder into annotated queues: loose diffs, bundles, notes, quilt series and mbox files.

Labs keep patches the way they were made: `git diff` and `diff -u` output with absolute paths from a venv or /tmp,
hand-written hunks without line numbers, base64-of-gzip bundles, markdown notes, names that carry the verdict and
the date. Import turns each into a queue entry: the diff read leniently (`patchtext.lenient`) with each repair
named, paths made repo-relative against the pinned trees, hunks anchored in the target file, the upstream chosen by
where the paths exist *and* where the patch applies, requirements on other patches inferred, a patch that spans
two upstreams split in two, status and date read from the name, duplicates and cumulative snapshots found.

Every input file ends up in the report, and nothing reaches the workspace until the whole result has been staged
and loaded back as a valid workspace. The modules, in the order the work flows:

| module | owns |
| --- | --- |
| `inputs` / `decode` / `reading` | folders and quilt series walked; bundles decoded (damage measured, salvaged) |
| `naming` | verdicts, dates and ids from names and text; the --map file |
| `paths` | written paths made repo-relative against a pinned tree; the canonical diff |
| `anchor` | hunks without trustworthy line numbers placed by their context |
| `placer` | which upstream, judged with apply's classifier; splits; series |
| `depends` | requirements inferred from the lines a patch needs; missing context |
| `plan` | duplicates, ids, statuses, containment, final entries and bytes |
| `stage` | staging, loading back, moving in under a journal |
| `run` | `import_paths`: the whole flow |
"""

from ..patchtext.lenient import read_lenient as scan_diff
from .inputs import Head, parse_head, safe_description
from .items import ImportAction, ImportItem, ImportReport, MissingLine, Refused
from .naming import MapRule, date_from_name, load_map, slug_of, status_from_name, status_from_text, stem_of
from .run import import_paths

__all__ = ["Head", "ImportAction", "ImportItem", "ImportReport", "MapRule", "MissingLine", "Refused",
           "date_from_name", "import_paths", "load_map", "parse_head", "safe_description",
           "scan_diff", "slug_of", "status_from_name", "status_from_text", "stem_of"]
