"""Text from files and the store made safe to print: no control character reaches the terminal raw.

File names, reasons and labels are data a stranger may have chosen. An escape sequence in a name
(`\\x1b]0;…`, `\\x1b[2J`) would retitle, clear or recolour the user's terminal, a carriage return
would overwrite the line, and a lone surrogate (a name that is not valid UTF-8, as Python decodes it)
would crash the print. Each such character is shown as its escape (`\\x1b`, `\\u202e`, a byte
`\\xff`) instead; rich markup in the text is not interpreted either (a `rich.text.Text` is returned).
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 and C1 controls and DEL, the bidirectional overrides and isolates (they reorder what follows, so
# "gpj.exe" can read as "exe.jpg"), and lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: object) -> str:
    """`text` as a string with every unsafe character written as its escape."""
    return _UNSAFE.sub(_escape, str(text))


def safe(text: object, style: str = "") -> Text:
    """A rich Text of `text` with controls escaped and no markup."""
    return Text(escape_controls(text), style=style)


