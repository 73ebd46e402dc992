"""``llmrelay jobs``: submit, look at, wait for, cancel and list jobs of a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..client import Job, JobError, JobsClient

BAR = 30  # characters


def register(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="submit and follow async jobs on a running gateway")
    actions = jobs.add_subparsers(required=True, metavar="ACTION")

    submit = actions.add_parser("submit", help="submit a prompt as a job; print the job")
    submit.add_argument("prompt")
    submit.add_argument("--model", default=None)
    submit.add_argument("--schema", type=Path, help="a JSON Schema file the answer must fit")
    submit.add_argument("--max-tokens", type=int, default=None)
    submit.add_argument("--wait", action="store_true", help="then wait, with a progress bar")
    submit.set_defaults(act=_submit)

    for name, act, text in (
        ("get", _get, "print a job"),
        ("wait", _wait, "wait for a job with a progress bar; print it when it ends"),
        ("cancel", _cancel, "cancel a job"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("job_id")
        action.set_defaults(act=act)

    listing = actions.add_parser("list", help="list recent jobs, newest first")
    listing.add_argument("--status", default=None)
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(act=_list)

    for action in actions.choices.values():
        action.add_argument(
            "--url", default=os.environ.get("LLMRELAY_URL", "http://127.0.0.1:8000")
        )
        action.add_argument("--api-key", default=os.environ.get("LLMRELAY_API_KEY"))
    jobs.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with JobsClient(args.url, args.api_key) as client:
            return int(await args.act(client, args))

    try:
        return asyncio.run(run())
    except JobError as exc:
        print(f"llmrelay: {exc}", file=sys.stderr)
        return 1
    except aiohttp.ClientError as exc:
        print(f"llmrelay: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1


async def _submit(client: JobsClient, args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"messages": [{"role": "user", "content": args.prompt}]}
    if args.model:
        request["model"] = args.model
    if args.max_tokens:
        request["max_tokens"] = args.max_tokens
    if args.schema:
        schema = orjson.loads(args.schema.read_bytes())
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": args.schema.stem, "schema": schema},
        }
    job = await client.submit(request)
    if not args.wait:
        return _show(job)
    return _show(await client.wait(job["id"], _progress))


async def _get(client: JobsClient, args: argparse.Namespace) -> int:
    return _show(await client.get(args.job_id))


async def _wait(client: JobsClient, args: argparse.Namespace) -> int:
    return _show(await client.wait(args.job_id, _progress))


async def _cancel(client: JobsClient, args: argparse.Namespace) -> int:
    return _show(await client.cancel(args.job_id))


async def _list(client: JobsClient, args: argparse.Namespace) -> int:
    for job in await client.recent(args.status, args.limit):
        print(f"{job['id']}  {job['status']:<11} {job['progress']:>3}%  {job['model']}")
    return 0


def _progress(job: Job) -> None:
    done = BAR * job["progress"] // 100
    bar = "#" * done + "." * (BAR - done)
    end = "\n" if job["status"] in ("completed", "failed", "cancelled") else ""
    print(f"\r[{bar}] {job['progress']:>3}%  {job['message']:<45}", end=end, file=sys.stderr)


def _show(job: Job) -> int:
    print(orjson.dumps(job, option=orjson.OPT_INDENT_2).decode())
    return 0 if job["status"] != "failed" else 1
