"""The configured models: each name resolved to its provider, started and stopped together."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from .config import Config
from .errors import ModelNotFound
from .providers import PROVIDERS, Provider

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.http = http
        self.providers: dict[str, Provider] = {
            spec.name: PROVIDERS[spec.provider](spec, http) for spec in config.specs
        }
        self.default_model = config.default_model or next(iter(self.providers))

    def resolve(self, model: str | None) -> Provider:
        provider = self.providers.get(model or self.default_model)
        if provider is None:
            raise ModelNotFound(str(model))
        return provider

    @property
    def ready(self) -> bool:
        return all(p.ready for p in self.providers.values())

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self.providers.values()))
        log.info("serving models: %s (default %s)", ", ".join(self.providers), self.default_model)

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.providers.values()), return_exceptions=True)
