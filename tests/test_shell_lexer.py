"""The shell lexer skips runs of characters no construct reacts to: it must give, character for character, the
states of the lexer that took every character in Python (kept below as the oracle), on hand-written scripts and
on random text built from the characters the lexer does react to."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from patchq.flags.shell import _SHELL_HEREDOC, _heredoc_bodies, _Open, _shell_states
from patchq.flags.text import end_of_line

_CODE, _NESTED, _DQUOTE, _SQUOTE, _COMMENT, _ESCAPED, _HEREDOC, _HEREDOC_LITERAL = "cndsxehH"


def _reference_states(text: str) -> str:
    """The character-by-character lexer the fast one replaced, kept as its oracle."""
    states = [_CODE] * len(text)
    stack = [_Open(_CODE)]
    pending: list[tuple[str, bool, bool]] = []
    index, n = 0, len(text)
    while index < n:
        char = text[index]
        kind = stack[-1].kind
        here = _CODE if len(stack) == 1 else _NESTED
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


SCRIPTS = [
    'export VLLM_USE_V1=${VLLM_USE_V1:-1}\nif [ "$VLLM_FLAG" = "1" ]; then echo "on $(date +%s) `hostname`"; fi\n',
    "cat <<EOF\nliteral $HOME ${X:-1}\nEOF\ncat <<-'END'\n\t$NOT_EXPANDED\n\tEND\necho done # a comment\n",
    'x=$(echo "$(printf \'%s\' "${A:-$(b)}")") # nested\ny=a#b z=\\$q "esc \\" quote" \'single $x\'\n',
    "f() { local v=${1:-}; echo ${v} ; }\n( cd /tmp && ls ) | grep x <<< \"here string\"\n",
    'unterminated "double $(and nested\n',
]


def test_hand_written_scripts_lex_as_before():
    for script in SCRIPTS:
        assert _shell_states(script) == _reference_states(script), script


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["\\", "#", "'", '"', "$", "$(", "${", "`", "(", ")", "{", "}", "<<", "<<<", "<<EOF",
                                  "<<-'X'", "\n", "EOF\n", "X\n", "\t", " ", ";", "|", "&", "word", "VLLM_A=1",
                                  "echo", "-"]), max_size=60).map("".join))
def test_random_text_lexes_as_before(text):
    assert _shell_states(text) == _reference_states(text)
