"""llama.cpp's own log, sent to the gateway's log as whole lines at their level.

llama-cpp-python's callback prints some of llama.cpp's messages straight to
stderr, as plain text among the gateway's JSON lines; this one replaces it.
llama.cpp sends a line in pieces, so pieces are held until the line ends.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger("llama.cpp")

# ggml_log_level: NONE, INFO, WARN, ERROR, DEBUG, CONT (the rest of the previous message).
# Its info, the many lines of loading a model, is debug here.
_LEVELS = {0: logging.INFO, 1: logging.DEBUG, 2: logging.WARNING, 3: logging.ERROR}
_CONTINUED = 5
_state: dict[str, Any] = {"level": logging.DEBUG, "pending": ""}
_installed: list[Any] = []  # the ctypes callback, kept alive while llama.cpp may call it


def install() -> None:
    """Route llama.cpp's log through ``logging``, once per process."""
    if _installed:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level != _CONTINUED:
            _state["level"] = _LEVELS.get(level, logging.DEBUG)
        pending = _state["pending"] + text.decode("utf-8", "replace")
        *lines, _state["pending"] = pending.split("\n")
        for line in lines:
            if line.strip():
                log.log(_state["level"], "%s", line)

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    _installed.append(forward)
