"""Webhooks: each ended job that asked for one is POSTed, as its job object, to its
``webhook_url``, signed, and tried again with growing pauses until the receiver
takes it or the tries run out.

The signature is ``llmrelay-signature: t=<unix seconds>,v1=<hex>``, where hex is
the HMAC-SHA256, under the shared secret, of ``<t>.<body>``: signing the time
as well lets a receiver refuse an old delivery sent again. ``verify`` checks one.

Deliveries are held on leases in the job store, like jobs, so a sender that
dies mid-try leaves the webhook to another, and every try is recorded in the
job's ``webhook``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from urllib.parse import urlsplit

import aiohttp
import orjson

from .. import netguard
from ..errors import InvalidRequest
from .job import Job
from .store import JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "llmrelay-signature"
TIMEOUT = 10.0  # seconds a receiver has to answer
# A receiver that answers one of these is asked again later; any other 4xx refuses for good.
RETRIED_STATUSES = frozenset({408, 425, 429})


def sign(secret: bytes, body: bytes, at: int) -> str:
    digest = hmac.new(secret, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(secret: bytes, body: bytes, signature: str, tolerance: float = 300) -> bool:
    """Whether ``signature`` is this secret's for ``body``, made at most ``tolerance``
    seconds ago; False for anything malformed."""
    fields = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
    stamp = fields.get("t", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return False
    at = int(stamp)
    if abs(time.time() - at) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, at).encode(), signature.encode())


class Webhooks:
    def __init__(
        self, store: JobStore, secret: bytes, *, attempts: int, allow_private: bool
    ) -> None:
        self.store = store
        self.secret = secret
        self.attempts = attempts
        self.allow_private = allow_private
        self._http: aiohttp.ClientSession | None = None

    def check(self, url: str) -> None:
        """Refuse, as the job is submitted, a URL the guard would refuse when sending."""
        host = urlsplit(url).hostname or ""
        if not self.allow_private and netguard.private_ip(host):
            raise InvalidRequest(
                "The webhook_url points at a private or loopback address "
                "(jobs.webhook_allow_private allows it).",
                param="webhook_url",
            )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def deliver_next(self) -> bool:
        """Try the next webhook that is due, if there is one; whether there was one."""
        owner = f"webhooks:{secrets.token_hex(6)}"
        job = await self.store.claim_delivery(owner, lease=TIMEOUT * 2)
        if job is None:
            return False
        assert job.webhook is not None, "only jobs with a webhook wait for one"
        hook = job.webhook = {**job.webhook, "attempts": int(job.webhook["attempts"]) + 1}
        error, final = await self._post(str(hook["url"]), job)
        hook["last_error"] = error
        retry_at = None
        if error is None:
            job.webhook_state = "delivered"
        elif final or hook["attempts"] >= self.attempts:
            job.webhook_state = "failed"
            log.warning("gave up sending the webhook of job %s: %s", job.id, error)
        else:
            retry_at = time.time() + 2 ** (hook["attempts"] - 1)
        await self.store.delivered(job, owner, retry_at)
        return True

    async def _post(self, url: str, job: Job) -> tuple[str | None, bool]:
        """What went wrong, if anything, and whether trying again is pointless."""
        body = orjson.dumps(job.public())
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
            "llmrelay-job-id": job.id,
        }
        if self._http is None:
            self._http = netguard.session(
                allow_private=self.allow_private, limit=16, timeout=TIMEOUT
            )
        try:
            async with self._http.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except netguard.BlockedAddress as exc:
            return str(exc), True  # a name that resolves to private addresses stays so
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}".rstrip(": "), False
        if 200 <= status < 300:
            return None, False
        return f"the receiver answered {status}", 400 <= status < 500 and (
            status not in RETRIED_STATUSES
        )
