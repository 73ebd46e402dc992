"""How the gateway serves the playground's files: from the package, under a policy that
allows only its own origin, revalidated by ETag, and never a file outside the app."""

from __future__ import annotations

import re
from importlib import resources

import httpx
import pytest

UI = resources.files("llmrelay") / "ui"


def test_the_playground_is_served_at_the_root_and_under_ui(http: httpx.Client) -> None:
    root, ui = http.get("/"), http.get("/ui/")
    assert root.status_code == ui.status_code == 200
    assert root.content == ui.content == (UI / "index.html").read_bytes()
    assert root.headers["content-type"] == "text/html; charset=utf-8"
    policy = root.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert root.headers["x-content-type-options"] == "nosniff"


def test_every_asset_the_page_names_is_served_from_the_package(http: httpx.Client) -> None:
    page = http.get("/").text
    named = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page)
    assert any(path.endswith(".js") for path in named)
    assert any(path.endswith(".css") for path in named)
    for path in named:
        served = http.get(path)
        assert served.status_code == 200, path
        assert served.content == (UI / path.removeprefix("/ui/")).read_bytes()
        if path.endswith(".js"):
            assert served.headers["content-type"] == "text/javascript; charset=utf-8"
    # Nothing in the page, its scripts or its styles points at another origin.
    for path in ["/", *named]:
        body = http.get(path).text
        assert not re.search(r"""(?:src|href|url\()\s*=?\s*["']?(?:https?:)?//""", body), path


def test_an_unchanged_asset_is_answered_not_modified(http: httpx.Client) -> None:
    first = http.get("/ui/")
    again = http.get("/ui/", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert http.head("/ui/").headers["etag"] == first.headers["etag"]


@pytest.mark.parametrize("path", ["/ui/nothing.js", "/ui/../app.py", "/ui/%2e%2e/app.py"])
def test_a_path_outside_the_app_is_not_found(http: httpx.Client, path: str) -> None:
    refused = http.get(path)
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "invalid_request_error"
