"""Shell env reads: `$X`/`${X:-d}` expansions of variables the script does not set itself, and the exports it sets.

A one-pass lexer gives every character a state (code, quoted, comment, heredoc ...), so only expanding text counts;
the tests around an expansion (`= "1"`, `-eq`, `-n`, `(( ))`) decide its idiom. A dotenv file's plain assignments
are sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..model import FlagIdiom, FlagRead
from .located import Lines, Located, located
from .text import ENV_NAME, end_of_line, squash, unquote, with_quotes
from .truth import UNKNOWN, Comparison, Truth, Value, boolean_word, compare_values, flag_truth, negate, parse_number

LANGUAGE = "shell"

_SHELL_SPECIALS = frozenset({
    "HOME", "PATH", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TMPDIR", "HOSTNAME",
    "HOSTTYPE", "OSTYPE", "MACHTYPE", "UID", "EUID", "GROUPS", "PPID", "RANDOM", "SRANDOM", "SECONDS", "LINENO",
    "IFS", "PS1", "PS2", "PS3", "PS4", "OPTARG", "OPTIND", "OPTERR", "REPLY", "SHLVL", "COLUMNS", "LINES", "DISPLAY",
    "EDITOR", "VISUAL", "PAGER", "MAIL", "MAILPATH", "MAILCHECK", "TZ", "DIRSTACK", "EPOCHSECONDS", "EPOCHREALTIME",
    "CDPATH", "MANPATH", "FUNCNAME", "PIPESTATUS", "BASH", "BASHPID", "BASHOPTS", "SHELLOPTS", "PROMPT_COMMAND",
    "POSIXLY_CORRECT", "FCEDIT", "HOSTFILE", "INPUTRC", "ZSH_VERSION", "ZSH_NAME", "KSH_VERSION", "ENV",
    "IGNOREEOF", "TIMEFORMAT", "TMOUT", "PROMPT_DIRTRIM", "GLOBIGNORE", "FIGNORE"})
_SHELL_SPECIAL_PREFIXES = ("LC_", "BASH_", "COMP_", "HIST", "READLINE_")
_SHELL_UPPER = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_SHELL_PARAM = re.compile(r"([A-Za-z_]\w*)(?:(:?[-=+?])([\s\S]*))?\Z")
_SHELL_PARAM_OTHER = re.compile(r"([A-Za-z_]\w*)(?=[%#/^,:@])")
_SHELL_ASSIGN = re.compile(r"([A-Za-z_]\w*)(\+?)=([\s\S]*)\Z")
_SHELL_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:(['\"])([^'\"\n]+)\2|\\?([A-Za-z_][\w.-]*))")
_SHELL_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}", "fi",
                             "done", "exec", "command", "nohup"})
_SHELL_SEPARATORS = frozenset("\n;&|()")
_TEST_OPERATORS: dict[str, Comparison] = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}

# Lexer states, one character per position of the text.
_CODE, _NESTED, _DQUOTE, _SQUOTE, _COMMENT, _ESCAPED, _HEREDOC, _HEREDOC_LITERAL = "cndsxehH"
# The characters _shell_states acts on in each construct; every other character keeps the construct's state.
_CODE_SPECIAL = re.compile(r"[\\#'\"$`<\n]")
_NESTED_SPECIAL = re.compile(r"[\\#'\"$`<\n(){}]")
_DQUOTE_SPECIAL = re.compile(r"[\\\"$`]")
_EXPANDING = frozenset((_CODE, _NESTED, _DQUOTE, _HEREDOC))


@dataclass(frozen=True)
class _Expansion:
    name: str
    start: int
    end: int
    op: str                        # "" for $X / ${X}; ":-" "-" ":=" "=" ":+" "+" ":?" "?"; "other" for ${X%..}
    word: str


@dataclass(frozen=True)
class _Assignment:
    """`NAME=value` as one shell word: where it is and the value as written."""

    name: str
    start: int
    end: int
    value: str


_NEAR = 256        # characters around a shell expansion where the test that uses it is looked for


def reads(path: str, text: str) -> list[Located]:
    return _ShellScript(path, text).reads()


class _ShellScript:
    """A shell script: which characters are code, which names it sets, and its reads and exports."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.states = _shell_states(text)
        self.lines = Lines(text)
        self.is_dotenv = PurePosixPath(path.replace("\\", "/")).name.lower().endswith(".env")
        self.commands = _shell_commands(text, self.states)
        self.expansions = list(self._expansions())
        self.wrapping = [e for e in self.expansions if "$" in e.word]

    def reads(self) -> list[Located]:
        sets, assigned = self._sets()
        assigned |= {e.name for e in self.expansions if e.op in (":=", "=")}
        found = [self._set_found(assignment) for assignment in sets]
        found += [self._read_found(e) for e in self.expansions
                  if self._reported(e, assigned) and not self._inside_own_expansion(e)]
        return found

    def _inside_own_expansion(self, expansion: _Expansion) -> bool:
        """`${TP:+--tp $TP}`: the inner $TP is part of the outer read of TP."""
        return any(other.name == expansion.name and other.start < expansion.start and expansion.end <= other.end
                   for other in self.wrapping)

    # -- reads -------------------------------------------------------------------------------------------------------

    def _expansions(self) -> Iterator[_Expansion]:
        for match in re.finditer(r"\$", self.text):
            start = match.start()
            if self.states[start] not in _EXPANDING:
                continue
            expansion = self._expansion_at(start)
            if expansion is not None:
                yield expansion

    def _expansion_at(self, start: int) -> _Expansion | None:
        text = self.text
        if text.startswith("${", start):
            close = _shell_brace_end(text, start + 2)
            if close is None:
                return None
            inner = text[start + 2:close]
            match = _SHELL_PARAM.match(inner)
            if match:
                return _Expansion(match.group(1), start, close + 1, match.group(2) or "", match.group(3) or "")
            other = _SHELL_PARAM_OTHER.match(inner)
            if other and not inner[len(other.group(1)):].startswith(("[", "@")):
                return _Expansion(other.group(1), start, close + 1, "other", "")
            return None
        match = re.compile(r"[A-Za-z_]\w*").match(text, start + 1)
        return _Expansion(match.group(), start, match.end(), "", "") if match else None

    def _reported(self, expansion: _Expansion, assigned: set[str]) -> bool:
        name = expansion.name
        if _is_shell_special(name):
            return False
        upper = bool(_SHELL_UPPER.match(name))
        if expansion.op in (":-", "-", ":=", "="):
            return upper or name not in assigned
        return upper and name not in assigned

    def _read_found(self, expansion: _Expansion) -> Located:
        start, end = with_quotes(self.text, expansion.start, expansion.end)
        unset = _unset_value(expansion)
        default = unquote(expansion.word) if expansion.op in (":-", "-", ":=", "=") else None
        idiom, compared, on, outer_start, outer_end = self._judge(expansion, unset, start, end)
        if expansion.op in (":=", "=") and self._is_colon_command(start):
            idiom, on = FlagIdiom.SET, boolean_word(default)
        read = FlagRead(
            name=expansion.name, path=self.path, line=self.lines.of(expansion.start), language="shell",
            default=default, idiom=idiom, compared_to=compared, default_on=on,
            expression=squash(self.text[outer_start:outer_end]))
        column = expansion.start - self.lines.start(self.lines.of(expansion.start))
        return located(read, self.lines.of(outer_start), self.lines.of(max(outer_start, outer_end - 1)), column)

    def _judge(self, expansion: _Expansion, unset: Value, start: int, end: int
               ) -> tuple[FlagIdiom, str | None, bool | None, int, int]:
        """How `[ "${X:-0}" = "1" ]`, `-eq`, `-n`, `(( ))` or `${X:+..}` use the value; else it is text.

        Only the stretch of the line around the expansion is looked at (`_NEAR` characters each way): a test's
        operator and operand sit next to it, and a 40 KB one-line script must stay linear.
        """
        line_start = max(self.text.rfind("\n", 0, start) + 1, start - _NEAR)
        line_end = min(end_of_line(self.text, end), end + _NEAR)
        before, after = self.text[line_start:start], self.text[end:line_end]
        if expansion.op in (":+", "+"):
            return FlagIdiom.PRESENCE, None, False, expansion.start, expansion.end
        match = re.match(r"\s+(==?|!=)\s+(\"[^\"]*\"|'[^']*'|[^\s\]);]+)", after)
        if match:
            literal = unquote(match.group(2))
            value = compare_values("==" if match.group(1) != "!=" else "!=", unset, literal)
            return FlagIdiom.EQUALS, literal, _decided(value), start, end + match.end()
        match = re.search(r"(\"[^\"]*\"|'[^']*'|[^\s\[;]+)\s+(==?|!=)\s+\Z", before)
        if match:
            literal = unquote(match.group(1))
            value = compare_values("==" if match.group(2) != "!=" else "!=", unset, literal)
            return FlagIdiom.EQUALS, literal, _decided(value), line_start + match.start(), end
        match = re.match(r"\s+-(eq|ne|gt|ge|lt|le)\s+[\"']?(-?\d+)", after)
        if match:
            value = compare_values(_TEST_OPERATORS[match.group(1)], parse_number(unset, int), int(match.group(2)))
            return FlagIdiom.INT, match.group(2), _decided(value), start, end + match.end()
        match = re.search(r"(-?\d+)[\"']?\s+-(eq|ne|gt|ge|lt|le)\s+\Z", before)
        if match:
            flipped = _TEST_OPERATORS[_FLIPPED[match.group(2)]]
            value = compare_values(flipped, parse_number(unset, int), int(match.group(1)))
            return FlagIdiom.INT, match.group(1), _decided(value), line_start + match.start(), end
        match = re.search(r"-([nz])\s+\Z", before)
        if match:
            truth = flag_truth(unset)
            value = negate(truth) if match.group(1) == "z" else truth
            return FlagIdiom.TRUTHY, None, _decided(value), line_start + match.start(), end
        if re.search(r"\(\(\s*\Z", before) and re.match(r"\s*\)\)", after):
            number = parse_number(unset, int)
            return FlagIdiom.INT, None, None if number is UNKNOWN else number != 0, start, end
        on = boolean_word(unset) if expansion.op in (":-", "-", ":=", "=") else None
        return FlagIdiom.STRING, None, on, expansion.start, expansion.end

    def _is_colon_command(self, start: int) -> bool:
        line_start = self.text.rfind("\n", 0, start) + 1
        near = max(line_start, start - _NEAR)
        pattern = r"(?:^|[;&|]|\bthen|\bdo)\s*:\s+\Z" if near == line_start else r"(?:[;&|]|\bthen|\bdo)\s*:\s+\Z"
        return bool(re.search(pattern, self.text[near:start]))

    # -- sets ----------------------------------------------------------------------------------------------------------

    def _sets(self) -> tuple[list[_Assignment], set[str]]:
        """Each export / prefix / env assignment (and exported plain one), and every name the script assigns."""
        sets: list[_Assignment] = []
        plain: list[_Assignment] = []
        assigned: set[str] = set()
        exported: set[str] = set()
        allexport_from: int | None = None
        for words in self.commands:
            words = _without_keywords(self.text, words)
            if not words:
                continue
            head = self.text[words[0][0]:words[0][1]]
            args = [self.text[s:e] for s, e in words]
            if head == "set" and ("-a" in args[1:] or "allexport" in args[1:]):
                allexport_from = words[0][0] if allexport_from is None else allexport_from
            new_sets, new_plain, new_assigned, new_exported = _command_assignments(self.text, words)
            sets += new_sets
            plain += new_plain
            assigned |= new_assigned
            exported |= new_exported
        for assignment in plain:
            if self.is_dotenv or assignment.name in exported or (
                    allexport_from is not None and assignment.start > allexport_from):
                sets.append(assignment)
        return [a for a in sets if not _is_shell_special(a.name)], assigned

    def _set_found(self, assignment: _Assignment) -> Located:
        literal = unquote(assignment.value)
        on = boolean_word(literal) if "$" not in literal and "`" not in literal else None
        line = self.lines.of(assignment.start)
        read = FlagRead(name=assignment.name, path=self.path, line=line, language="shell", default=literal,
                        idiom=FlagIdiom.SET, default_on=on,
                        expression=squash(self.text[assignment.start:assignment.end]))
        return located(read, line, self.lines.of(max(assignment.start, assignment.end - 1)),
                        assignment.start - self.lines.start(line))


def _decided(value: Truth) -> bool | None:
    return None if value is UNKNOWN else bool(value)


def _unset_value(expansion: _Expansion) -> Value:
    if expansion.op in (":-", "-", ":=", "="):
        return unquote(expansion.word)
    if expansion.op in (":?", "?"):
        return UNKNOWN
    return ""


def _is_shell_special(name: str) -> bool:
    return name in _SHELL_SPECIALS or name.startswith(_SHELL_SPECIAL_PREFIXES)


def _shell_brace_end(text: str, start: int) -> int | None:
    """Offset of the `}` closing a `${` whose contents start at `start` (nested ${..} and quotes respected)."""
    depth, index, limit = 1, start, min(len(text), start + 4000)
    while index < limit:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "'":
            close = text.find("'", index + 1, limit)
            index = limit if close < 0 else close + 1
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


@dataclass(slots=True)
class _Open:
    """One open construct of the lexer: _CODE (the script), _NESTED (`$(`), "`", "{" (`${`) or _DQUOTE, with how
    many of its own brackets are open inside it."""

    kind: str
    depth: int = 0


def _shell_states(text: str) -> str:
    """One state letter per character: code, nested code, double/single quoted, comment, escaped, heredoc body.

    Runs of characters that change nothing (everything but the few a construct reacts to) are skipped with one
    search: a lab's launch script is mostly words, and the lexer used to take every character in Python."""
    states = [_CODE] * len(text)
    stack = [_Open(_CODE)]
    pending: list[tuple[str, bool, bool]] = []
    index, n = 0, len(text)
    while index < n:
        kind = stack[-1].kind
        nested = len(stack) > 1
        here = _NESTED if nested else _CODE
        stop = (_DQUOTE_SPECIAL if kind == _DQUOTE else _NESTED_SPECIAL if nested else _CODE_SPECIAL).search(
            text, index)
        run_end = n if stop is None else stop.start()
        if run_end > index:
            if kind == _DQUOTE or nested:
                states[index:run_end] = (_DQUOTE if kind == _DQUOTE else here) * (run_end - index)
            index = run_end
            continue
        char = text[index]
        if kind == _DQUOTE:
            if char == "\\" and index + 1 < n:
                states[index], states[index + 1] = _DQUOTE, _ESCAPED
                index += 2
                continue
            states[index] = _DQUOTE
            if char == '"':
                stack.pop()
            elif text.startswith("$(", index) or text.startswith("${", index):
                stack.append(_Open(_NESTED if text[index + 1] == "(" else "{"))
                states[index + 1] = _DQUOTE
                index += 1
            elif char == "`":
                stack.append(_Open("`"))
            index += 1
            continue
        if char == "\\" and index + 1 < n:
            states[index], states[index + 1] = here, _ESCAPED
            index += 2
            continue
        if char == "#" and (index == 0 or text[index - 1] in " \t\n;&|(") and kind != "{":
            end = end_of_line(text, index)
            states[index:end] = _COMMENT * (end - index)
            index = end
            continue
        if char == "'":
            close = text.find("'", index + 1)
            end = n if close < 0 else close + 1
            states[index:end] = _SQUOTE * (end - index)
            index = end
            continue
        states[index] = here
        if char == '"':
            stack.append(_Open(_DQUOTE))
        elif text.startswith("$(", index) or text.startswith("${", index):
            stack.append(_Open(_NESTED if text[index + 1] == "(" else "{"))
            states[index + 1] = here
            index += 1
        elif char == "`":
            if kind == "`":
                stack.pop()
            else:
                stack.append(_Open("`"))
        elif char in "({" and len(stack) > 1 and kind in (_NESTED, "{"):
            stack[-1].depth += 1 if (char == "(") == (kind == _NESTED) else 0
        elif char in ")}" and len(stack) > 1 and kind in (_NESTED, "{"):
            if (char == ")") == (kind == _NESTED):
                if stack[-1].depth == 0:
                    stack.pop()
                else:
                    stack[-1].depth -= 1
        elif text.startswith("<<", index) and not text.startswith("<<<", index):
            heredoc = _SHELL_HEREDOC.match(text, index)
            if heredoc:
                delimiter = heredoc.group(3) or heredoc.group(4)
                operand = text[heredoc.start() + 2:heredoc.end()].lstrip("- \t")
                literal = bool(heredoc.group(2)) or operand.startswith("\\")
                pending.append((delimiter, heredoc.group(1) == "-", literal))
        elif char == "\n" and pending:
            index = _heredoc_bodies(text, index + 1, pending, states)
            pending = []
            continue
        index += 1
    return "".join(states)


def _heredoc_bodies(text: str, start: int, pending: list[tuple[str, bool, bool]], states: list[str]) -> int:
    """Mark the bodies of the heredocs opened on the previous line; returns the offset after the last one."""
    index = start
    for delimiter, strip_tabs, literal in pending:
        state = _HEREDOC_LITERAL if literal else _HEREDOC
        while index < len(text):
            end = end_of_line(text, index)
            line = text[index:end]
            states[index:end + 1] = state * (min(end + 1, len(text)) - index)
            index = end + 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
    return index


def _shell_commands(text: str, states: str) -> list[list[tuple[int, int]]]:
    """Simple commands as lists of word spans, split at unquoted separators of top-level code."""
    commands: list[list[tuple[int, int]]] = []
    words: list[tuple[int, int]] = []
    word_start: int | None = None
    for index, char in enumerate(text):
        state = states[index]
        at_code = state == _CODE
        if at_code and char == "\\" and index + 1 < len(text) and text[index + 1] == "\n":
            continue
        breaks_word = (at_code and char in " \t") or state in (_COMMENT, _HEREDOC, _HEREDOC_LITERAL) or (
            state == _ESCAPED and char == "\n" and index > 0 and text[index - 1] == "\\")
        separates = at_code and char in _SHELL_SEPARATORS and not _is_redirect_amp(text, index)
        if breaks_word or separates:
            if word_start is not None:
                words.append((word_start, index))
                word_start = None
            if separates or (state in (_HEREDOC, _HEREDOC_LITERAL)):
                if words:
                    commands.append(words)
                words = []
            continue
        if word_start is None:
            word_start = index
    if word_start is not None:
        words.append((word_start, len(text)))
    if words:
        commands.append(words)
    return commands


def _is_redirect_amp(text: str, index: int) -> bool:
    if text[index] != "&":
        return False
    return (index > 0 and text[index - 1] in "<>") or text.startswith("&>", index)


def _without_keywords(text: str, words: list[tuple[int, int]]) -> list[tuple[int, int]]:
    index = 0
    while index < len(words) and text[words[index][0]:words[index][1]] in _SHELL_KEYWORDS:
        index += 1
    return words[index:]


def _command_assignments(text: str, words: list[tuple[int, int]]
                         ) -> tuple[list[_Assignment], list[_Assignment], set[str], set[str]]:
    """(sets, plain assignments, names assigned, names exported) of one simple command."""
    raw = [text[s:e] for s, e in words]
    head = raw[0]
    assignments = [_Assignment(m.group(1), s, e, m.group(3)) for (s, e), word in zip(words, raw, strict=True)
                   if (m := _SHELL_ASSIGN.match(word))]
    names = {a.name for a in assignments}
    if head in ("export", "declare", "typeset", "readonly", "local"):
        options = "".join(w[1:] for w in raw[1:] if w.startswith("-"))
        exporting = head == "export" or "x" in options
        exported = {w for w in raw[1:] if ENV_NAME.match(w)} if exporting else set()
        return (assignments if exporting else []), [], names, exported
    if head == "env":
        return assignments, [], names, set()
    if head in ("for", "select") and len(raw) > 1:
        return [], [], {raw[1]}, set()
    if head == "read":
        return [], [], {w for w in raw[1:] if ENV_NAME.match(w)}, set()
    leading = 0
    while leading < len(raw) and _SHELL_ASSIGN.match(raw[leading]):
        leading += 1
    prefix = assignments[:leading]
    if leading == len(raw):
        return [], prefix, names, set()
    return prefix, [], set(), set()
