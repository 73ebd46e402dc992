"""The conformance matrix: each client × backend × scenario either passes or is declared
unsupported, and then must get a 400 that names the field. A full run writes the matrix to
``docs/compatibility.md``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from .conformance.backends import BACKENDS, Backend
from .conformance.clients import CLIENTS, Client
from .conformance.model import Failed
from .conformance.report import write
from .conformance.scenarios import NOT_APPLICABLE, SCENARIOS, UNSUPPORTED, Scenario
from .conftest import Running, run_gateway

DOCS = Path(__file__).parents[1] / "docs" / "compatibility.md"
CELLS = [
    (client.name, backend, scenario)
    for client in CLIENTS
    for backend in BACKENDS
    for scenario in SCENARIOS
    if (backend.name, scenario.name) not in NOT_APPLICABLE
]
RESULTS: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with ExitStack() as stack:
        servers = {b.name: stack.enter_context(b.fake()) for b in BACKENDS if b.fake}
        models = [entry for b in BACKENDS for entry in b.entries(servers.get(b.name))]
        config = {"models": models}
        yield stack.enter_context(run_gateway(config, tmp_path_factory.mktemp("matrix")))


@pytest.fixture(scope="module")
def clients(gateway: Running) -> dict[str, Client]:
    return {client.name: client(gateway.url) for client in CLIENTS}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if len(RESULTS) == len(CELLS):  # only a full run rewrites the page
        results = dict(RESULTS)
        for client in CLIENTS:
            for backend, scenario in NOT_APPLICABLE:
                results[(client.name, backend, scenario)] = "n/a"
        write(DOCS, results, [client.name for client in CLIENTS])


@pytest.mark.parametrize(
    ("client_name", "backend", "scenario"),
    CELLS,
    ids=[f"{c.split()[0]}-{b.name}-{s.name}" for c, b, s in CELLS],
)
def test_cell(
    clients: dict[str, Client], client_name: str, backend: Backend, scenario: Scenario
) -> None:
    key = (client_name, backend.name, scenario.name)
    RESULTS[key] = "fail"
    declared = UNSUPPORTED.get((backend.name, scenario.name))
    if declared is None:
        scenario.run(clients[client_name], backend)
        RESULTS[key] = "pass"
        return
    field, _ = declared
    with pytest.raises(Failed) as refused:
        scenario.run(clients[client_name], backend)
    assert refused.value.status == 400 and field in refused.value.message, refused.value
    RESULTS[key] = "unsupported"
