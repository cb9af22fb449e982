"""Keep request data out of the server's logs, whatever a library logs on an error.

BentoML logs the exception of a failed request with its traceback, and an exception's
message can quote its input (pydantic's ValidationError prints `input_value=...`, and
"could not convert string to float: '...'" is a classic). This filter keeps the
exception's type and the traceback's frames (file, line, code) and drops its message.
The HTTP service installs it on every handler and on the loggers that log request
errors; the service itself never logs a header, a body or a record value.
"""

from __future__ import annotations

import logging
import traceback

REQUEST_ERROR_LOGGERS = (
    "bentoml._internal.server.http_app",
    "bentoml.serve",
    "bentoml.access",
    "uvicorn.error",
    "uvicorn.access",
    "eih.serving",
)


class WithholdExceptionMessages(logging.Filter):
    """A logging filter that replaces an exception's message with its type and traceback frames."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a record that carries an exception: its text becomes the log message, the
        exception's type and its traceback frames, without the exception's own message. Always
        True: no record is dropped."""
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            exc = exc_info[1]
            frames = "".join(traceback.format_tb(exc_info[2])).rstrip()
            record.msg = (
                f"{record.getMessage()}\n{type(exc).__module__}.{type(exc).__qualname__} "
                f"(message withheld: it may quote request data)\n{frames}"
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_FILTER = WithholdExceptionMessages()


def install() -> None:
    """Idempotent: add the filter to the request-error loggers and to every handler of the
    root, bentoml and uvicorn loggers (call after the server has configured logging)."""
    names = ("", "bentoml", "uvicorn", "uvicorn.error", "circus", *REQUEST_ERROR_LOGGERS)
    for name in names:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
        for h in lg.handlers:
            if _FILTER not in h.filters:
                h.addFilter(_FILTER)
