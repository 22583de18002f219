"""Server addresses fit to show: the user:password part of a URL (RFC 3986 3.2.1 userinfo) is never displayed.

``RADASSIST_LLM_URL`` may carry credentials (``http://user:pass@host:8000``); the address itself is worth showing
(which server answers), the credentials never are: not in a status line, a message or a log line.

Public name: ``redact_url(text)``.
"""

from __future__ import annotations

import re

REDACTED = "***"

# scheme://userinfo@ : the userinfo runs up to the last "@" before the host (a password may hold "@" or ":"), and
# never past the authority ("/", "?", "#") or whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@", re.I)


def redact_url(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with every user:password part replaced by ``***``
    (``http://***@host:8000/v1``); anything without credentials is returned unchanged."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
