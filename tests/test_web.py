"""The page's files: redirect, content types, no listing or traversal, offline, quiet 401."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from apiclient import command

from sense_plugin.api.web import WEB_DIR
from sense_plugin.passwords import hash_password

JS = "text/javascript; charset=utf-8"
PAGE_FILES = {"index.html": "text/html; charset=utf-8", "app.css": "text/css; charset=utf-8",
              "api.js": JS, "timeutil.js": JS, "timeline.js": JS, "preview.js": JS,
              "history.js": JS, "masks.js": JS, "form.js": JS, "player.js": JS,
              "listpatch.js": JS, "exports.js": JS, "cameras.js": JS, "range.js": JS, "app.js": JS}


@pytest.mark.parametrize("path", ["/", "/web"])
async def test_root_redirects_to_the_page(client: Any, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/web/"


@pytest.mark.parametrize("name", ["", *PAGE_FILES])
async def test_files_have_their_content_type_and_a_strict_policy(client: Any, name: str) -> None:
    response = await client.get(f"/web/{name}")
    assert response.status == 200
    assert response.headers["Content-Type"] == PAGE_FILES[name or "index.html"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert await response.read() == (WEB_DIR / (name or "index.html")).read_bytes()


@pytest.mark.parametrize("path", ["/web/missing.js", "/web/../api/web.py", "/web/%2e%2e/setup.cfg",
                                  "/web//", "/web/app.js/", "/web/__init__.py"])
async def test_no_listing_no_traversal(client: Any, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in WEB_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
        # Only the XML API: no JSON responses asked for or read (JSON.parse is sessionStorage's).
        assert not re.search(r"application/json|\.json\(", text), path.name
    # No inline script: the Content-Security-Policy forbids it.
    assert not re.search(r"<script(?![^>]*\bsrc=)", (WEB_DIR / "index.html").read_text())


async def test_401_to_the_page_has_no_basic_challenge(
        make_client: Callable[..., Any], make_config: Callable[..., Any]) -> None:
    users = [{"name": "op", "password_hash": hash_password("pw"), "permissions": ["view"]}]
    client = await make_client(make_config(auth={"enabled": True, "users": users}))
    plain = await client.get("/command", params={"command": "getDeviceList"})
    assert plain.status == 401 and plain.headers["WWW-Authenticate"].startswith("Basic")
    page = await client.get("/command", params={"command": "getDeviceList"},
                            headers={"X-Requested-With": "XMLHttpRequest"})
    assert page.status == 401 and "WWW-Authenticate" not in page.headers
    assert b'errorcode="-1001"' in await page.read()


async def test_server_options_publish_the_span_limit_the_timeline_draws(
        make_client: Callable[..., Any], make_config: Callable[..., Any]) -> None:
    client = await make_client(make_config(export={"max_span_s": 5400}))
    options = await command(client, "getServerOptions")
    assert options.findtext("serveroptions/maxspan") == "5400"


async def test_the_preview_may_show_fetched_snapshots(client: Any) -> None:
    """The preview fetches getSnapshot (to read X-Frame-Time and -9) and shows a blob: URL."""
    response = await client.get("/web/")
    policy = response.headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob:" in policy and "script-src" not in policy


async def test_a_reinstall_under_a_running_server_changes_nothing_it_serves(
        make_client: Callable[..., Any], make_config: Callable[..., Any], tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The page's files are gone (a reinstall moved them) while the server runs: it still
    answers what it started with, and the access log says what the client got."""
    import logging
    import shutil

    from sense_plugin.api import web as web_module

    copy = tmp_path / "installed-web"
    shutil.copytree(WEB_DIR, copy)
    monkeypatch.setattr(web_module, "WEB_DIR", copy)
    client = await make_client(make_config())
    shutil.rmtree(copy)
    with caplog.at_level(logging.INFO, logger="sense_plugin.access"):
        for name in ("", "app.js"):
            response = await client.get(f"/web/{name}")
            assert response.status == 200
            assert await response.read() == (WEB_DIR / (name or "index.html")).read_bytes()
    lines = [r.getMessage() for r in caplog.records if r.name == "sense_plugin.access"]
    assert len(lines) == 2 and all('" 200 ' in line for line in lines), lines


def test_a_missing_page_stops_the_start(tmp_path: Any) -> None:
    from sense_plugin.api.web import read_page_files

    (tmp_path / "app.js").write_text("")
    with pytest.raises(RuntimeError, match="index.html is missing"):
        read_page_files(tmp_path)
