"""The patch-text layer: one lexer for unified diffs and mail, and the two readings built on it.

`lexer` cuts text into file sections and hunks as written (never raising); `strict` validates that structure with
every safety rule a queue file must meet; `lenient` reads what labs write (context-only hunks, miscounted headers,
stripped blank lines) and names each repair; `mail` reads mail headers (RFC 2047 subjects) and splits mboxes.
Everything here is linear in the size of the text.
"""

from .lexer import DiffText, HunkText, SectionText, lex
from .mail import MailHead, is_mbox, parse_mail_head, split_mbox
from .strict import BASE85, FileDiff, Hunk, check_safe_path, parse_diff

__all__ = ["BASE85", "DiffText", "FileDiff", "Hunk", "HunkText", "MailHead", "SectionText", "check_safe_path",
           "is_mbox", "lex", "parse_diff", "parse_mail_head", "split_mbox"]
