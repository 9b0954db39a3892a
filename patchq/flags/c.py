"""C/C++ env reads: getenv, setenv and the file's own accessor functions, read with a small lexer.

Comments and literal contents are blanked (same length, so offsets still point into the text), so only code counts;
string constants (`#define`, `constexpr const char*`) name variables. How a value is used (a ternary, a null test,
atoi, strcmp, a variable tested later) is judged from the code around the call.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..model import FlagIdiom, FlagRead
from .located import DYNAMIC, Lines, Located, located
from .text import blank, end_of_body, end_of_line, past_close, squash
from .truth import OFF_WORDS, ON_WORDS, boolean_word, numeric_on, parse_number

LANGUAGE = "c"

_C_LEXEME = re.compile(r"//|/\*|\"|'")
_C_STRING_BODY = re.compile(r'(?:[^"\\\n]|\\[\s\S])*')
_C_CHAR_BODY = re.compile(r"(?:[^'\\\n]|\\[\s\S])*")
_C_RAW_PREFIXES = frozenset({"R", "LR", "uR", "UR", "u8R"})
_C_GETENV = re.compile(r"(?<![\w.>:$])(?:std\s*::\s*|::\s*)?(?:secure_getenv|getenv)\s*\(")
_C_SETENV = re.compile(r"(?<![\w.>:$])(?:std\s*::\s*|::\s*)?setenv\s*\(")
_C_DEFINE = re.compile(r'^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+(?=")', re.M)
_C_CONST_DECL = re.compile(r'\b([A-Za-z_]\w*)\s*(?:\[\s*\d*\s*\])?\s*=\s*(?=")')
_C_DECL_WORDS = re.compile(r"\b(?:const|constexpr|char|string|string_view)\b")
_C_INT_FUNCS = r"atoi|atol|atoll|strtol|strtoll|strtoul|strtoull|stoi|stol|stoll|stoul|stoull"
_C_FLOAT_FUNCS = r"atof|strtof|strtod|strtold|stof|stod|stold"
_C_NUMBER_CALL = re.compile(rf"(?:std\s*::\s*)?({_C_INT_FUNCS}|{_C_FLOAT_FUNCS})\s*\(\s*\Z")
_C_STRING_CALL = re.compile(r"(?:std\s*::\s*)?string(?:_view)?\s*\(\s*\Z")
_C_STRCMP_CALL = re.compile(r"\b(?:strcmp|strcasecmp|strncmp|strncasecmp)\s*\(\s*\Z")
_C_ASSIGNED = re.compile(r"([A-Za-z_]\w*)\s*(?<![=!<>+\-*/%&|^])=\s*\Z")
_C_PROTOTYPE_ARG = re.compile(r"(?:const\s+)?(?:char|wchar_t)\b[\s*]*\w*(?:\s*,.*)?", re.S)
_C_HEADER = re.compile(r"([A-Za-z_]\w*)\s*\(([^()]*)\)\s*(?:const\s*)?(?:noexcept\s*)?(?:try\s*)?\{")
_C_GETENV_IDENTIFIER = re.compile(r"(?<![\w.>:])(?:std\s*::\s*|::\s*)?(?:secure_getenv|getenv)\s*\(\s*"
                                  r"([A-Za-z_]\w*)\s*\)")
_C_AT_TERNARY = re.compile(rf"(?P<var>[A-Za-z_]\w*)\s*\?\s*(?:std\s*::\s*)?(?P<func>{_C_INT_FUNCS}|{_C_FLOAT_FUNCS})"
                           r"\s*\(\s*(?P<arg>[A-Za-z_]\w*)\s*\)\s*:\s*(?P<default>-?[\w.]+)")
_C_NUMBER_BEFORE = re.compile(rf"(?:std\s*::\s*)?\b(?P<func>{_C_INT_FUNCS}|{_C_FLOAT_FUNCS}|sscanf)\s*\(\s*\Z")
_C_GUARD_BEFORE = re.compile(rf"\b(?P<var>[A-Za-z_]\w*)\s*&&\s*(?:std\s*::\s*)?(?:{_C_INT_FUNCS}|{_C_FLOAT_FUNCS})"
                             r"\s*\(\s*\Z")
_C_NOT_FUNCTIONS = frozenset({"if", "while", "for", "switch", "catch", "return", "sizeof", "defined"})
_C_KNOWN_ACCESSORS = {"get_sycl_env": (0, 1, FlagIdiom.INT)}  # llama.cpp ggml-sycl: get_sycl_env("GGML_SYCL_X", 0)


@dataclass(frozen=True)
class _CAccessor:
    name_index: int
    default_index: int | None
    idiom: FlagIdiom
    header: int = -1               # offset of the function's own name, which is not a call


@dataclass(frozen=True)
class _CContext:
    idiom: FlagIdiom
    start: int
    end: int
    compared_to: str | None = None
    default: str | None = None
    default_on: bool | None = None


class _CSource:
    """One C/C++ file with comments and literal contents blanked, and its string constants known."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.code, self.literals = _mask_c(text)
        self.lines = Lines(text)
        self.constants = self._constants()

    def reads(self) -> list[Located]:
        found = [item for m in _C_GETENV.finditer(self.code) if (item := self._getenv(m)) is not None]
        found += [item for m in _C_SETENV.finditer(self.code) if (item := self._setenv(m)) is not None]
        found += self._accessor_calls()
        return _unique_by_line(found)

    # -- names -------------------------------------------------------------------------------------------------------

    def _constants(self) -> dict[str, str]:
        """`#define FLAG "X"` and `constexpr const char* kFlag = "X";`, kept only when unambiguous."""
        seen: dict[str, set[str]] = {}
        for match in _C_DEFINE.finditer(self.code):
            value = self._literal_run(match.end(), end_of_line(self.code, match.end()))
            if value is not None:
                seen.setdefault(match.group(1), set()).add(value)
        for match in _C_CONST_DECL.finditer(self.code):
            statement_start = max(self.code.rfind(c, 0, match.start()) for c in ";{}\n") + 1
            if not _C_DECL_WORDS.search(self.code, statement_start, match.start()):
                continue
            end = self.code.find(";", match.end())
            value = self._literal_run(match.end(), end) if end >= 0 else None
            if value is not None:
                seen.setdefault(match.group(1), set()).add(value)
        return {name: values.pop() for name, values in seen.items() if len(values) == 1}

    def _literal_run(self, start: int, end: int) -> str | None:
        """The value of adjacent string literals filling code[start:end] ("LLM_" "SCALER_X"), else None."""
        parts, index = [], start
        while index < end:
            while index < end and self.code[index] in " \t\n()":
                index += 1
            if index >= end:
                break
            literal = self.literals.get(index)
            if literal is None:
                return None
            parts.append(literal[1])
            index = literal[0]
        return "".join(parts) if parts else None

    def _name_of(self, start: int, end: int) -> tuple[str | None, bool]:
        """(name, is_read): a literal or constant names the variable; a prototype's parameter is no read at all."""
        argument = self.code[start:end].strip()
        if not argument or _C_PROTOTYPE_ARG.fullmatch(argument):
            return None, False
        literal = self._literal_run(start, end)
        if literal is not None:
            return literal, True
        bare = argument.strip("() \t\n")
        return self.constants.get(bare), True

    # -- getenv and friends --------------------------------------------------------------------------------------------

    def _getenv(self, match: re.Match[str]) -> Located | None:
        if re.search(r"#\s*define\s+\Z", self.code[_line_start(self.code, match.start()):match.start()]):
            return None
        arguments = _c_arguments(self.code, match.end() - 1)
        if arguments is None or not arguments[0]:
            return None
        (arg_start, arg_end), close = arguments[0][0], arguments[1]
        name, is_read = self._name_of(arg_start, arg_end)
        if not is_read:
            return None
        context = self._context(match.start(), close)
        return self._found(name, arg_start, context, default=context.default)

    def _setenv(self, match: re.Match[str]) -> Located | None:
        arguments = _c_arguments(self.code, match.end() - 1)
        if arguments is None or len(arguments[0]) < 2:
            return None
        (name_start, name_end), (value_start, value_end) = arguments[0][0], arguments[0][1]
        name, is_read = self._name_of(name_start, name_end)
        if not is_read:
            return None
        value = self._literal_run(value_start, value_end)
        value = value if value is not None else squash(self.text[value_start:value_end])
        context = _CContext(FlagIdiom.SET, match.start(), arguments[1], default=value,
                            default_on=boolean_word(value))
        return self._found(name, name_start, context, default=value)

    def _found(self, name: str | None, name_at: int, context: _CContext, *, default: str | None) -> Located:
        name_at = _skip_space(self.code, name_at)
        read = FlagRead(
            name=name if name is not None else DYNAMIC, path=self.path, line=self.lines.of(name_at), language="c",
            default=default, idiom=context.idiom, compared_to=context.compared_to, default_on=context.default_on,
            dynamic=name is None, expression=squash(self.text[context.start:context.end]))
        return located(read, self.lines.of(context.start), self.lines.of(max(context.start, context.end - 1)),
                        name_at - self.lines.start(self.lines.of(name_at)))

    def _context(self, start: int, end: int) -> _CContext:
        """How the value of `getenv(...)` at code[start:end] is used, judged from the code around it."""
        before = self.code[max(0, start - 240):start]
        after = self.code[end:end + 240]
        for judge in (self._ternary, self._null_test, self._negation, self._wrapped, self._assigned, self._truth_test):
            context = judge(start, end, before, after)
            if context is not None:
                return context
        return _CContext(FlagIdiom.STRING, start, end)

    def _ternary(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        pattern = (rf"\s*\?\s*(?:std\s*::\s*)?(?P<func>{_C_INT_FUNCS}|{_C_FLOAT_FUNCS})\s*\("
                   r"\s*(?:std\s*::\s*|::\s*)?(?:secure_)?getenv\s*\([^()]*\)\s*\)\s*:\s*(?P<default>-?[\w.]+)")
        match = re.match(pattern, after)
        return self._numeric_default(match, start, end + match.end()) if match else None

    def _numeric_default(self, match: re.Match[str], start: int, end: int) -> _CContext:
        idiom = FlagIdiom.FLOAT if re.fullmatch(_C_FLOAT_FUNCS, match.group("func")) else FlagIdiom.INT
        default = match.group("default")
        value = parse_number(default.rstrip("fFlLuU") or default, int if idiom is FlagIdiom.INT else float)
        return _CContext(idiom, start, end, default=default, default_on=numeric_on(value, idiom))

    def _null_test(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        match = re.match(r"\s*(!=|==)\s*(?:nullptr|NULL|0)\b", after)
        if match:
            return _CContext(FlagIdiom.TRUTHY, start, end + match.end(), default_on=match.group(1) == "==")
        match = re.search(r"\b(?:nullptr|NULL)\s*(!=|==)\s*\Z", before)
        if match:
            return _CContext(FlagIdiom.TRUTHY, start - len(before) + match.start(), end,
                             default_on=match.group(1) == "==")
        return None

    def _negation(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        match = re.search(r"(?<![!=<>])!\s*\Z", before)
        return _CContext(FlagIdiom.TRUTHY, start - len(before) + match.start(), end, default_on=True) if match else None

    def _wrapped(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        """atoi(getenv(..)), std::string(getenv(..)) == "1", strcmp(getenv(..), "1") == 0."""
        base = start - len(before)
        number = _C_NUMBER_CALL.search(before)
        if number:
            close = past_close(self.code, end)
            compare = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)").match(self.code, close)
            idiom = FlagIdiom.FLOAT if re.fullmatch(_C_FLOAT_FUNCS, number.group(1)) else FlagIdiom.INT
            return _CContext(idiom, base + number.start(), compare.end() if compare else close,
                             compared_to=compare.group(2) if compare else None)
        string_call = _C_STRING_CALL.search(before)
        if string_call:
            close = past_close(self.code, end)
            compare = re.compile(r'\s*(==|!=)\s*(?=")').match(self.code, close)
            literal = self.literals.get(compare.end()) if compare else None
            if compare and literal:
                return _CContext(FlagIdiom.EQUALS, base + string_call.start(), literal[0], compared_to=literal[1],
                                 default_on=False if compare.group(1) == "==" else None)
        strcmp = _C_STRCMP_CALL.search(before)
        if strcmp:
            compared = self._strcmp_tail(end)
            if compared is not None:
                literal_value, stop, positive = compared
                return _CContext(FlagIdiom.EQUALS, base + strcmp.start(), stop, compared_to=literal_value,
                                 default_on=False if positive else None)
        return None

    def _strcmp_tail(self, position: int) -> tuple[str, int, bool] | None:
        """`, "1") == 0` after strcmp's first argument: (literal, end offset, compared equal)."""
        comma = re.compile(r'\s*,\s*(?=")').match(self.code, position)
        literal = self.literals.get(comma.end()) if comma else None
        if literal is None:
            return None
        rest = re.compile(r"\s*(?:,\s*\w+\s*)?\)\s*(==|!=)\s*0\b").match(self.code, literal[0])
        return (literal[1], rest.end(), rest.group(1) == "==") if rest else None

    def _assigned(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        """`const char* v = getenv("X");` then the uses of v decide the idiom."""
        match = _C_ASSIGNED.search(before, max(0, len(before) - 80))
        if match is None:
            return None
        statement_end = self.code.find(";", end)
        statement_end = len(self.code) if statement_end < 0 else statement_end + 1
        head = max(before.rfind(c, 0, match.start()) for c in ";{}\n") + 1
        condition = re.compile(r"\s*(?:if|while)\s*\(\s*").match(before, head)
        head = condition.end() if condition else _skip_space(before, head)
        return self._judge_variable(match.group(1), statement_end, start - len(before) + head, bool(condition))

    def _function_end(self, start: int) -> int:
        """Where the function holding `start` ends (a `}` in the first column), at most 6000 characters on."""
        end = re.compile(r"\n\}").search(self.code, start, start + 6000)
        return end.start() if end else min(len(self.code), start + 6000)

    def _judge_variable(self, variable: str, statement_end: int, start: int, in_condition: bool) -> _CContext:
        """The first telling use of the variable after its declaration decides how the flag is read."""
        uses = list(_word_occurrences(self.code, variable, statement_end, self._function_end(statement_end)))
        for use in uses:
            ternary = _C_AT_TERNARY.match(self.code, use)
            if ternary and ternary.group("var") == ternary.group("arg") == variable:
                return self._numeric_default(ternary, start, statement_end)
        for use in uses:
            compared = self._compared_at(use, use + len(variable))
            if compared is not None:
                return _CContext(FlagIdiom.EQUALS, start, statement_end, compared_to=compared, default_on=False)
        for use in uses:
            number = _C_NUMBER_BEFORE.search(self.code, max(0, use - 40), use)
            if number:
                idiom = FlagIdiom.FLOAT if re.fullmatch(_C_FLOAT_FUNCS, number.group("func")) else FlagIdiom.INT
                return _CContext(idiom, start, statement_end,
                                 default_on=False if self._guarded(uses, variable) else None)
        if in_condition or any(self._truth_tested(use, use + len(variable)) for use in uses):
            return _CContext(FlagIdiom.TRUTHY, start, statement_end, default_on=False)
        return _CContext(FlagIdiom.STRING, start, statement_end)

    def _compared_at(self, start: int, end: int) -> str | None:
        """The literal a use of a variable is compared with: strcmp(v, "1") == 0 or std::string(v) == "1"."""
        before = self.code[max(0, start - 40):start]
        if re.search(r"\b(?:strcmp|strcasecmp)\s*\(\s*\Z", before):
            compared = self._strcmp_tail(end)
            return compared[0] if compared is not None and compared[2] else None
        if _C_STRING_CALL.search(before):
            compare = re.compile(r'\s*\)\s*==\s*(?=")').match(self.code, end)
            literal = self.literals.get(compare.end()) if compare else None
            return literal[1] if literal else None
        return None

    def _guarded(self, uses: list[int], variable: str) -> bool:
        """`v && atoi(v)`: unset skips the parse, so the gated path is off."""
        for use in uses:
            guard = _C_GUARD_BEFORE.search(self.code, max(0, use - 80), use)
            if guard and guard.group("var") == variable:
                return True
        return False

    def _truth_tested(self, start: int, end: int) -> bool:
        before = self.code[max(0, start - 40):start]
        if re.match(r"\s*(?:(?:!=|==)\s*(?:nullptr|NULL)\b|&&|\?)", self.code[end:end + 40]):
            return True
        if re.search(r"\b(?:if|while)\s*\(\s*!?\s*\Z", before) and re.match(r"\s*[)&|]", self.code[end:end + 40]):
            return True
        return bool(re.search(r"(?<![!=<>])!\s*\Z", before))

    def _truth_test(self, start: int, end: int, before: str, after: str) -> _CContext | None:
        if re.search(r"\b(?:if|while)\s*\(\s*\Z|(?:&&|\|\|)\s*\Z|\bbool\s+\w+\s*=\s*\Z", before) or \
                re.match(r"\s*(?:&&|\|\||\?)", after):
            return _CContext(FlagIdiom.TRUTHY, start, end, default_on=False)
        return None

    # -- accessor functions -----------------------------------------------------------------------------------------

    def _accessors(self) -> dict[str, _CAccessor]:
        """Functions of this file that pass a parameter to getenv (llama.cpp's `get_sycl_env(name, default)`)."""
        accessors = {name: _CAccessor(*spec) for name, spec in _C_KNOWN_ACCESSORS.items()}
        uses = list(_C_GETENV_IDENTIFIER.finditer(self.code))
        if not uses:
            return accessors
        headers = [m for m in _C_HEADER.finditer(self.code) if m.group(1) not in _C_NOT_FUNCTIONS]
        starts = [h.start() for h in headers]
        for use in uses:
            header = self._enclosing_header(headers, starts, use.start())
            if header is None:
                continue
            params = _c_parameter_names(header.group(2))
            if use.group(1) not in params:
                continue
            name_index = params.index(use.group(1))
            accessors[header.group(1)] = _CAccessor(name_index, _c_default_index(params, name_index),
                                                     _c_return_idiom(self.code, header.start()), header.start())
        return accessors

    def _enclosing_header(self, headers: list[re.Match[str]], starts: list[int], position: int
                          ) -> re.Match[str] | None:
        """The function definition whose body holds `position` (nearest first, a few candidates)."""
        index = bisect.bisect_right(starts, position) - 1
        for header in headers[max(0, index - 8):index + 1][::-1]:
            if header.end() <= position < past_close(self.code, header.end(), "{", "}"):
                return header
        return None

    def _accessor_calls(self) -> list[Located]:
        accessors = self._accessors()
        pattern = re.compile(rf"(?<![\w.>:])({'|'.join(map(re.escape, accessors))})\s*\(")
        found = []
        for match in pattern.finditer(self.code):
            accessor = accessors[match.group(1)]
            if match.start() == accessor.header:
                continue
            item = self._accessor_call(match, accessor)
            if item is not None:
                found.append(item)
        return found

    def _accessor_call(self, match: re.Match[str], accessor: _CAccessor) -> Located | None:
        arguments = _c_arguments(self.code, match.end() - 1)
        if arguments is None or len(arguments[0]) <= accessor.name_index:
            return None
        spans, close = arguments
        name_start, name_end = spans[accessor.name_index]
        if re.search(r"\b(?:const|char|int|bool|float|double|unsigned|long|std\s*::\s*string)\b[\s*&]*\w",
                     self.code[name_start:name_end]):
            return None  # a declaration, not a call
        name, _ = self._name_of(name_start, name_end)
        default = None
        if accessor.default_index is not None and accessor.default_index < len(spans):
            d_start, d_end = spans[accessor.default_index]
            literal = self._literal_run(d_start, d_end)
            default = literal if literal is not None else squash(self.text[d_start:d_end])
        context = _CContext(accessor.idiom, match.start(), close, default=default,
                            default_on=_accessor_default_on(default, accessor.idiom))
        return self._found(name, name_start, context, default=default)


def _word_occurrences(code: str, word: str, lo: int, hi: int) -> Iterator[int]:
    """Offsets of `word` as a whole identifier in code[lo:hi] (str.find: far cheaper than a regex per variable)."""
    index = code.find(word, lo, hi)
    while index >= 0:
        before = code[index - 1] if index > 0 else " "
        after = code[index + len(word)] if index + len(word) < len(code) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            yield index
        index = code.find(word, index + 1, hi)


def _accessor_default_on(default: str | None, idiom: FlagIdiom) -> bool | None:
    if default is None:
        return None
    if idiom in (FlagIdiom.INT, FlagIdiom.FLOAT):
        text = default.rstrip("fFlLuU") or default
        return numeric_on(parse_number(text, int if idiom is FlagIdiom.INT else float), idiom)
    if idiom is FlagIdiom.TRUTHY:
        lowered = default.strip().lower()
        return None if lowered not in OFF_WORDS | ON_WORDS else lowered in ON_WORDS
    return boolean_word(default)


def _mask_c(text: str) -> tuple[str, dict[int, tuple[int, str]]]:
    """Comments and literal contents blanked (same length, newlines kept); each string literal's (end, value) by the
    offset of its opening quote."""
    out = list(text)
    literals: dict[int, tuple[int, str]] = {}
    position = 0
    while True:
        match = _C_LEXEME.search(text, position)
        if match is None:
            break
        start, lexeme = match.start(), match.group()
        if lexeme == "//":
            end = _c_line_comment_end(text, start)
            blank(out, start, end, keep_newlines=True)
        elif lexeme == "/*":
            close = text.find("*/", start + 2)
            end = len(text) if close < 0 else close + 2
            blank(out, start, end, keep_newlines=True)
        elif lexeme == '"':
            end, value, body_end = _c_string(text, start)
            literals[start] = (end, value)
            blank(out, start + 1, body_end, keep_newlines=True)
        elif _is_digit_separator(text, start):
            end = start + 1
        else:
            char_end = end_of_body(_C_CHAR_BODY, text, start + 1)
            end = char_end + (1 if text.startswith("'", char_end) else 0)
            blank(out, start + 1, char_end, keep_newlines=True)
        position = max(end, start + 1)
    return "".join(out), literals


def _c_line_comment_end(text: str, start: int) -> int:
    position = start
    while True:
        end = text.find("\n", position)
        if end < 0:
            return len(text)
        if text[end - 1] != "\\":
            return end
        position = end + 1


def _c_string(text: str, start: int) -> tuple[int, str, int]:
    """(end, value, end of the blanked body) of the literal opening at `start`, raw strings included."""
    prefix_start = start
    while prefix_start > 0 and (text[prefix_start - 1].isalnum() or text[prefix_start - 1] == "_"):
        prefix_start -= 1
    if text[prefix_start:start] in _C_RAW_PREFIXES:
        open_paren = text.find("(", start + 1, start + 18)
        delimiter = text[start + 1:open_paren] if open_paren >= 0 else None
        if delimiter is not None and not re.search(r"[\s\\)]", delimiter):
            closing = ")" + delimiter + '"'
            close = text.find(closing, open_paren)
            if close >= 0:
                return close + len(closing), text[open_paren + 1:close], close + len(closing) - 1
            return len(text), text[open_paren + 1:], len(text)
    string_end = end_of_body(_C_STRING_BODY, text, start + 1)
    value = re.sub(r"\\(.)", r"\1", text[start + 1:string_end], flags=re.S)
    closed = text.startswith('"', string_end)
    return string_end + (1 if closed else 0), value, string_end


def _is_digit_separator(text: str, index: int) -> bool:
    """C++14 `1'000'000`: a quote between digits is not a character literal."""
    if index == 0 or not text[index - 1].isalnum():
        return False
    prefix_start = index
    while prefix_start > 0 and (text[prefix_start - 1].isalnum() or text[prefix_start - 1] == "_"):
        prefix_start -= 1
    return text[prefix_start:index] not in ("L", "u", "U", "u8")


def _c_arguments(code: str, open_paren: int) -> tuple[list[tuple[int, int]], int] | None:
    """Top-level argument spans of the call whose `(` is at `open_paren`, and the offset past its `)`."""
    depth, start = 0, open_paren + 1
    spans: list[tuple[int, int]] = []
    for match in re.compile(r"[()\[\]{},;]").finditer(code, open_paren):
        char, index = match.group(), match.start()
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                if code[start:index].strip() or spans:
                    spans.append((start, index))
                return spans, index + 1
        elif char == "," and depth == 1:
            spans.append((start, index))
            start = index + 1
        elif char == ";":
            return None
    return None


def _c_parameter_names(params: str) -> list[str]:
    names = []
    for param in params.split(","):
        param = param.split("=")[0]
        words = re.findall(r"[A-Za-z_]\w*", param)
        names.append(words[-1] if len(words) >= 2 else "")
    return names


def _c_default_index(params: list[str], name_index: int) -> int | None:
    others = [i for i, p in enumerate(params) if i != name_index and p]
    named = [i for i in others if re.search(r"default|fallback|def_?val|dflt", params[i], re.I)]
    if named:
        return named[0]
    return others[0] if len(others) == 1 else None


def _c_return_idiom(code: str, name_start: int) -> FlagIdiom:
    head_start = max(code.rfind(c, 0, name_start) for c in ";{}") + 1
    words = set(re.findall(r"[A-Za-z_]\w*", code[head_start:name_start]))
    if "bool" in words:
        return FlagIdiom.TRUTHY
    if words & {"float", "double"}:
        return FlagIdiom.FLOAT
    numeric = {"int", "long", "short", "unsigned", "size_t", "ssize_t"}
    if words & numeric or any(re.fullmatch(r"u?int\d+_t", w) for w in words):
        return FlagIdiom.INT
    return FlagIdiom.STRING


def _line_start(code: str, index: int) -> int:
    return code.rfind("\n", 0, index) + 1


def _skip_space(code: str, index: int) -> int:
    while index < len(code) and code[index] in " \t\n":
        index += 1
    return index


def _unique_by_line(found: list[Located]) -> list[Located]:
    """`getenv("X") ? atoi(getenv("X")) : 0` reads X twice on one line; report it once."""
    seen: set[tuple[str, int]] = set()
    unique = []
    for item in sorted(found, key=lambda f: (f.read.line, f.column)):
        key = (item.read.name, item.read.line)
        if item.read.dynamic or key not in seen:
            unique.append(item)
            seen.add(key)
    return unique


def reads(path: str, text: str) -> list[Located]:
    if "getenv" not in text and "setenv" not in text and not any(name in text for name in _C_KNOWN_ACCESSORS):
        return []
    return _CSource(path, text).reads()
