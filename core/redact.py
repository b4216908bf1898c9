"""Tokens out of text that is kept: log lines, the usage log's paths and user agents.

Invitation links' tokens (reminix_inv_) are redacted too: the link is a path of the dashboard.
A token pasted where it does not belong (a URL path, a query string, a user agent) keeps
its prefix, so a reader still sees which kind of token leaked, and loses the rest.
Plain `re`, no Django: gunicorn.conf.py uses it before Django is loaded.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(reminix_(?:sk|ct|pat|inv)_)[0-9A-Za-z]*", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens from every record's message (settings'
    console handler): Django's dev server logs each request line, query string included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
