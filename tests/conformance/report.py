"""The matrix as Markdown: ``docs/compatibility.md``, rewritten by every full run."""

from __future__ import annotations

from pathlib import Path

from .backends import BACKENDS
from .scenarios import NOT_APPLICABLE, SCENARIOS, UNSUPPORTED

MARKS = {"pass": "✅", "fail": "❌", "unsupported": "unsupported", "n/a": "n/a"}

HEAD = """\
# Compatibility

Every cell is one client talking to llmrelay, which serves the request from one backend.
`make test` runs the whole matrix (`tests/test_conformance.py`) and writes this page.

- **Clients**: the official `openai` SDK and `anthropic` SDK, unmodified, and raw SSE read
  by hand over httpx, which also checks the stream's framing.
- **Backends**: a fake upstream for each provider, a real HTTP server on loopback that
  speaks the provider's documented wire format (`tests/fakes/`), and the model embedded in
  the gateway. The fakes' answers reflect what reached them, so a cell checks the exact
  translation both ways; the embedded model's answers are checked for shape and validity.
- **Marks**: ✅ passes; ❌ fails; *unsupported*: the backend cannot honour the request, and
  the client gets a 400 that names the field (the matrix checks that 400); *n/a*: nothing to
  test.
"""


def write(path: Path, results: dict[tuple[str, str, str], str], clients: list[str]) -> None:
    lines = [HEAD]
    names = [backend.name for backend in BACKENDS]
    for client in clients:
        lines += [f"## {client}", "", "| scenario | " + " | ".join(names) + " |"]
        lines.append("|---" * (len(names) + 1) + "|")
        for scenario in SCENARIOS:
            marks = [MARKS[results[(client, name, scenario.name)]] for name in names]
            lines.append(f"| {scenario.title} | " + " | ".join(marks) + " |")
        lines.append("")
    titles = {scenario.name: scenario.title for scenario in SCENARIOS}
    lines += ["## Unsupported", ""]
    for (backend, scenario), (field, why) in UNSUPPORTED.items():
        lines.append(f"- {backend}, {titles[scenario]}: {why}. The 400 names `{field}`.")
    lines += ["", "## Not applicable", ""]
    for (backend, scenario), why in NOT_APPLICABLE.items():
        lines.append(f"- {backend}, {titles[scenario]}: {why}.")
    lines += [
        "",
        "## Notes",
        "",
        "- The embedded model is a small base model that calls a tool only when forced, so its",
        "  tool round trip forces the first call with `tool_choice: required`.",
        "- Its 4xx is its own: a prompt longer than its context window.",
        "",
    ]
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines))
