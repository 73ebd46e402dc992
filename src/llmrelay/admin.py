"""``llmrelay keys``, ``usage`` and ``inspect``: manage virtual keys, read usage and cost, and
look at one request, on a running gateway.

They speak the gateway's HTTP API, with the master key (``--master-key`` or
$LLMRELAY_MASTER_KEY) or, for usage and inspect, any key ($LLMRELAY_API_KEY),
which then sees its own requests only.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

URL_ENV = "LLMRELAY_URL"
MASTER_KEY_ENV = "LLMRELAY_MASTER_KEY"
API_KEY_ENV = "LLMRELAY_API_KEY"
TIMEOUT = 30  # seconds


class Refused(Exception):
    """The gateway answered with an error; the message is its own."""


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke virtual keys")
    actions = keys.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key; its secret is shown only now")
    create.add_argument("name")
    create.add_argument("--models", help="comma-separated model names it may use")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--budget-usd", type=float)
    create.add_argument("--budget-period", choices=("day", "month"), default="month")
    create.add_argument("--system-prompt", help="put before every chat request")
    create.set_defaults(act=_create)
    listing = actions.add_parser("list", help="list keys, revoked ones included")
    listing.set_defaults(act=_list)
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(act=_revoke)
    for action in actions.choices.values():
        _connection_options(action, MASTER_KEY_ENV, "--master-key")

    usage = commands.add_parser("usage", help="requests, tokens and cost per key, model and day")
    usage.add_argument("--start", help="the first day, YYYY-MM-DD (default: 30 days ago)")
    usage.add_argument("--end", help="the last day, YYYY-MM-DD (default: today)")
    usage.add_argument("--json", action="store_true", help="print the JSON as it came")
    _connection_options(usage, MASTER_KEY_ENV, "--api-key")
    usage.set_defaults(act=_usage)

    inspect = commands.add_parser("inspect", help="show what one request took, hidden parts too")
    inspect.add_argument("request_id", help="the request's x-request-id")
    _connection_options(inspect, MASTER_KEY_ENV, "--api-key")
    inspect.set_defaults(act=_inspect)

    for parser in (keys, usage, inspect):
        parser.set_defaults(run=_run)


def _connection_options(parser: argparse.ArgumentParser, env: str, flag: str) -> None:
    parser.add_argument("--url", default=os.environ.get(URL_ENV, "http://127.0.0.1:8000"))
    parser.add_argument(
        flag,
        dest="key",
        default=os.environ.get(env) or os.environ.get(API_KEY_ENV),
        help=f"default ${env}, else ${API_KEY_ENV}",
    )


def _run(args: argparse.Namespace) -> int:
    try:
        args.act(args)
    except Refused as exc:
        print(f"llmrelay: {exc}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"llmrelay: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 1
    return 0


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        args.url.rstrip("/") + path,
        data=None if body is None else orjson.dumps(body),
        method=method,
        headers={"content-type": "application/json"},
    )
    if args.key:
        request.add_header("authorization", f"Bearer {args.key}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = orjson.loads(exc.read() or b"{}").get("error") or {}
        raise Refused(f"{exc.code}: {detail.get('message') or exc.reason}") from None


def _print(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _create(args: argparse.Namespace) -> None:
    fields: dict[str, Any] = {"name": args.name, "budget_period": args.budget_period}
    if args.models:
        fields["models"] = [name.strip() for name in args.models.split(",") if name.strip()]
    for name in ("rpm", "tpm", "budget_usd", "system_prompt"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    _print(_call(args, "POST", "/admin/keys", fields))


def _list(args: argparse.Namespace) -> None:
    keys = _call(args, "GET", "/admin/keys")["data"]
    rows = [
        (
            key["id"],
            key["name"],
            key["hint"],
            "revoked" if key["revoked_at"] else "live",
            ",".join(key["models"] or ["*"]),
            _limit(key),
        )
        for key in keys
    ]
    _table(("ID", "NAME", "KEY", "STATE", "MODELS", "LIMITS"), rows)


def _limit(key: dict[str, Any]) -> str:
    parts = []
    if key["rpm"]:
        parts.append(f"{key['rpm']} rpm")
    if key["tpm"]:
        parts.append(f"{key['tpm']} tpm")
    if key["budget_usd"] is not None:
        parts.append(f"${key['budget_usd']:g}/{key['budget_period']}")
    return ", ".join(parts) or "-"


def _revoke(args: argparse.Namespace) -> None:
    key = _call(args, "DELETE", f"/admin/keys/{args.key_id}")
    print(f"revoked {key['id']} ({key['name']})")


def _usage(args: argparse.Namespace) -> None:
    query = {k: v for k, v in (("start", args.start), ("end", args.end)) if v}
    report = _call(args, "GET", "/v1/usage" + (f"?{urlencode(query)}" if query else ""))
    if args.json:
        _print(report)
        return
    rows = [
        (
            row["day"],
            row["key_id"] or "-",
            row["model"] or "-",
            str(row["requests"]),
            str(row["prompt_tokens"]),
            str(row["completion_tokens"]),
            f"{row['cost_usd']:.6f}",
            str(row["cache_hits"]),
        )
        for row in report["data"]
    ]
    totals = report["totals"]
    rows.append(
        (
            "total",
            "",
            "",
            str(totals["requests"]),
            str(totals["prompt_tokens"]),
            str(totals["completion_tokens"]),
            f"{totals['cost_usd']:.6f}",
            "",
        )
    )
    _table(("DAY", "KEY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "COST_USD", "CACHED"), rows)
    pricing = report["pricing"]
    print(f"prices as of {pricing['as_of']} ({pricing['source']}), with the config's over them")


def _inspect(args: argparse.Namespace) -> None:
    _print(_call(args, "GET", f"/v1/requests/{args.request_id}"))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
