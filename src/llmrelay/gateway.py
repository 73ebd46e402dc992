"""The gateway's state while it runs: the configured models, each resolved to the model that
serves it from its deployments and metered, the database and bus that processes share,
and the keys, limits, cache and ledger of every request, all started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp

from . import logs
from .accounting.ledger import Ledger
from .accounting.meter import MeteredModel
from .accounting.pricing import FREE, Price, Pricing
from .bus import Bus
from .cache import open_cache
from .config import Config, ServedSpec
from .database import Database
from .errors import ModelNotFound, PermissionDenied
from .keys.access import Access
from .keys.limits import open_limiter
from .keys.ring import KeyRing
from .metrics import Metrics
from .providers import PROVIDERS
from .resilience.deployment import Deployment
from .resilience.model import ServedModel
from .trace import Trace, current_trace

if TYPE_CHECKING:
    from .jobs.service import JobService
    from .telemetry import Telemetry

log = logging.getLogger(__name__)


class Gateway:
    def __init__(
        self, config: Config, http: aiohttp.ClientSession, database: Database, bus: Bus
    ) -> None:
        self.config = config
        self.http = http
        self.database = database
        self.bus = bus
        self.served: dict[str, ServedModel] = {}
        for spec in config.models:
            self.served[spec.name] = self._served(spec)
        self.pricing = Pricing(config.pricing)
        self.limiter = open_limiter(config.redis)
        self.cache = open_cache(config.cache, database, config.redis)
        self.models = {
            name: MeteredModel(served, self._prices(served), self.cache, self.limiter)
            for name, served in self.served.items()
        }
        self.default_model = config.default_model or next(iter(self.models))
        self.keys = KeyRing(database, bus)
        self.ledger = Ledger(
            database,
            retention_hours=config.inspector.retention_hours,
            usage_days=config.inspector.usage_days,
        )
        self.access = Access(
            config.master_key.get_secret_value() if config.master_key else None,
            [key.get_secret_value() for key in config.api_keys],
            self.keys,
            self.limiter,
            self.ledger,
        )
        self.metrics = Metrics()
        self.telemetry = self._telemetry(config.otlp_endpoint)
        self.jobs: JobService | None = None  # set once the jobs service has started

    def _served(self, spec: ServedSpec) -> ServedModel:
        assert spec.retry and spec.timeouts and spec.cooldown  # the config settles them
        deployments = [
            Deployment(
                d.id or f"{spec.name}/{index}",
                PROVIDERS[d.provider](d, self.http),
                weight=d.weight,
                max_parallel=d.max_parallel,
                max_queue=d.max_queue,
                queue_timeout=d.queue_timeout,
                cooldown=spec.cooldown,
            )
            for index, d in enumerate(spec.deployments)
        ]
        return ServedModel(
            spec.name,
            deployments,
            routing=spec.routing,
            retry=spec.retry,
            timeouts=spec.timeouts,
            fallbacks=spec.fallbacks,
            fallback_on_content_filter=spec.fallback_on_content_filter,
            models=self.served,
        )

    def _prices(self, served: ServedModel) -> dict[str, Price | None]:
        """Each deployment's price: free when it runs here, else the table's, if it has one."""
        prices: dict[str, Price | None] = {}
        for deployment in served.deployments:
            provider = deployment.provider
            price = FREE if not provider.billed else None
            if price is None:
                price = self.pricing.find(provider.spec.upstream_model, served.name)
            if price is None:
                log.warning(
                    "no price for %s (%s): its cost counts as 0; give one under 'pricing'",
                    deployment.id,
                    provider.spec.upstream_model,
                )
            prices[deployment.id] = price
        return prices

    def _telemetry(self, endpoint: str | None) -> Telemetry | None:
        if endpoint is None:
            return None  # and OpenTelemetry is not even imported
        from .telemetry import Telemetry

        deployments = {
            d.id: (d.provider.owned_by, d.provider.spec.upstream_model)
            for served in self.served.values()
            for d in served.deployments
        }
        return Telemetry(endpoint, deployments)

    def resolve(self, model: str | None) -> MeteredModel:
        """The model a request names, when its key may use it."""
        name = model or self.default_model
        served = self.models.get(name)
        if served is None:
            raise ModelNotFound(str(model))
        if not self.allowed(name):
            raise PermissionDenied(
                f"This key may not use the model '{name}'.", param="model", code="model_not_allowed"
            )
        return served

    def allowed(self, name: str) -> bool:
        """Whether the calling key, if any, may use the model ``name``."""
        key = current_trace().key
        return key is None or key.allows(name)

    def trace(self, request_id: str) -> Trace:
        """A new trace, keeping bodies for the inspector when the config says so."""
        return Trace(request_id, self.config.kept_bytes)

    def ended(self, trace: Trace, method: str, path: str) -> None:
        """Log, count and record a request that reached a model, once it has ended."""
        trace.finish()
        logs.access(trace, method, path)
        self.metrics.observe(trace)
        if self.telemetry is not None:
            self.telemetry.export(trace, method, path)
        self.ledger.record(trace, method, path)

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.served.values())

    async def start(self) -> None:
        await asyncio.gather(*(m.start() for m in self.served.values()))
        await self.keys.start()
        await self.ledger.start()
        log.info("serving models: %s (default %s)", ", ".join(self.models), self.default_model)

    async def close(self) -> None:
        await self.ledger.close()
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.close)
        await self.keys.close()
        await self.limiter.close()
        if self.cache is not None:
            await self.cache.close()
        await asyncio.gather(*(m.close() for m in self.served.values()), return_exceptions=True)
