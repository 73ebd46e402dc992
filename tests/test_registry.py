"""Every provider module is registered, and adapters stay behind the registry."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import llmrelay.providers as providers
from llmrelay.providers import PROVIDERS

SRC = Path(providers.__file__).resolve().parents[1]
# Shared building blocks, not adapters of their own.
NOT_ADAPTERS = {"base", "http", "translating", "canonical"}


def test_every_provider_module_is_registered() -> None:
    modules = {m.name for m in pkgutil.iter_modules(providers.__path__)} - NOT_ADAPTERS
    registered = {cls.__module__.split(".")[2] for cls in PROVIDERS.values()}
    assert modules == registered


def test_each_spec_is_tagged_with_its_registry_name() -> None:
    for name, cls in PROVIDERS.items():
        assert cls.spec_type.model_fields["provider"].annotation.__args__ == (name,)  # type: ignore[union-attr]


def test_no_provider_branches_outside_providers() -> None:
    branch = re.compile(r"provider\s*==\s*['\"]")
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "providers" not in path.parts and branch.search(path.read_text())
    ]
    assert offenders == []
