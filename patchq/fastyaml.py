"""Read the plain subset of YAML that patchq's files use with libyaml, ~15x faster than ruamel's round trip.

A 200-patch series.yaml takes ruamel's pure-Python round-trip loader about half a second, and every command reads
every queue. libyaml (PyYAML's C parser) produces the events; this module builds the very documents the round-trip
loader would (CommentedMap / CommentedSeq with the same line data, scalars resolved and constructed by ruamel's own
YAML 1.2 resolver and constructor), so the rest of patchq cannot tell them apart. (One thing differs and nothing
reads it: the position recorded for an empty value, which libyaml puts after the colon and ruamel at the next token.)

It only answers when it is sure. Anything outside the plain subset (tags, anchors, aliases, merge keys, duplicate
or non-text keys, deep nesting, a scalar ruamel would refuse, several documents, any libyaml error) returns None,
and the caller loads the file with the exact loader, which also gives the error message. Documents read here carry
no comments, so code that rewrites a file loads it again with the round-trip loader (`is_fast`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode

if TYPE_CHECKING:     # the checker only: at run time the import below may fail, and then no event arrives
    from yaml.events import ScalarEvent

_parse: Callable[..., Iterator[Any]] | None
_Loader: type | None
try:
    import yaml as _pyyaml
    _Loader = _pyyaml.CSafeLoader         # absent when PyYAML was built without libyaml: then never fast
    _parse = _pyyaml.parse
except (ImportError, AttributeError):
    _parse = None
    _Loader = None

_STR = "tag:yaml.org,2002:str"
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp")}

# Where libyaml and ruamel are known to judge text differently (tabs, control and non-BMP characters, byte-order
# marks, directives), or where a replacement character stands for undecodable bytes: leave it to the exact loader.
_ODD = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ufeff\ufffd\U00010000-\U0010ffff]|^%", re.M)


class FastMap(CommentedMap):
    """A mapping read by libyaml: the same data and line numbers as ruamel's, without comments."""


class FastSeq(CommentedSeq):
    """A sequence read by libyaml: the same data and line numbers as ruamel's, without comments."""


class _Unsure(Exception):
    """The document leaves the plain subset: let the exact loader decide."""


def is_fast(doc: Any) -> bool:
    return isinstance(doc, (FastMap, FastSeq))


def load(text: str, *, max_depth: int) -> Any | None:
    """The document ruamel's round-trip loader would return for `text`, or None when this reader is not sure."""
    if _Loader is None or _parse is None or _ODD.search(text):
        return None
    try:
        return _Builder(max_depth).build(_parse(text, Loader=_Loader))
    except Exception:        # any doubt at all, including libyaml's own errors: the exact loader speaks
        return None


class _Builder:
    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        rt = YAML(typ="rt")
        rt.preserve_quotes = True
        self.resolver, self.constructor = rt.resolver, rt.constructor

    def build(self, events: Iterator[Any]) -> Any:     # PyYAML's events, told apart by class name
        # Each open container: [node, pending key or _NO_KEY, key line, key column, flow style]
        stack: list[list[Any]] = []
        root: Any = _NO_KEY
        documents = 0
        for event in events:
            name = type(event).__name__
            if name in ("StreamStartEvent", "StreamEndEvent", "DocumentEndEvent"):
                continue
            if name == "DocumentStartEvent":
                documents += 1
                if documents > 1 or getattr(event, "version", None) or getattr(event, "tags", None):
                    raise _Unsure
                continue
            if name == "AliasEvent" or getattr(event, "anchor", None) is not None:
                raise _Unsure
            mark = event.start_mark
            if name in ("MappingStartEvent", "SequenceStartEvent"):
                if event.tag is not None:
                    raise _Unsure
                if len(stack) >= self.max_depth:
                    raise _Unsure
                node = FastMap() if name == "MappingStartEvent" else FastSeq()
                node._yaml_set_line_col(mark.line, mark.column)
                flow = bool(event.flow_style)
                root = self._place(stack, root, node, mark)
                stack.append([node, _NO_KEY, 0, 0, flow])
            elif name in ("MappingEndEvent", "SequenceEndEvent"):
                top = stack.pop()
                if top[1] is not _NO_KEY:
                    raise _Unsure
                if len(top[0]):                    # as ruamel marks the style of non-empty collections
                    if top[4]:
                        top[0].fa.set_flow_style()
                    else:
                        top[0].fa.set_block_style()
            elif name == "ScalarEvent":
                root = self._place(stack, root, self._scalar(event), mark)
            else:
                raise _Unsure
        if documents != 1 or root is _NO_KEY or stack:
            raise _Unsure
        return root

    def _place(self, stack: list[list[Any]], root: Any, value: Any, mark: Any) -> Any:
        if not stack:
            if root is not _NO_KEY:
                raise _Unsure
            return value
        top = stack[-1]
        node = top[0]
        if isinstance(node, FastSeq):
            node._yaml_set_idx_line_col(len(node), [mark.line, mark.column])
            node.append(value)
        elif top[1] is _NO_KEY:
            if not isinstance(value, str) or value == "<<" or value in node:
                raise _Unsure
            top[1:4] = [value, mark.line, mark.column]
        else:
            key = top[1]
            node._yaml_set_kv_line_col(key, [top[2], top[3], mark.line, mark.column])
            node[key] = value
            top[1] = _NO_KEY
        return root

    def _scalar(self, event: ScalarEvent) -> Any:
        if event.tag is not None:          # even `!`: the exact loader refuses every tag
            raise _Unsure
        if event.style:                    # quoted or block scalar: text as written (ruamel keeps a str subclass)
            return str(event.value)
        tag = self.resolver.resolve(ScalarNode, event.value, (True, False))
        name = str(tag)                     # ruamel's Tag compares with str but does not hash like one
        if name == _STR:
            return str(event.value)
        if name not in _PLAIN_TAGS:          # `=` (the value key) and the like: not patchq's to read quickly
            raise _Unsure
        return self.constructor.construct_object(ScalarNode(tag, event.value), deep=True)


_NO_KEY = object()
