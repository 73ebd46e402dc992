"""How long an upstream asked the gateway to wait before trying again, from whichever of
the headers it used."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

# OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s".
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def asked_delay(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the upstream asked for, or None when it did not say.

    ``retry-after-ms`` is the most precise and is read first, then ``Retry-After`` in
    seconds or as an HTTP date, then the later of OpenAI's ``x-ratelimit-reset-*``.
    (Gemini's RetryInfo.retryDelay reaches here as ``retry-after``.)
    """
    lowered = {k.lower(): v.strip() for k, v in headers.items()}
    if (ms := _number(lowered.get("retry-after-ms"))) is not None:
        return ms / 1000
    retry_after = lowered.get("retry-after")
    if retry_after:
        seconds = _number(retry_after)
        if seconds is not None:
            return seconds
        return _until_date(retry_after, time.time() if now is None else now)
    resets = [
        _duration(lowered[k]) for k in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if k in lowered
    ]  # fmt: skip
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _until_date(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - now)


def _duration(text: str) -> float | None:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return _number(text)
    return sum(float(n) * _UNIT[u] for n, u in parts)
