"""Move a stack's queue for one upstream onto a new upstream commit or release: a state machine that survives kill -9.

The modules: `state` (results, files on disk, the saved state, the report), `survey` (what moves, renames and
deletions between the bases, before/after runs, patch-ids, breaking-commit bisection), `worktree` (the resolution
work tree), `finish` (regenerated files, the swap, range-diff by Patchq-Id) and `engine` (start, advance, continue,
skip, abort).
"""

from .engine import (
                    abort_rebase,
                    continue_rebase,
                    rebase_in_progress,
                    skip_patch,
                    start_rebase,
)
from .state import (
                    CRASH_ENV,
                    CRASH_POINTS,
                    BreakingCommit,
                    ConflictStop,
                    QueueChange,
                    RebasePaths,
                    RebaseReport,
                    RebaseStep,
                    SideCheck,
                    StepKind,
                    crash_point,
                    range_diff_path,
                    workspace_rr_cache,
)
from .survey import check_bound, find_breaking_commit, judge_at, path_closure

__all__ = ["CRASH_ENV", "CRASH_POINTS", "BreakingCommit", "ConflictStop", "QueueChange", "RebasePaths", "RebaseReport",
           "RebaseStep", "SideCheck", "StepKind", "abort_rebase", "check_bound", "continue_rebase", "crash_point",
           "find_breaking_commit", "judge_at", "path_closure", "range_diff_path", "rebase_in_progress", "skip_patch",
           "start_rebase", "workspace_rr_cache"]
