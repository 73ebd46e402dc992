"""The configured models: each name resolved to the model that serves it, from its
deployments, all started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp

from .config import Config, ServedSpec
from .errors import ModelNotFound
from .providers import PROVIDERS
from .resilience.deployment import Deployment
from .resilience.model import ServedModel

if TYPE_CHECKING:
    from .jobs.service import JobService

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.http = http
        self.models: dict[str, ServedModel] = {}
        for spec in config.models:
            self.models[spec.name] = self._served(spec)
        self.default_model = config.default_model or next(iter(self.models))
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
            models=self.models,
        )

    def resolve(self, model: str | None) -> ServedModel:
        served = self.models.get(model or self.default_model)
        if served is None:
            raise ModelNotFound(str(model))
        return served

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())

    async def start(self) -> None:
        await asyncio.gather(*(m.start() for m in self.models.values()))
        log.info("serving models: %s (default %s)", ", ".join(self.models), self.default_model)

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self.models.values()), return_exceptions=True)
