"""The ``llmrelay`` command: serve the gateway, list its models, chat with it from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Sequence

import aiohttp
import orjson
import uvloop
from dotenv import load_dotenv

from . import __version__, admin
from .config import Config, ConfigError, load_config
from .jobs import commands as jobs_commands
from .streaming import SSEDecoder

log = logging.getLogger("llmrelay")

CONFIG_ENV = "LLMRELAY_CONFIG"
# Allocations between collections of the youngest generation while serving (see _tune_collector).
GC_THRESHOLD = 20_000


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv(os.environ.get("LLMRELAY_DOTENV", ".env"))
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"llmrelay: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrelay", description=__doc__)
    parser.add_argument("--version", action="version", version=f"llmrelay {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    _config_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback host with no api_keys configured",
    )
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker", help="run job workers alone, beside gateways that share the job store"
    )
    _config_option(worker)
    worker.add_argument(
        "--workers", type=int, default=None, help="jobs run at once (default: jobs.workers)"
    )
    worker.set_defaults(run=_worker)

    models = commands.add_parser("models", help="list the configured models")
    _config_option(models)
    models.set_defaults(run=_models)

    chat = commands.add_parser("chat", help="ask a running gateway, streaming the answer")
    chat.add_argument("prompt")
    chat.add_argument("--model", default=None)
    chat.add_argument("--system", default=None)
    chat.add_argument("--no-stream", dest="stream", action="store_false")
    chat.add_argument("--url", default=os.environ.get("LLMRELAY_URL", "http://127.0.0.1:8000"))
    chat.add_argument("--api-key", default=os.environ.get("LLMRELAY_API_KEY"))
    chat.set_defaults(run=_chat)

    jobs_commands.register(commands)
    admin.register(commands)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default=os.environ.get(CONFIG_ENV), help=f"YAML config (or ${CONFIG_ENV})"
    )


def _load(path: str | None) -> Config:
    return load_config(path, os.environ)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .logs import configure
    from .protocol import HTTPProtocol

    config = _load(args.config)  # fail here, once, before any worker starts
    keyed = config.api_keys or config.master_key
    if not keyed and not args.insecure and not _is_loopback(args.host):
        print(
            f"llmrelay: refusing to serve on {args.host} with no keys configured; "
            "set master_key or api_keys in the config, or pass --insecure",
            file=sys.stderr,
        )
        return 2
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    configure(config.log_level, config.log_format)
    uvicorn.run(
        "llmrelay.cli:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=HTTPProtocol,
        log_config=None,
        access_log=False,
        # The gateway does not use the client's address, so X-Forwarded-For need not be read.
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .logs import configure

    config = _load(args.config)
    count = config.jobs.workers if args.workers is None else args.workers
    if count < 1:
        print(
            "llmrelay: no workers to run: jobs.workers is 0 in this config; pass --workers N",
            file=sys.stderr,
        )
        return 2
    configure(config.log_level, config.log_format)
    uvloop.run(_work(config, count))
    return 0


async def _work(config: Config, count: int) -> None:
    """Run ``count`` workers until SIGINT or SIGTERM; then give back the jobs they hold."""
    from .app import running

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(config, job_workers=count):
        log.info("running %d job workers", count)
        await stop.wait()


def app_from_env() -> object:
    """The app for each uvicorn worker, built from the config that ``serve`` validated."""
    from .app import create_app
    from .logs import configure

    config = _load(os.environ.get(CONFIG_ENV))
    configure(config.log_level, config.log_format)
    app = create_app(config)
    _tune_collector()
    return app


def _tune_collector() -> None:
    """Set the garbage collector for serving, where it cost about a tenth of the throughput.

    Every request makes thousands of short-lived objects, so at the default
    threshold of 700 the youngest generation is collected several times per
    request; reference counting frees nearly all of them anyway. The objects
    made by now (modules, schemas, the config) live as long as the process, so
    they are frozen out of the full collections that would walk them all again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _models(args: argparse.Namespace) -> int:
    config = _load(args.config)
    for spec in config.specs:
        marker = "*" if spec.name == config.default_model else " "
        print(f"{marker} {spec.name:<28} {spec.provider:<10} {spec.upstream_model}")
    return 0


def _chat(args: argparse.Namespace) -> int:
    return asyncio.run(_ask(args))


async def _ask(args: argparse.Namespace) -> int:
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    body: dict[str, object] = {"messages": messages, "stream": args.stream}
    if args.model:
        body["model"] = args.model
    headers = {"content-type": "application/json"}
    if args.api_key:
        headers["authorization"] = f"Bearer {args.api_key}"
    url = args.url.rstrip("/") + "/v1/chat/completions"
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
                if response.status >= 400:
                    return _fail(await response.read())
                if not args.stream:
                    reply = orjson.loads(await response.read())
                    print(reply["choices"][0]["message"].get("content") or "")
                    return 0
                return await _print_stream(response)
        except aiohttp.ClientError as exc:
            print(f"llmrelay: cannot reach {args.url}: {exc}", file=sys.stderr)
            return 1


async def _print_stream(response: aiohttp.ClientResponse) -> int:
    decoder = SSEDecoder()
    async for data in response.content.iter_any():
        for event in decoder.feed(data):
            if event == b"[DONE]":
                print()
                return 0
            chunk = orjson.loads(event)
            if "error" in chunk:
                print()
                return _fail(event)
            for choice in chunk.get("choices") or ():
                print(choice["delta"].get("content") or "", end="", flush=True)
    print()
    return 0


def _fail(body: bytes) -> int:
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = body.decode("utf-8", "replace")
    print(f"llmrelay: {message}", file=sys.stderr)
    return 1


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
