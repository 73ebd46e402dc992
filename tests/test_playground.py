"""The web playground, end to end: a real gateway on loopback serving the page, real Chromium
driving it through Playwright, the bundled local model and fake OpenAI upstreams as real
servers.

Every page records its console errors, uncaught exceptions and every URL it asks for;
each test ends by asserting that there were no errors and that nothing left the
gateway's origin. Screenshots of each view go to docs/screenshots/, at desktop and phone
sizes.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    FilePayload,
    Locator,
    Page,
    Playwright,
    Request,
    Route,
    ViewportSize,
    WebSocket,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from .conftest import Running, run_gateway
from .fakes.dripping_upstream import DrippingUpstream
from .fakes.openai_upstream import FakeUpstream
from .fakes.scripted_upstream import ScriptedUpstream

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "docs" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
MOBILE: ViewportSize = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWS = ["chat", "compare", "jobs", "requests", "usage"]
MODELS = ["local", "alpha", "beta", "drip", "tools-model", "midstream-error"]

# The scripted models' upstream key: it must reach the upstream and never the page.
UPSTREAM_SECRET = "sk-playground-" + secrets.token_hex(16)
MASTER_KEY = "sk-master-" + secrets.token_hex(12)
ANSWERS = {
    "alpha": "Alpha answers: the sky is blue and the sea is deep.",
    "beta": "Beta answers: bread needs flour, water, salt and time.",
}
PRICES = {"alpha": {"input": 2000.0, "output": 6000.0}, "beta": {"input": 1000.0, "output": 3000.0}}
SCRIPTED_PROMPT_TOKENS = 5  # what the scripted upstream reports for every request
# The local model answers at temperature 0, and briefly: under the recipe grammar it makes
# about 10 tokens a second, so a job's answer is cut (and repaired) well before a minute.
LOCAL_MAX_TOKENS = 64
# The 401 that a page without a key is refused with: Chromium logs each as a console error.
REFUSED = re.compile(r"^Failed to load resource: the server responded with a status of 401")
ABORTED = re.compile(r"^Failed to load resource: net::ERR_FAILED")


# --- servers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def drip() -> Iterator[DrippingUpstream]:
    with DrippingUpstream(pieces=200, pace=0.1) as fake:
        yield fake


def scripted_model(fake: ScriptedUpstream, name: str) -> dict[str, Any]:
    return {**fake.model(name), "api_key": UPSTREAM_SECRET}


@pytest.fixture(scope="module")
def relay(
    scripted: ScriptedUpstream,
    drip: DrippingUpstream,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    """The gateway the playground is tested on: no keys, bodies kept for the inspector."""
    config = {
        "log_content": True,
        "default_model": "local",
        "pricing": PRICES,
        "models": [
            {
                "name": "local",
                "provider": "local",
                "max_tokens": LOCAL_MAX_TOKENS,
                "temperature": 0,
                "n_ctx": 2048,
            },
            scripted_model(scripted, "alpha"),
            scripted_model(scripted, "beta"),
            {"name": "drip", "provider": "openai", "base_url": drip.base_url, "model": "drip"},
            {"name": "tools-model", "provider": "openai", "base_url": upstream.base_url},
            {"name": "midstream-error", "provider": "openai", "base_url": upstream.base_url},
        ],
    }
    with run_gateway(config, tmp_path_factory.mktemp("playground")) as running:
        yield running


@pytest.fixture(scope="module")
def locked(
    scripted: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """A gateway with a master key, so that every request needs a key."""
    config = {
        "master_key": MASTER_KEY,
        "models": [scripted_model(scripted, "alpha"), scripted_model(scripted, "beta")],
    }
    with run_gateway(config, tmp_path_factory.mktemp("locked")) as running:
        yield running


# --- the browser and its pages ----------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def _origin(url: str) -> tuple[str, str]:
    """Scheme family and host:port; a WebSocket to the same host and port is same-origin."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return scheme, parts.netloc


@dataclass
class Watched:
    """A page with what it logged and asked for."""

    page: Page
    origin: str
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        """Every URL the page asked for outside the gateway's origin."""
        home = _origin(self.origin)
        return [
            url
            for url in self.urls
            if not url.startswith(("data:", "blob:")) and _origin(url) != home
        ]


@contextmanager
def watched_page(
    browser: Browser,
    origin: str,
    viewport: ViewportSize = DESKTOP,
    tolerate: tuple[re.Pattern[str], ...] = (),
) -> Iterator[Watched]:
    """A fresh browser context and page at ``origin``; at the end, asserts that it logged no
    error (but those matching ``tolerate``) and asked for nothing outside the origin."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Watched(page, origin)

    def console(message: Any) -> None:
        if message.type == "error":
            seen.errors.append(f"console: {message.text}")

    def request(req: Request) -> None:
        seen.urls.append(req.url)

    def websocket(socket: WebSocket) -> None:
        seen.urls.append(socket.url)

    page.on("console", console)
    page.on("pageerror", lambda error: seen.errors.append(f"pageerror: {error}"))
    page.on("request", request)
    page.on("websocket", websocket)
    try:
        yield seen
    finally:
        context.close()
    unexpected = [
        e for e in seen.errors if not any(p.search(e.removeprefix("console: ")) for p in tolerate)
    ]
    assert unexpected == [], unexpected
    assert seen.foreign() == [], seen.foreign()


@pytest.fixture
def watched(browser: Browser, relay: Running) -> Iterator[Watched]:
    with watched_page(browser, relay.url) as seen:
        seen.page.goto(relay.url + "/")
        expect(seen.page.get_by_test_id("view-chat")).to_be_visible()
        yield seen


# --- helpers -----------------------------------------------------------------------------


def show(page: Page, view: str) -> Locator:
    page.get_by_test_id(f"nav-{view}").click()
    shown = page.get_by_test_id(f"view-{view}")
    expect(shown).to_be_visible()
    return shown


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size
    assert viewport is not None and width <= viewport["width"], width


def shoot(page: Page, name: str) -> None:
    """Save the page as it is at desktop size, then the whole page at phone size (which must
    not scroll sideways), then go back to desktop size."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=SHOTS / f"{name}-desktop.png")
    page.set_viewport_size(MOBILE)
    page.wait_for_timeout(150)  # a layout pass and any chart resize
    no_sideways_scroll(page)
    # From the top: scrolled, the sticky header would show partway down the whole page.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / f"{name}-mobile.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def pick_model(select: Locator, model: str) -> None:
    expect(select.locator(f'option[value="{model}"]')).to_have_count(1)
    select.select_option(model)


def last_answer(page: Page) -> Locator:
    return page.locator('[data-testid="chat-message"][data-role="assistant"]').last


def ask(page: Page, model: str, prompt: str) -> Locator:
    """Send ``prompt`` to ``model`` from the chat view; the answer's message."""
    pick_model(page.get_by_test_id("model-select"), model)
    page.get_by_test_id("chat-input").fill(prompt)
    page.get_by_test_id("send").click()
    answer = last_answer(page)
    expect(answer).to_be_attached()
    return answer


def millis(text: str) -> float:
    """A duration as the page writes it ("19 ms", "1.24 s"), in milliseconds."""
    found = re.search(r"(\d+(?:\.\d+)?)\s*(ms|s)\b", text)
    assert found, f"no duration in {text!r}"
    return float(found.group(1)) * (1 if found.group(2) == "ms" else 1000)


def number(text: str) -> float:
    found = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    assert found, f"no number in {text!r}"
    return float(found.group().replace(",", ""))


def shows_amount(text: str, expected: float) -> bool:
    """Whether ``text`` shows ``expected`` to the precision it is written with."""
    found = re.search(r"\d[\d,]*(?:\.(\d+))?", text)
    assert found, f"no number in {text!r}"
    shown = float(found.group().replace(",", ""))
    step = 10.0 ** -len(found.group(1) or "")
    return abs(shown - expected) <= step / 2 + 1e-12


def until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def js_text(value: Any) -> str:
    """A JSON scalar as JavaScript's String() or JSON.stringify() (for strings) shows it."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def tree_parts(value: Any) -> tuple[list[str], list[str]]:
    """The labels and the scalars of a JSON tree of ``value``, in document order."""
    labels: list[str] = []
    scalars: list[str] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            labels.append(f"{json.dumps(key)}: ")
            if isinstance(child, dict | list):
                walk(child)
            else:
                scalars.append(js_text(child))

    if isinstance(value, dict | list):
        walk(value)
    else:
        scalars.append(js_text(value))
    return labels, scalars


# Records the text of the newest assistant message each time the DOM changes, with the time
# and the message's data-streaming.
OBSERVE_ANSWER = """() => {
  window.__snaps = [];
  const read = () => {
    const all = document.querySelectorAll('[data-testid="chat-message"][data-role="assistant"]');
    const message = all[all.length - 1];
    if (!message) return;
    const content = message.querySelector('[data-testid="message-content"]');
    const text = content ? content.textContent : '';
    const streaming = message.getAttribute('data-streaming');
    const last = window.__snaps[window.__snaps.length - 1];
    if (!last || last.text !== text || last.streaming !== streaming)
      window.__snaps.push({t: performance.now(), text, streaming});
  };
  new MutationObserver(read).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""

# Opens every level of a JSON tree (a level builds its children when first opened), then
# reads its labels and scalars in document order.
READ_TREE = """async (tree) => {
  for (;;) {
    const closed = tree.querySelectorAll('details:not([open])');
    if (!closed.length) break;
    closed.forEach((details) => { details.open = true; });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const texts = (selector) => [...tree.querySelectorAll(selector)].map((e) => e.textContent);
  return {
    labels: texts('.json-key'),
    scalars: texts('.json-string, .json-number, .json-boolean, .json-null'),
  };
}"""

CHARTS = ("requests", "tokens", "cost", "latency")
# The rendered size of each usage chart's canvas, once all four have one; else null.
CHART_SIZES = """(names) => {
  const sizes = {};
  for (const name of names) {
    const canvas = document.querySelector(`[data-testid="usage-chart-${name}"] canvas`);
    if (!canvas || !canvas.isConnected) return null;
    const box = canvas.getBoundingClientRect();
    if (!box.width || !box.height) return null;
    sizes[name] = [box.width, box.height];
  }
  return sizes;
}"""

# Samples the job progress bar's aria-valuenow every 20 ms, wherever the bar is.
SAMPLE_PROGRESS = """() => {
  window.__progress = [];
  window.__sampler = setInterval(() => {
    const bar = document.querySelector('[data-testid="job-progress"]');
    if (!bar) return;
    const value = bar.getAttribute('aria-valuenow');
    const seen = window.__progress;
    if (value !== null && seen[seen.length - 1] !== value) seen.push(value);
  }, 20);
}"""


# --- 1. streaming ----------------------------------------------------------------------


def test_streamed_text_appears_incrementally(watched: Watched) -> None:
    """The local model's answer reaches the page in several DOM updates while it streams."""
    page = watched.page
    page.get_by_test_id("param-max_tokens").fill("48")
    page.evaluate(OBSERVE_ANSWER)
    answer = ask(page, "local", "Once upon a time, in a small village by the sea,")
    expect(answer).to_have_attribute("data-streaming", "false", timeout=30_000)
    final = answer.get_by_test_id("message-content").text_content() or ""
    assert final.strip(), "the local model's answer is empty"

    snaps: list[dict[str, Any]] = page.evaluate("window.__snaps")
    growing = [s for s in snaps if s["streaming"] == "true" and s["text"]]
    lengths = [len(s["text"]) for s in growing]
    # Each a longer text than any before it: markdown may briefly shorten the text (a "**"
    # becomes bold), so only the new maxima count.
    maxima = [n for i, n in enumerate(lengths) if all(n > m for m in lengths[:i])]
    assert len(maxima) >= 3, lengths
    assert len(growing[0]["text"]) < len(final), "the first update already held the whole answer"
    assert growing[-1]["t"] - growing[0]["t"] > 50, "the updates all came at once"
    # The stats line counts the answer's tokens, at most the max_tokens asked for.
    stats = answer.get_by_test_id("message-stats").inner_text()
    counted = re.search(r"→ (\d+) tokens", stats)
    assert counted and 1 <= int(counted.group(1)) <= 48, stats
    shoot(page, "chat")


# --- 2. Stop ----------------------------------------------------------------------------


def test_stop_ends_the_stream_and_the_upstream_request(
    watched: Watched, drip: DrippingUpstream
) -> None:
    page = watched.page
    before = len(drip.drips)
    answer = ask(page, "drip", "Talk for a long time.")
    content = answer.get_by_test_id("message-content")
    expect(answer).to_have_attribute("data-streaming", "true")
    expect(content).to_contain_text("drop3", timeout=10_000)
    page.get_by_test_id("stop").click()
    stopped = time.monotonic()
    expect(answer).to_have_attribute("data-streaming", "false", timeout=3_000)

    stream = until(lambda: len(drip.drips) > before and drip.drips[before], 5, "the stream")
    until(lambda: stream.closed is not None, 5, "the upstream connection to close")
    assert stream.finished is None
    assert stream.closed - stopped < 2.0, "the upstream request outlived Stop"
    assert stream.closed - stream.started < drip.full_seconds / 2
    assert stream.sent < drip.pieces

    text = content.text_content()
    page.wait_for_timeout(400)  # four more chunks' time: nothing more arrives
    assert content.text_content() == text
    assert "drop3" in (text or "")


# --- chat controls ------------------------------------------------------------------------


def test_chat_sends_the_system_prompt_and_parameters(
    watched: Watched, scripted: ScriptedUpstream
) -> None:
    """What the chat form holds is what reaches the upstream."""
    page = watched.page
    page.get_by_test_id("system-prompt").fill("You answer in one sentence.")
    for name, value in {
        "temperature": "0.3",
        "top_p": "0.9",
        "max_tokens": "64",
        "presence_penalty": "0.5",
        "frequency_penalty": "0.2",
        "seed": "7",
        "stop": "THE END",
    }.items():
        page.get_by_test_id(f"param-{name}").fill(value)
    scripted.script("alpha", [ANSWERS["alpha"]])
    answer = ask(page, "alpha", "What colour is the sky?")
    expect(answer).to_have_attribute("data-streaming", "false")
    expect(answer.get_by_test_id("message-content")).to_have_text(ANSWERS["alpha"])

    # The message names the model that answered, and its cost once the gateway recorded it.
    expect(answer.get_by_test_id("message-model")).to_have_text("alpha")
    cost = answer.get_by_test_id("message-cost")
    expect(cost).to_contain_text("$")
    price = PRICES["alpha"]
    words = len(ANSWERS["alpha"].split())
    expected = (SCRIPTED_PROMPT_TOKENS * price["input"] + words * price["output"]) / 1e6
    assert shows_amount(cost.inner_text(), expected), (cost.inner_text(), expected)

    sent = scripted.asked("alpha")[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You answer in one sentence."}
    assert sent["messages"][-1]["content"] == "What colour is the sky?"
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.9
    assert 64 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))
    assert sent["presence_penalty"] == 0.5 and sent["frequency_penalty"] == 0.2
    assert sent["seed"] == 7
    assert sent["stop"] in ("THE END", ["THE END"])
    assert sent["stream"] is True


def test_tool_calls_show_as_cards(watched: Watched, upstream: FakeUpstream) -> None:
    page = watched.page
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("get_weather", "get_time")
    ]
    page.get_by_test_id("tools-json").fill(json.dumps(tools))
    answer = ask(page, "tools-model", "Weather and time in Paris?")
    expect(answer).to_have_attribute("data-streaming", "false")
    cards = answer.get_by_test_id("tool-call-card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("get_weather")
    expect(cards.nth(1)).to_contain_text("get_time")
    # The arguments the upstream streamed in fragments, put back together.
    expect(cards.nth(0)).to_contain_text("Paris")
    sent = [r.body for r in upstream.requests if r.body.get("model") == "tools-model"][-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]


def test_a_stream_that_breaks_shows_its_error(watched: Watched) -> None:
    """An upstream that fails after two chunks: the text so far stays, and the error shows."""
    page = watched.page
    answer = ask(page, "midstream-error", "Say hello.")
    expect(answer).to_have_attribute("data-streaming", "false")
    expect(answer.get_by_test_id("message-content")).to_have_text("Hello from")
    expect(page.get_by_test_id("chat-error")).to_be_visible()
    expect(page.get_by_test_id("chat-error")).to_contain_text("The model crashed.")


def test_an_attached_image_reaches_the_upstream(
    watched: Watched, scripted: ScriptedUpstream
) -> None:
    page = watched.page
    pick_model(page.get_by_test_id("model-select"), "local")
    expect(page.get_by_test_id("attach-image")).to_be_disabled()  # local takes text only
    pick_model(page.get_by_test_id("model-select"), "alpha")
    expect(page.get_by_test_id("attach-image")).to_be_enabled()
    picture = png_pixel()
    upload: FilePayload = {"name": "pixel.png", "mimeType": "image/png", "buffer": picture}
    page.get_by_test_id("attach-image").set_input_files(files=[upload])
    expect(page.locator("#chat-attachments img")).to_have_count(1)
    scripted.script("alpha", [ANSWERS["alpha"]])
    answer = ask(page, "alpha", "What is in this picture?")
    expect(answer).to_have_attribute("data-streaming", "false")
    parts = scripted.asked("alpha")[-1]["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is in this picture?"}
    url = parts[1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(picture).decode()

    # An image dropped on the composer, or pasted into it, is attached too.
    attached = page.locator("#chat-attachments img")
    page.evaluate(DROP_IMAGE, {"event": "drop", "png": list(picture)})
    expect(attached).to_have_count(1)
    page.evaluate(DROP_IMAGE, {"event": "paste", "png": list(picture)})
    expect(attached).to_have_count(2)
    # A text-only model: the images are removed, and the page says so.
    pick_model(page.get_by_test_id("model-select"), "local")
    expect(attached).to_have_count(0)
    reason = page.locator("#attach-reason")
    expect(reason).to_contain_text("removed the 2 attached images")
    page.evaluate(DROP_IMAGE, {"event": "drop", "png": list(picture)})
    expect(reason).to_contain_text("not attached")
    expect(attached).to_have_count(0)


def test_export_holds_the_conversation_and_clear_empties_it(
    watched: Watched, scripted: ScriptedUpstream
) -> None:
    page = watched.page
    scripted.script("alpha", [ANSWERS["alpha"]])
    answer = ask(page, "alpha", "Export me.")
    expect(answer).to_have_attribute("data-streaming", "false")
    with page.expect_download() as downloading:
        page.get_by_test_id("export").click()
    exported = json.loads(Path(downloading.value.path()).read_text())
    assert exported["model"] == "alpha"
    assert exported["messages"] == [
        {"role": "user", "content": "Export me."},
        {"role": "assistant", "content": ANSWERS["alpha"]},
    ]
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("chat-message")).to_have_count(0)
    # The next request starts a new conversation.
    scripted.script("alpha", [ANSWERS["alpha"]])
    expect(ask(page, "alpha", "Again.")).to_have_attribute("data-streaming", "false")
    assert scripted.asked("alpha")[-1]["messages"] == [{"role": "user", "content": "Again."}]


# Drops a PNG on the chat composer, or pastes it there, as the browser would.
DROP_IMAGE = """({event, png}) => {
  const data = new DataTransfer();
  data.items.add(new File([new Uint8Array(png)], 'pixel.png', {type: 'image/png'}));
  const form = document.getElementById('chat-form');
  const init = {bubbles: true, cancelable: true};
  form.dispatchEvent(event === 'paste'
    ? new ClipboardEvent('paste', {...init, clipboardData: data})
    : new DragEvent('drop', {...init, dataTransfer: data}));
}"""


def test_a_turn_refused_before_streaming_is_taken_back(
    browser: Browser, relay: Running, scripted: ScriptedUpstream
) -> None:
    """A request refused before any answer: the message leaves the conversation and goes
    back into the input; sending again sends it once."""
    refused = re.compile(r"status of 429")
    with watched_page(browser, relay.url, tolerate=(refused,)) as seen:
        page = seen.page
        page.goto(relay.url + "/")
        busy = {"error": {"message": "Too many requests, try later.", "type": "rate_limit"}}
        page.route("**/v1/chat/completions", lambda route: route.fulfill(status=429, json=busy))
        pick_model(page.get_by_test_id("model-select"), "alpha")
        page.get_by_test_id("chat-input").fill("Are you there?")
        page.get_by_test_id("send").click()
        expect(page.get_by_test_id("chat-error")).to_contain_text("Too many requests")
        expect(page.get_by_test_id("chat-message")).to_have_count(0)
        expect(page.get_by_test_id("chat-input")).to_have_value("Are you there?")

        page.unroute("**/v1/chat/completions")
        scripted.script("alpha", [ANSWERS["alpha"]])
        page.get_by_test_id("send").click()
        expect(last_answer(page)).to_have_attribute("data-streaming", "false")
        assert scripted.asked("alpha")[-1]["messages"] == [
            {"role": "user", "content": "Are you there?"}
        ]


def test_a_stopped_answer_keeps_only_its_text(watched: Watched) -> None:
    """Tool calls of an answer cut short get no results, so the history keeps its text only."""
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{"}}
    kept = watched.page.evaluate(
        """async (call) => {
          const { assistantMessage } = await import('/ui/js/stream.js');
          const reply = (more) => ({ content: 'Let me look', toolCalls: [call], stopped: false,
                                     error: null, ...more });
          return [
            assistantMessage(reply({ stopped: true })),
            assistantMessage(reply({ error: { message: 'broke' } })),
            assistantMessage(reply({ stopped: true, content: '' })),
            assistantMessage(reply({})),
          ];
        }""",
        call,
    )
    text_only = {"role": "assistant", "content": "Let me look"}
    assert kept == [
        text_only,
        text_only,
        None,
        {**text_only, "tool_calls": [call]},
    ]


MARKDOWN_CASES = {
    "[`x`](https://a.b)": '<p><a href="https://a.b" target="_blank" rel="noopener noreferrer">'
    "<code>x</code></a></p>",
    r"\*not emphasis\*": "<p>*not emphasis*</p>",
    "see <https://a.b/c?d=1>": '<p>see <a href="https://a.b/c?d=1" target="_blank" '
    'rel="noopener noreferrer">https://a.b/c?d=1</a></p>',
    "Totals:\n| a | b |\n|---|---|\n| `x|y` | 2 |": "<p>Totals:</p><table><thead><tr><th>a</th>"
    "<th>b</th></tr></thead><tbody><tr><td><code>x|y</code></td><td>2</td></tr></tbody></table>",
    "<img src=x onerror=alert(1)>": "<p>&lt;img src=x onerror=alert(1)&gt;</p>",
}


def test_markdown_edge_cases_render_safely(watched: Watched) -> None:
    rendered = watched.page.evaluate(
        """async (sources) => {
          const { patchMarkdown } = await import('/ui/js/markdown.js');
          const render = (source) => {
            const box = document.createElement('div');
            patchMarkdown(box, source);
            return box;
          };
          const deep = render('>'.repeat(20000));
          return {
            html: sources.map((source) => render(source).innerHTML),
            deep: [deep.querySelectorAll('blockquote').length, deep.textContent.length],
          };
        }""",
        list(MARKDOWN_CASES),
    )
    assert rendered["html"] == list(MARKDOWN_CASES.values())
    # Nesting is capped, and the rest shows as text.
    quotes, length = rendered["deep"]
    assert 1 <= quotes <= 20 and length > 19_000, rendered["deep"]


def png_pixel() -> bytes:
    """A 1×1 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# --- 3. compare ---------------------------------------------------------------------------


def test_compare_fills_two_columns_with_stats(watched: Watched, scripted: ScriptedUpstream) -> None:
    page = watched.page
    show(page, "compare")
    models = ["alpha", "beta"]
    selects = page.get_by_test_id("compare-model")
    while selects.count() < len(models):
        page.get_by_test_id("compare-add").click()
    for index, model in enumerate(models):
        pick_model(selects.nth(index), model)
        scripted.script(model, [ANSWERS[model]])
    page.get_by_test_id("compare-input").fill("Tell me something true.")
    page.get_by_test_id("compare-run").click()

    columns = page.get_by_test_id("compare-column")
    for index, model in enumerate(models):
        column = columns.nth(index)
        expect(column).to_have_attribute("data-done", "true", timeout=15_000)
        expect(column.get_by_test_id("column-model")).to_contain_text(model)
        expect(column.get_by_test_id("column-output")).to_have_text(ANSWERS[model])
        ttft = millis(column.get_by_test_id("stat-ttft").inner_text())
        total = millis(column.get_by_test_id("stat-total").inner_text())
        assert 0 < ttft <= total < 15_000, (ttft, total)
        # The scripted upstream counts a token per word and 5 for any prompt.
        completion = len(ANSWERS[model].split())
        expect(column.get_by_test_id("stat-tokens")).to_have_text(
            re.compile(rf"^\s*{SCRIPTED_PROMPT_TOKENS}\D+{completion}\b")
        )
        price = PRICES[model]
        cost = (SCRIPTED_PROMPT_TOKENS * price["input"] + completion * price["output"]) / 1e6
        shown = column.get_by_test_id("stat-cost").inner_text()
        assert shows_amount(shown, cost), (shown, cost)
    shoot(page, "compare")

    # A third column: a model that answers with tool calls, shown as cards.
    page.get_by_test_id("compare-add").click()
    expect(selects).to_have_count(3)
    pick_model(selects.nth(2), "tools-model")
    page.get_by_test_id("compare-run").click()
    third = columns.nth(2)
    expect(third).to_have_attribute("data-done", "true")
    expect(third.get_by_test_id("column-model")).to_have_text("tools-model")
    expect(third.get_by_test_id("column-output")).to_contain_text("get_weather")
    expect(third.get_by_test_id("column-output")).to_contain_text("get_time")


def test_compare_locks_its_pickers_while_running(watched: Watched) -> None:
    page = watched.page
    show(page, "compare")
    selects = page.get_by_test_id("compare-model")
    pick_model(selects.nth(0), "drip")
    pick_model(selects.nth(1), "drip")
    page.get_by_test_id("compare-input").fill("Talk for a while.")
    page.get_by_test_id("compare-run").click()
    expect(page.get_by_test_id("column-output").first).to_contain_text("drop1")
    for index in range(2):
        expect(selects.nth(index)).to_be_disabled()
    expect(page.get_by_test_id("compare-run")).to_be_disabled()
    page.locator("#compare-stop").click()
    # Run is back as soon as the streams end, whatever the cost look-ups.
    expect(page.get_by_test_id("compare-run")).to_be_enabled()
    for index in range(2):
        expect(selects.nth(index)).to_be_enabled()
        # Done once its cost is looked up, which waits for the stopped request's record.
        expect(page.get_by_test_id("compare-column").nth(index)).to_have_attribute(
            "data-done", "true", timeout=15_000
        )


# --- 4. jobs ------------------------------------------------------------------------------


def submit_recipe_job(page: Page, params: dict[str, str] | None = None) -> str:
    """Submit the recipe preset on the local model from the jobs view, with ``params`` in
    its parameter fields; the job's id."""
    show(page, "jobs")
    pick_model(page.get_by_test_id("job-model"), "local")
    page.get_by_test_id("job-preset").select_option("recipe")
    for name, value in (params or {}).items():
        page.get_by_test_id(f"job-param-{name}").fill(value)
    expect(page.get_by_test_id("job-schema")).not_to_have_value("")
    expect(page.get_by_test_id("job-prompt")).not_to_have_value("")  # the preset's own
    page.evaluate(SAMPLE_PROGRESS)
    with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/v1/jobs"
    ) as submitted:
        page.get_by_test_id("job-submit").click()
    sent: dict[str, Any] = submitted.value.request.post_data_json or {}
    for name, value in (params or {}).items():
        assert sent[name] == float(value), (name, sent)
    job_id: str = submitted.value.json()["id"]
    return job_id


def check_finished_job(page: Page, relay: Running, job_id: str) -> tuple[dict[str, Any], list[int]]:
    """Wait for the job to finish in the page; check its tree against the gateway's record.
    The job, and the progress values the bar showed, in order."""
    expect(page.get_by_test_id("job-progress")).to_have_attribute(
        "aria-valuenow", "100", timeout=60_000
    )
    job = httpx.get(f"{relay.v1}/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "completed", job["error"]
    assert isinstance(job["output"], dict) and job["output"]
    tree = page.get_by_test_id("job-result").locator(".json-tree")
    expect(tree).to_be_visible()
    shown = tree.evaluate(READ_TREE)
    assert (shown["labels"], shown["scalars"]) == tree_parts(job["output"])
    page.evaluate("clearInterval(window.__sampler)")
    values = [int(float(v)) for v in page.evaluate("window.__progress")]
    assert values[-1] == 100
    assert values == sorted(values), f"the progress fell: {values}"
    # Under the output: the tokens used, and what became of each attempt.
    usage = page.get_by_test_id("job-usage")
    expect(usage).to_contain_text(f"Completion tokens{job['usage']['completion_tokens']:,}")
    expect(page.get_by_test_id("job-history").locator(":scope > li")).to_have_count(
        len(job["history"])
    )
    return job, values


def test_job_progress_rises_to_100_and_the_tree_shows_the_output(
    watched: Watched, relay: Running
) -> None:
    page = watched.page
    job_id = submit_recipe_job(page)
    expect(page.get_by_test_id("job-channel")).to_have_text("push · WebSocket")
    job, values = check_finished_job(page, relay, job_id)
    assert len(values) >= 3, f"the bar jumped rather than rose: {values}"
    expect(page.get_by_test_id("job-stage")).to_have_text(job["message"])
    page.get_by_test_id("jobs-refresh").click()
    expect(page.get_by_test_id("jobs-list").get_by_test_id("job-row").first).to_contain_text(job_id)
    shoot(page, "jobs")
    # Inspect opens the record of the job's run on the local model.
    page.get_by_test_id("job-inspect").click()
    expect(page.get_by_test_id("inspector")).to_contain_text(job["request_id"])
    completion = job["result"]["usage"]["completion_tokens"]
    expect(page.get_by_test_id("inspector-tokens")).to_contain_text(f"Completion{completion}")


def test_job_falls_back_to_polling_without_push(browser: Browser, relay: Running) -> None:
    """With the WebSocket refused and the event stream cut, the page polls, and the job still
    completes in it."""
    with watched_page(browser, relay.url, tolerate=(ABORTED,)) as seen:
        page = seen.page
        refused: list[str] = []

        def refuse_socket(socket: WebSocketRoute) -> None:
            """Never reach the server: close at once, as a gateway refusing it would."""
            refused.append(socket.url)
            socket.close(code=1008, reason="refused by the test")

        glitches: list[str] = []

        def glitch_once(route: Route) -> None:
            """The first poll fails as a dropped connection would; the others go through."""
            if glitches:
                route.continue_()
            else:
                glitches.append(route.request.url)
                route.abort()

        page.route_web_socket(re.compile(r"/v1/jobs/[^/]+/ws"), refuse_socket)
        page.route(re.compile(r"/v1/jobs/[^/]+/events"), lambda route: route.abort())
        page.route(re.compile(r"/v1/jobs/job_[0-9a-f]+$"), glitch_once)
        page.goto(relay.url + "/")
        job_id = submit_recipe_job(page, {"max_tokens": str(LOCAL_MAX_TOKENS), "temperature": "0"})
        expect(page.get_by_test_id("job-channel")).to_have_text("polling", timeout=10_000)
        check_finished_job(page, relay, job_id)
        expect(page.get_by_test_id("job-channel")).to_have_text("polling")
        # Push was tried first: the socket, then the event stream, both cut here.
        assert refused == [f"{relay.url.replace('http', 'ws')}/v1/jobs/{job_id}/ws"], refused
        assert f"{relay.v1}/jobs/{job_id}/events" in seen.urls
        assert glitches == [f"{relay.v1}/jobs/{job_id}"], glitches


# --- 5. inspector ---------------------------------------------------------------------------


def test_inspector_shows_the_upstream_request_with_the_key_redacted(
    watched: Watched, scripted: ScriptedUpstream
) -> None:
    page = watched.page
    prompt = "Inspect this request, please."
    page.get_by_test_id("system-prompt").fill("Answer like a lighthouse keeper.")
    scripted.script("alpha", [ANSWERS["alpha"]])
    answer = ask(page, "alpha", prompt)
    expect(answer).to_have_attribute("data-streaming", "false")
    # The secret did reach the upstream, so its absence from the page means something.
    assert scripted.last().headers["Authorization"] == f"Bearer {UPSTREAM_SECRET}"

    answer.get_by_test_id("inspect-button").click()
    inspector = page.get_by_test_id("inspector")
    expect(inspector).to_be_visible()
    sent = page.get_by_test_id("inspector-upstream-request")
    expect(sent).to_contain_text(scripted.base_url + "/chat/completions")
    expect(sent).to_contain_text(prompt)
    expect(sent).to_contain_text(re.compile(r"authorization\s*\[redacted\]", re.I))
    expect(page.get_by_test_id("inspector-upstream-response")).to_contain_text("Alpha")
    expect(page.get_by_test_id("inspector-tokens")).to_contain_text(
        str(len(ANSWERS["alpha"].split()))
    )
    assert number(page.get_by_test_id("inspector-cost").inner_text()) > 0
    expect(page.get_by_test_id("inspector-waterfall").locator(".waterfall-row")).not_to_have_count(
        0
    )
    expect(page.get_by_test_id("inspector-system")).to_contain_text(
        "Answer like a lighthouse keeper."
    )
    assert UPSTREAM_SECRET not in page.content()
    shoot(page, "inspector")
    page.get_by_test_id("inspector-close").click()
    expect(inspector).to_be_hidden()


# --- 6. usage and requests ------------------------------------------------------------------


def test_usage_charts_render(watched: Watched, relay: Running, scripted: ScriptedUpstream) -> None:
    for model in ("alpha", "beta"):
        reply = httpx.post(
            f"{relay.v1}/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Count me."}]},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text

    def groups(by: str) -> set[str | None]:
        series = httpx.get(f"{relay.v1}/usage/series", params={"by": by}, timeout=10).json()
        return {row["group"] for row in series["data"]}

    models = until(lambda: {"alpha", "beta"} <= groups("model") and groups("model"), 10, "records")
    page = watched.page
    view = show(page, "usage")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/v1/usage/series"):
        page.get_by_test_id("usage-refresh").click()
    # Each chart is redrawn when its data arrives: wait until all four hold a drawn canvas.
    sizes = page.wait_for_function(CHART_SIZES, arg=list(CHARTS)).json_value()
    for chart in CHARTS:
        width, height = sizes[chart]
        assert width > 0 and height > 0, (chart, width, height)
    expect(page.get_by_test_id("usage-empty")).to_be_hidden()
    # One line per model that the gateway recorded, in the last 24 hours.
    legend = view.get_by_test_id("usage-chart-requests").locator(".u-legend .u-series .u-label")
    expect(legend).to_have_count(len(models) + 1)  # and the time
    assert set(legend.all_inner_texts()[1:]) == models
    # Each chart is an image named by its lines' totals.
    for model in ("alpha", "beta"):
        expect(view.get_by_test_id("usage-chart-requests")).to_have_attribute(
            "aria-label", re.compile(rf"\b{model} [\d,]+ in all")
        )
    shoot(page, "usage")

    # The last hour holds the same models.
    page.get_by_test_id("usage-range").select_option(label="Last hour")
    expect(legend).to_have_count(len(models) + 1)
    assert set(legend.all_inner_texts()[1:]) == models

    # Per key: this gateway has no keys, so one line, for requests made without one.
    page.get_by_test_id("usage-group").select_option("key")
    assert groups("key") == {None}
    expect(legend).to_have_count(2)
    expect(legend.nth(1)).to_have_text("no key")


def test_requests_list_shows_recorded_requests(watched: Watched, relay: Running) -> None:
    httpx.post(
        f"{relay.v1}/chat/completions",
        json={"model": "beta", "messages": [{"role": "user", "content": "List me."}]},
        timeout=10,
    ).raise_for_status()
    listed = until(
        # As many as the page lists.
        lambda: httpx.get(f"{relay.v1}/requests?limit=50", timeout=10).json()["data"],
        10,
        "records",
    )
    page = watched.page
    show(page, "requests")
    page.get_by_test_id("requests-refresh").click()
    rows = page.get_by_test_id("requests-list").get_by_test_id("request-row")
    expect(rows).to_have_count(len(listed))
    newest = listed[0]
    assert newest["model"] == "beta"
    expect(rows.first).to_contain_text(newest["id"])
    expect(rows.first).to_contain_text("beta")
    shoot(page, "requests")
    # A row opens the inspector on its request.
    rows.first.click()
    expect(page.get_by_test_id("inspector")).to_be_visible()
    expect(page.get_by_test_id("inspector")).to_contain_text(newest["id"])
    expect(page.get_by_test_id("inspector-upstream-request")).to_contain_text("List me.")


# --- 7. the origin ----------------------------------------------------------------------------


def test_every_view_stays_on_the_gateways_origin(watched: Watched, relay: Running) -> None:
    page = watched.page
    for view in VIEWS:
        show(page, view)
        for other in VIEWS:
            if other != view:
                expect(page.get_by_test_id(f"view-{other}")).to_be_hidden()
        page.wait_for_load_state("networkidle")
    assert any(urlsplit(url).path.startswith("/ui/") for url in watched.urls), watched.urls
    assert any(urlsplit(url).path == "/v1/models" for url in watched.urls), watched.urls
    assert watched.foreign() == []
    # The skip link and any other in-page link keep the tab; the skip link focuses the content.
    page.locator(".skip-link").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    page.evaluate("window.location.hash = '#nowhere'")
    page.wait_for_timeout(100)
    expect(page.get_by_test_id(f"view-{VIEWS[-1]}")).to_be_visible()
    # The app is also at /ui/, under the same strict policy.
    response = page.goto(relay.url + "/ui/")
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_test_id("view-chat")).to_be_visible()
    expect(page.get_by_test_id("model-select").locator("option")).to_have_count(len(MODELS))


# --- 8. keys ---------------------------------------------------------------------------------


def test_the_page_asks_for_a_key_and_keeps_the_right_one(browser: Browser, locked: Running) -> None:
    created = httpx.post(
        f"{locked.url}/admin/keys",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"name": "playground", "models": ["alpha"]},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    with watched_page(browser, locked.url, tolerate=(REFUSED,)) as seen:
        page = seen.page
        page.goto(locked.url + "/")
        dialog = page.get_by_test_id("key-dialog")
        expect(dialog).to_be_visible()
        message = page.get_by_test_id("key-message")
        expect(message).to_contain_text(re.compile(r"requires an API key", re.I))
        asked = message.inner_text()

        page.get_by_test_id("key-input").fill("sk-wrong-" + secrets.token_hex(8))
        page.get_by_test_id("key-save").click()
        expect(dialog).to_be_visible()
        expect(message).not_to_have_text(asked)
        expect(message).to_contain_text(re.compile(r"refused|invalid|wrong|not accepted|401", re.I))

        page.get_by_test_id("key-input").fill(key)
        with page.expect_request(lambda r: urlsplit(r.url).path == "/v1/models") as listing:
            page.get_by_test_id("key-save").click()
        assert listing.value.headers.get("authorization") == f"Bearer {key}"
        listed = listing.value.response()
        assert listed is not None and listed.ok
        expect(dialog).to_be_hidden()
        alpha = page.get_by_test_id("model-select").locator('option[value="alpha"]')
        expect(alpha).to_have_count(1)
        assert page.evaluate("localStorage.getItem('llmrelay.key')") == key

        # Kept: a reload asks for no key and loads the models at once.
        page.reload()
        expect(alpha).to_have_count(1)
        expect(dialog).to_be_hidden()
        # The header's key button opens the dialog on the key in use.
        page.get_by_test_id("key-button").click()
        expect(dialog).to_be_visible()
        expect(page.get_by_test_id("key-input")).to_have_value(key)
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

        # A virtual key sees its own usage only: none yet, and the page says so.
        show(page, "usage")
        expect(page.get_by_test_id("usage-empty")).to_be_visible()
        expect(page.get_by_test_id("usage-chart-requests")).to_be_hidden()


# --- 9. phone size and theme -------------------------------------------------------------------


def tab_to(page: Page, target: Locator, key: str = "Tab", limit: int = 80) -> None:
    """Press Tab (or ``key``) until ``target`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press(key)
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {target}")


def test_the_page_works_from_the_keyboard(watched: Watched, scripted: ScriptedUpstream) -> None:
    """The tabs, a chat turn and the inspector with keys only: Tab reaches each control,
    Enter follows a tab or sends, and Escape closes the inspector and gives the focus back."""
    page = watched.page
    tab_to(page, page.get_by_test_id("nav-usage"))
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("view-usage")).to_be_visible()
    tab_to(page, page.get_by_test_id("nav-chat"), key="Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("view-chat")).to_be_visible()

    pick_model(page.get_by_test_id("model-select"), "alpha")
    scripted.script("alpha", [ANSWERS["alpha"]])
    tab_to(page, page.get_by_test_id("chat-input"))
    page.keyboard.type("Hello from the keyboard")
    page.keyboard.press("Enter")
    answer = last_answer(page)
    expect(answer).to_have_attribute("data-streaming", "false")
    expect(answer.get_by_test_id("message-content")).to_have_text(ANSWERS["alpha"])

    inspect = answer.get_by_test_id("inspect-button")
    tab_to(page, inspect)
    page.keyboard.press("Enter")
    inspector = page.get_by_test_id("inspector")
    expect(inspector).to_be_visible()
    expect(page.get_by_test_id("inspector-tokens")).not_to_be_empty()
    assert inspector.evaluate("drawer => drawer.contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(inspector).to_be_hidden()
    expect(inspect).to_be_focused()


def test_phone_size_has_no_sideways_scroll_and_the_theme_toggles(
    browser: Browser, relay: Running
) -> None:
    with watched_page(browser, relay.url, viewport=MOBILE) as seen:
        page = seen.page
        page.goto(relay.url + "/")
        for view in VIEWS:
            show(page, view)
            no_sideways_scroll(page)

        def background() -> str:
            return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))

        first = background()
        page.get_by_test_id("theme-toggle").click()
        page.wait_for_timeout(400)  # any transition
        second = background()
        assert second != first
        page.get_by_test_id("theme-toggle").click()
        page.wait_for_timeout(400)
        assert background() == first
        no_sideways_scroll(page)
