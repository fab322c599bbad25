"""Secrets out of URLs: ``redact_url`` for what is recorded, ``redact_every_log_record`` for every log line the CLI
prints.

An endpoint URL may carry a secret in its user info (``https://user:password@host``) or its query string
(``?api_key=...``): what fade-hub records or logs keeps ``scheme://host[:port]/path`` only.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: user info, query string and fragment dropped (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:  # not a port number: keep none of it
        port = None
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_urls(text: str) -> str:
    """``text`` with every URL that has user info, a query string or a fragment redacted (``redact_url``)."""
    def redact(match: re.Match) -> str:
        url = match.group(0)
        try:
            parts = urlsplit(url)
            return redact_url(url) if "@" in parts.netloc or parts.query or parts.fragment else url
        except ValueError:  # not a URL urllib can take apart: keep its scheme only
            return url.split("://", 1)[0] + "://..."

    return _URL.sub(redact, text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with the URLs in its message and traceback redacted (``redact_urls``), in place."""
    message = record.getMessage()
    redacted = redact_urls(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_urls(record.exc_text)
    return record


def redact_every_log_record() -> None:
    """Redact URLs in every log record as it is made (``logging.setLogRecordFactory``), so that no handler, the
    CLI's or a library's own (huggingface_hub, transformers and datasets print through theirs), shows an endpoint's
    user info or query string (e.g. ``?api_key=``), ``--debug`` included. Installing it twice changes nothing."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts_urls", False):
        return

    def make_redacted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make(*args, **kwargs))

    make_redacted.redacts_urls = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_redacted)
