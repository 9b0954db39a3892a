"""Benchmark: `patchq import` of a generated lab folder across three upstreams, and how it grows.

    python benchmarks/bench_import.py [--files 200] [--sizes 50,100,200] [--scale 1,2,4]

The folder is what issue 12 describes: real `git diff`s of real edits in three pinned upstreams (vLLM-like,
llm-scaler-like, the lab's scripts), written the ways labs write them — plain git diffs, context-only hunks
(`@@` / `@@ def f():`), miscounted headers, `diff -u` with absolute venv paths, `.patch.gz.b64` bundles, chains
where a patch is cut on top of another (named so it sorts first), notes beside patches. Each import runs
in-process into a fresh workspace; reported: seconds per input file, the share spent anchoring hunks and
inferring requirements (from `ImportReport.timings`), and seconds per 1,000 hunk lines — which must stay about
flat as the folder grows (`--sizes`) and as hunks grow (`--scale`) for the import to be linear.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from patchq.git import Repo, run_git
from patchq.importer import ImportAction, import_paths
from patchq.workspace import load_workspace

FUNCS = 40
HEADER = re.compile(rb"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@(.*)$", re.M)


def module(tag: str, scale: int) -> str:
    body = "".join(f"    step_{k} = x + {k}\n" for k in range(scale))
    return "".join(f"def {tag}_{i}(x):\n{body}    return x + {i}\n\n\n" for i in range(FUNCS))


def make_upstreams(root: Path, scale: int) -> dict[str, tuple[Repo, str, list[str]]]:
    layout = {"vllm": [f"vllm/model_executor/models/m{k}.py" for k in range(6)],
              "llm-scaler": [f"esimd/kernels/k{k}.py" for k in range(4)],
              "lab": [f"scripts/tool{k}.py" for k in range(2)]}
    out = {}
    for name, files in layout.items():
        path = root / "src" / name
        repo = Repo.init(path)
        for n, rel in enumerate(files):
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_text(module(f"{name.replace('-', '_')}_{n}", scale))
        repo.run("add", "-A")
        repo.run("commit", "-q", "-m", "base")
        out[name] = (repo, repo.out("rev-parse", "HEAD"), files)
    return out


def make_folder(root: Path, count: int, scale: int) -> tuple[Path, Path, int]:
    """A workspace and a lab folder of `count` files; returns them and the total hunk lines written."""
    ups = make_upstreams(root, scale)
    ws = root / "ws"
    (ws / "queues").mkdir(parents=True)
    (ws / "pins.lock").write_text("version: 1\nupstreams:\n" + "".join(
        f"  {n}:\n    url: {r.path}\n    pin: {pin}\n" for n, (r, pin, _) in ups.items()) + "stacks: {}\n")
    scratch = {}
    for name, (repo, _, _) in ups.items():
        run_git(["clone", "-q", str(repo.path), str(root / "scratch" / name)])
        scratch[name] = Repo(root / "scratch" / name)
    folder = root / "lab"
    folder.mkdir()
    names = list(ups)
    sites = {n: [(f, i) for f in ups[n][2] for i in range(FUNCS)] for n in names}
    hunk_lines = 0
    n = 0
    while n < count:
        up = names[0] if n % 10 < 6 else names[1] if n % 10 < 9 else names[2]
        repo, pin, _ = ups[up]
        work = scratch[up]
        rel, func = sites[up].pop(0)
        tag = f"{up.replace('-', '_')}_{ups[up][2].index(rel)}_{func}"
        work.run("checkout", "-q", "--detach", pin)
        target = work.path / rel
        text = target.read_text()
        start = text.index(f"def {tag}(x):\n")
        end = text.index("\n\n\n", start)
        block = text[start:end].replace(" = x + ", " = x - ").replace(f"return x + {func}", f"return x + {func} + {n}")
        tuned = block.replace(f"def {tag}(x):\n", f"def {tag}(x):\n    x = x * 2  # tuned {n}\n")
        target.write_text(text[:start] + tuned + text[end:])
        diff = work.run("diff", "--no-color").stdout
        work.run("checkout", "-q", "--", ".")
        hunk_lines += sum(1 for ln in diff.split(b"\n") if ln[:1] in (b" ", b"+", b"-") and
                          not ln.startswith((b"--- ", b"+++ ")))
        kind = n % 10
        name = f"{n:03d}-change-{up}"
        if kind in (1, 7):
            (folder / f"{name}-ctx.patch").write_bytes(HEADER.sub(rb"@@", diff))
        elif kind == 2:
            m = HEADER.search(diff)
            assert m is not None
            (folder / f"{name}-miscounted.patch").write_bytes(diff[:m.start()] + b"@@ -1,99 +1,99 @@"
                                                              + diff[m.end():] + b"\nmeasured: neutral\n")
        elif kind == 3:
            (folder / f"{name}.patch.gz.b64").write_bytes(base64.encodebytes(gzip.compress(diff, mtime=0)))
        elif kind == 4:
            plain = re.sub(rb"(?m)^(diff --git .*|index .*)\n", b"", diff)
            plain = plain.replace(b"--- a/", b"--- /tmp/orig/").replace(b"+++ b/", b"+++ /home/u/venv/site-packages/")
            (folder / f"{name}.diff").write_bytes(plain)
        elif kind == 5 and n + 1 < count:
            # a chain: the follow-up is cut on top of this change and sorts before it
            (folder / f"{name}-z-base.patch").write_bytes(diff)
            work.run("apply", "--index", "-", input=diff)
            text = target.read_text().replace(f"# tuned {n}\n", f"# tuned {n} twice\n", 1)
            target.write_text(text)
            follow = work.run("diff", "--no-color", "--", rel).stdout
            work.run("reset", "-q", "--hard")
            (folder / f"{name}-a-followup.patch").write_bytes(follow)
            hunk_lines += sum(1 for ln in follow.split(b"\n") if ln[:1] in (b" ", b"+", b"-") and
                              not ln.startswith((b"--- ", b"+++ ")))
            n += 1
        else:
            (folder / f"{name}.patch").write_bytes(b"Change %d\n\nWhy it helps.\n\n" % n + diff)
            if kind == 9:
                (folder / f"{name}.md").write_text(f"# change {n}\n\nmeasured {n} tok/s\n")
        n += 1
    return ws, folder, hunk_lines


def run(count: int, scale: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="patchq-bench-import-"))
    try:
        ws, folder, hunk_lines = make_folder(root, count, scale)
        files = len(list(folder.iterdir()))
        started = time.perf_counter()
        report = import_paths(load_workspace(ws), [folder])
        total = time.perf_counter() - started
        actions = [i.action for i in report.items]
        return {"files": files, "hunk_lines": hunk_lines, "seconds": total, "timings": report.timings,
                "imported": actions.count(ImportAction.IMPORTED), "skipped": actions.count(ImportAction.SKIPPED),
                "requires": sum(1 for i in report.items if i.requires),
                "outcomes": sorted({i.outcome for i in report.items if i.outcome})}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def show(label: str, r: dict) -> None:
    t = r["timings"]
    anchor, depends = t.get("anchor", 0.0), t.get("depends", 0.0)
    print(f"{label:>14}: {r['files']:4d} files, {r['hunk_lines']:6d} hunk lines: {r['seconds']:6.2f} s "
          f"({1000 * r['seconds'] / r['files']:5.1f} ms/file, {1000 * r['seconds'] / r['hunk_lines']:5.2f} "
          f"ms/hunk line); anchoring {100 * anchor / r['seconds']:4.1f} %, requirements "
          f"{100 * depends / r['seconds']:4.1f} %; imported {r['imported']}, skipped {r['skipped']}, "
          f"with requires {r['requires']}, outcomes {','.join(r['outcomes'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--sizes", default="50,100,200", help="folder sizes for the growth check")
    parser.add_argument("--scale", default="1,4,16", help="hunk sizes (lines added to every function)")
    args = parser.parse_args()
    print("phases of the 200-file import:")
    main_run = run(args.files, 1)
    show(f"{args.files} files", main_run)
    print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(main_run["timings"].items())))
    print("growth with the number of files (same hunk size):")
    for size in (int(s) for s in args.sizes.split(",")):
        show(f"{size} files", run(size, 1))
    print("growth with the size of the hunks (same number of files):")
    for scale in (int(s) for s in args.scale.split(",")):
        show(f"x{scale} hunks", run(args.files // 2, scale))


if __name__ == "__main__":
    main()
