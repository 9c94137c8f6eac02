"""No credential reaches a log at any verbosity: botocore and urllib3 print request headers,
canonical requests and signatures at DEBUG (`genfab operator --verbose`), among them the access key
id, the session token and signatures. A log-record factory rewrites their records before any handler
sees them: the values of every credential genfab hands to boto3, and the signing fields by pattern.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3")
MASK = "***"
_PATTERNS = (
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,}]+)"),
    re.compile(r"(?i)(Credential=)([^/,\s'\"]+)"),
    re.compile(r"(?i)(Signature=)([0-9a-f]+)"),
    re.compile(r"(?i)(X-Amz-Signature=)([0-9a-f]+)"),
    re.compile(r"(?i)(X-Amz-Credential=)([^&\s'\"]+)"),
    re.compile(r"(?i)(X-Amz-Security-Token=)([^&\s'\"]+)"),
)
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def remember(*values: str | None) -> None:
    """Credentials to mask wherever they appear in a library's log line."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def install() -> None:
    """Wrap the log-record factory once per process (records of other loggers are untouched)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith(LIBRARIES):
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to the handler's own error path
                return record
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return record

    logging.setLogRecordFactory(factory)
