"""Whether a value turns a flag on: the lab's on/off words, numbers as switches, and an explicit "unknown".

Every language judges defaults the same way, and so does `is_default_off` for a FlagRead built by hand (from a run
profile, say), so the rules live once, here.
"""

from __future__ import annotations

from typing import Callable

from ..model import FlagIdiom, FlagRead

OFF_WORDS = frozenset({"", "0", "false", "no", "off"})
ON_WORDS = frozenset({"1", "true", "yes", "on"})


class _Unknown:
    """The value a variable would have when unset, where that cannot be worked out."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


def flag_truth(value: object) -> object:
    """Truth of a value the way flags are meant: "0", "false", "no", "off" and "" are off. Unknown stays unknown."""
    if value is UNKNOWN:
        return UNKNOWN
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in OFF_WORDS
    try:
        return bool(value)
    except Exception:  # an exotic literal's __bool__; nothing to judge
        return UNKNOWN


def boolean_word(value: object) -> bool | None:
    """On/off for a value used as text: only words that plainly mean on or off decide."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return {0: False, 1: True}.get(value)  # type: ignore[call-overload]
    if isinstance(value, str):
        word = value.strip().lower()
        if word in OFF_WORDS:
            return False
        if word in ON_WORDS:
            return True
    return None


def numeric_on(value: object, idiom: FlagIdiom) -> bool | None:
    """A number read as a tunable: 0 is off, an int 1 is on, anything else is a size, not a switch."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value == 0:
        return False
    if idiom is FlagIdiom.INT and value == 1:
        return True
    return None


def parse_number(value: object, kind: type) -> object:
    if value is UNKNOWN or value is None:
        return UNKNOWN
    if isinstance(value, (bool, int, float)):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return UNKNOWN
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


def negate(value: object) -> object:
    return value if value is UNKNOWN else not value


def apply_compare(compare: Callable[[object, object], object] | None, left: object, right: object) -> object:
    if compare is None or left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    try:
        return bool(compare(left, right))
    except TypeError:
        return UNKNOWN
