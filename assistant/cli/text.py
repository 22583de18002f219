"""Text from outside (file names, zip member names, dictation, model answers) made safe for a terminal.

A file name can hold ANSI escape sequences (which recolour, move the cursor or retitle a terminal) and bidi
controls such as U+202E RIGHT-TO-LEFT OVERRIDE (which make ``gpj.exe`` read ``exe.jpg``: the "Trojan Source"
trick, CVE-2021-42574). The command line prints such text with every control character and bidi control written
as a visible escape (``\\x1b``, ``\\u202e``), so what is shown is what is there.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode bidi controls (UAX #9, "Explicit Directional Formatting"), the marks, and the zero-width characters that
# hide text; C0 and C1 controls and DEL are matched by category below.
_BIDI = "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
_UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: object) -> str:
    """``text`` on one line, every control, bidi and zero-width character escaped (names, paths, ids)."""
    return _UNSAFE.sub(_escape, str(text))


def terminal_text(text: object) -> str:
    """Like :func:`one_line`, but line feeds and tabs are kept (report text, messages); other format characters
    (category Cf) are escaped too."""
    out = _UNSAFE_KEEP_LINES.sub(_escape, str(text))
    if any(unicodedata.category(ch) == "Cf" for ch in out):
        out = "".join(_escape_char(ch) if unicodedata.category(ch) == "Cf" else ch for ch in out)
    return out


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
