"""Logging for ``portway serve``: one line per record on stderr, written
off the event loop.

:func:`configure` routes every record of the process (the ``portway``
hierarchy, uvicorn's own messages, library warnings) through a
:class:`~logging.handlers.QueueHandler`: the caller only renders the message
and puts the record on a queue; a :class:`~logging.handlers.QueueListener`
thread does the writing, so a slow or blocked stderr never stalls a request.
``portway serve`` calls it in the main process and in every worker, and
:func:`write_directly` once the app has shut down.

Formats (``server.log_format`` / ``--log-format``):

- ``text``: ``2025-01-31 12:00:00.123 INFO portway.access: message`` — one
  line per record; line breaks inside the message are escaped, so text from
  a client cannot forge a line (a traceback follows on its own lines);
- ``json``: one object per line with ``ts`` (UTC, ISO 8601), ``level``,
  ``logger``, ``message``, every field passed as ``extra=``, and ``exc``
  for a traceback.
"""

from __future__ import annotations

import atexit
import copy
import datetime
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

import orjson

FORMATS = ("text", "json")

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

#: Set by others as ``extra=`` but not worth a field: uvicorn's ANSI-coloured copy of its message.
_NOT_FIELDS = frozenset({"color_message"})

_listener: QueueListener | None = None
_format = "text"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class Stamps:
    """Timestamps for log lines, the date-and-time part computed once per
    second (a busy access log writes thousands of lines a second)."""

    def __init__(self) -> None:
        self._second = -1
        self._local = ""
        self._utc = ""

    def _refresh(self, created: float) -> None:
        second = int(created)
        if second != self._second:
            self._second = second
            self._local = datetime.datetime.fromtimestamp(second).strftime("%Y-%m-%d %H:%M:%S")
            self._utc = datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def local(self, created: float) -> str:
        self._refresh(created)
        return f"{self._local}.{int((created % 1) * 1000):03d}"

    def utc(self, created: float) -> str:
        self._refresh(created)
        return f"{self._utc}.{int((created % 1) * 1000):03d}Z"


def render(log_format: str, stamps: Stamps, created: float, level: str, logger: str, message: str,
           fields: dict[str, Any] | None = None, exc: str | None = None) -> str:
    """One log line (and a traceback after it) in ``log_format``: what the
    formatters write for a record, and what the access log writes in batches."""
    if log_format == "json":
        entry: dict[str, Any] = {"ts": stamps.utc(created), "level": level, "logger": logger, "message": message}
        for key, value in (fields or {}).items():
            if key not in _NOT_FIELDS:
                entry.setdefault(key, value)
        if exc:
            entry["exc"] = exc
        return orjson.dumps(entry, default=str).decode()
    # Line breaks inside a message are escaped: client text cannot forge a line.
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    line = f"{stamps.local(created)} {level} {logger}: {message}"
    return f"{line}\n{exc}" if exc else line


class _Formatter(logging.Formatter):
    log_format = "text"

    def __init__(self) -> None:
        super().__init__()
        self._stamps = Stamps()

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "portway_rendered", False):
            return record.getMessage()  # lines rendered already, in a batch (see write_rendered)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        fields = extra_fields(record)
        if record.stack_info:
            fields["stack"] = record.stack_info
        return render(self.log_format, self._stamps, record.created, record.levelname, record.name,
                      record.getMessage(), fields, record.exc_text)


class TextFormatter(_Formatter):
    log_format = "text"


class JsonFormatter(_Formatter):
    log_format = "json"


class _Handoff(QueueHandler):
    """Renders what must be rendered now (the message, since its arguments
    may change later, and a traceback) and queues the record with its
    ``extra`` fields intact for the writer thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args, record.exc_info = record.message, None, None
        return record


def configure(log_format: str = "text", level: str | int = "info", stream: TextIO | None = None) -> None:
    """Send every record of this process to ``stream`` (stderr) in
    ``log_format``, through a queue and a writer thread; set the
    ``portway`` loggers to ``level``.  Calling it again replaces the
    previous set-up (its queue is flushed first)."""
    global _listener, _format
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    stop()
    writer = logging.StreamHandler(sys.stderr if stream is None else stream)
    writer.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(_Handoff(records))
    logging.getLogger("portway").setLevel(level.upper() if isinstance(level, str) else level)
    _format = log_format
    _listener = QueueListener(records, writer)
    _listener.start()


def active_format() -> str | None:
    """The format of the running set-up (None: :func:`configure` was not
    called, logging is the host's)."""
    return _format if _listener is not None else None


def write_rendered(lines: list[str]) -> None:
    """Write lines already rendered with :func:`render` in the active format,
    in one queued record and one write: the access log's batches."""
    record = logging.makeLogRecord({"msg": "\n".join(lines), "portway_rendered": True, "name": "portway.access",
                                    "levelno": logging.INFO, "levelname": "INFO"})
    logging.getLogger("portway.access").handle(record)


def write_directly() -> None:
    """From now on write each record as it is logged, after what is queued.
    For the end of serving: no request is left to protect, and uvicorn
    ends the process by re-raising the stop signal, which would lose
    whatever is still queued."""
    global _listener
    if _listener is None:
        return
    listener, _listener = _listener, None
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if isinstance(handler, _Handoff):
            root.removeHandler(handler)
    root.addHandler(listener.handlers[0])
    listener.stop()  # writes what was queued before the switch


def stop() -> None:
    """Write what is queued and stop the writer thread (also run at exit)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(stop)
