"""Whether a value turns a flag on: the lab's on/off words, numbers as switches, and an explicit "unknown".

Every language judges defaults the same way, and so does `is_default_off` for a FlagRead built by hand (from a run
profile, say), so the rules live once, here.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal, TypeAlias, TypeVar

from ..model import FlagIdiom, FlagRead

OFF_WORDS = frozenset({"", "0", "false", "no", "off"})
ON_WORDS = frozenset({"1", "true", "yes", "on"})


class _Unknown(Enum):
    """The value a variable would have when unset, where that cannot be worked out (an enum of one member, so the
    type checker narrows on `value is UNKNOWN`)."""

    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Final = _Unknown.UNKNOWN

# What a variable's unset value can be while it is followed through the code that consumes it: the text itself, a
# literal default (Python's str/bool/int/float/None), a parsed number, a decided truth (bool), or unknown.
Value: TypeAlias = str | int | float | None | _Unknown
Truth: TypeAlias = bool | _Unknown
Comparison: TypeAlias = Literal["==", "!=", "<", "<=", ">", ">="]


def flag_truth(value: Value) -> Truth:
    """Truth of a value the way flags are meant: "0", "false", "no", "off" and "" are off. Unknown stays unknown."""
    if value is UNKNOWN:
        return UNKNOWN
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in OFF_WORDS
    return bool(value)


def boolean_word(value: Value) -> bool | None:
    """On/off for a value used as text: only words that plainly mean on or off decide."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return False if value == 0 else True if value == 1 else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in OFF_WORDS:
            return False
        if word in ON_WORDS:
            return True
    return None


def numeric_on(value: Value, idiom: FlagIdiom) -> bool | None:
    """A number read as a tunable: 0 is off, an int 1 is on, anything else is a size, not a switch."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value == 0:
        return False
    if idiom is FlagIdiom.INT and value == 1:
        return True
    return None


def parse_number(value: Value, kind: type[int] | type[float]) -> int | float | _Unknown:
    """`int(value)` / `float(value)`, or unknown where that would raise (text that is no number, int() of an
    infinite or NaN float)."""
    if value is UNKNOWN or value is None:
        return UNKNOWN
    try:
        return kind(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return UNKNOWN


def default_on_from_fields(read: FlagRead) -> bool | None:
    idiom, default = read.idiom, read.default
    if idiom is FlagIdiom.PRESENCE:
        return False
    if idiom is FlagIdiom.TRUTHY:
        truth = flag_truth(default)
        return truth if isinstance(truth, bool) else None
    if idiom is FlagIdiom.EQUALS:
        if read.compared_to is None:
            return None
        return default is not None and default in read.compared_to.split("|")
    if idiom in (FlagIdiom.INT, FlagIdiom.FLOAT):
        return numeric_on(parse_number(default, int if idiom is FlagIdiom.INT else float), idiom)
    return boolean_word(default)


def negate(value: Truth) -> Truth:
    return value if value is UNKNOWN else not value


def compare_values(op: Comparison | None, left: Value, right: Value) -> Truth:
    """`left op right` as Python judges it; unknown where either side is unknown or Python would raise TypeError
    (ordering None, or text against a number)."""
    if op is None or left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if isinstance(left, str) and isinstance(right, str):
        return _ordered(op, left, right)
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return _ordered(op, left, right)
    return UNKNOWN


_Ordered = TypeVar("_Ordered", str, float)


def _ordered(op: Literal["<", "<=", ">", ">="], left: _Ordered, right: _Ordered) -> bool:
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right
