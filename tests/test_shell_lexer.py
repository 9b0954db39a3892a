"""The shell lexer skips runs of characters no construct reacts to: it must give, character for character, the
states it gives when every character is taken one Python step at a time (the lexer before the skip), on
hand-written scripts and on random text built from the characters the lexer does react to."""

from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st

from patchq.flags import shell
from patchq.flags.shell import _shell_states

_EVERY_CHARACTER = re.compile(r"[\s\S]")


def _reference_states(text: str) -> str:
    """The lexer as it was before the skip: with every character counted as one a construct reacts to, no run is
    skipped and each character goes through the per-character steps (unchanged from the old lexer)."""
    saved = shell._CODE_SPECIAL, shell._NESTED_SPECIAL, shell._DQUOTE_SPECIAL
    shell._CODE_SPECIAL = shell._NESTED_SPECIAL = shell._DQUOTE_SPECIAL = _EVERY_CHARACTER
    try:
        return _shell_states(text)
    finally:
        shell._CODE_SPECIAL, shell._NESTED_SPECIAL, shell._DQUOTE_SPECIAL = saved


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
