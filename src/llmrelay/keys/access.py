"""Who may reach an endpoint: anyone, any client with a valid key, or the holder of the master
key; and, for the endpoints that ask a model, whether the key has requests, tokens and
budget left.

Keys are, by strength: the master key (config or $LLMRELAY_MASTER_KEY), which
manages keys and sees everyone's usage; the static ``api_keys`` of the config;
and virtual keys, each with its own limits. When the config has neither a
master key nor ``api_keys``, client endpoints are open.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from typing import Literal

from ..accounting.ledger import Ledger
from ..errors import AuthenticationFailed, PermissionDenied, QuotaExceeded
from ..trace import Trace
from .limits import Limiter
from .ring import KeyRing

# public: anyone; client: any valid key; metered: the same, within the key's limits;
# admin: the master key only; operator: the master key when there is one, else as client.
Level = Literal["public", "client", "metered", "admin", "operator"]


class Access:
    def __init__(
        self,
        master_key: str | None,
        api_keys: Sequence[str],
        keys: KeyRing,
        limiter: Limiter,
        ledger: Ledger,
    ) -> None:
        self.master = master_key.encode() if master_key else None
        self.static = [key.encode() for key in api_keys]
        self.keys = keys
        self.limiter = limiter
        self.ledger = ledger

    @property
    def required(self) -> bool:
        return self.master is not None or bool(self.static)

    async def check(self, level: Level, presented: bytes, trace: Trace) -> None:
        """Let the request through, noting its key in ``trace``, or raise the refusal."""
        if level == "public":
            return
        if level == "operator":
            level = "admin" if self.master is not None else "client"
        if self.master is not None and hmac.compare_digest(presented, self.master):
            return
        key = self.keys.find(presented) if presented else None
        if level == "admin":
            if self.master is None:
                raise PermissionDenied(
                    "Admin endpoints are off: the gateway has no master key "
                    "(master_key, or $LLMRELAY_MASTER_KEY).",
                    code="admin_disabled",
                )
            if key is not None or self._static(presented):
                raise PermissionDenied(
                    "This endpoint needs the master key.", code="master_key_required"
                )
            raise _refused(presented)
        if key is None:
            if self._static(presented) or not self.required:
                return
            raise _refused(presented)
        trace.key = key
        if level == "metered":
            if key.budget_usd is not None:
                spent = self.ledger.spent(key.id, key.budget_period)
                if spent >= key.budget_usd:
                    raise QuotaExceeded(
                        f"This key's budget of ${key.budget_usd:g} per {key.budget_period} "
                        f"is spent (${spent:.4f}).",
                    )
            if key.rpm is not None or key.tpm is not None:
                trace.rate_headers = await self.limiter.admit(key)

    def _static(self, presented: bytes) -> bool:
        # Compare against every key so the time taken does not reveal which one matched.
        matched = False
        for key in self.static:
            matched |= hmac.compare_digest(presented, key)
        return matched


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The key a request presents: a Bearer token, else ``x-api-key``. It reads the ASGI
    header list as it is, since the request path has no dict of it to spare."""
    api_key = b""
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
        if name == b"x-api-key":
            api_key = value.strip()
    return api_key


def _refused(presented: bytes) -> AuthenticationFailed:
    return AuthenticationFailed(
        "Incorrect API key provided."
        if presented
        else "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
    )
