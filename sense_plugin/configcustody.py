"""Reading ``[[webhooks]]`` and ``[export] callback_hosts`` (``docs/custody.rst``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sense_plugin.configmodel import WEBHOOK_EVENTS, WebhookConfig
from sense_plugin.configread import TableReader

WEBHOOK_KEYS = {"url", "secret", "events"}


def read_webhooks(reader: TableReader, items: Any) -> tuple[WebhookConfig, ...]:
    """Every ``[[webhooks]]`` table; an unknown event or a URL that is not http(s) stops
    the server naming it."""
    if not isinstance(items, list):
        raise reader.fail("[[webhooks]]", "expected an array of tables")
    return tuple(_webhook(reader, item, f"[[webhooks]] #{i + 1}") for i, item in enumerate(items))


def _webhook(reader: TableReader, table: Any, where: str) -> WebhookConfig:
    if not isinstance(table, Mapping):
        raise reader.fail(where, "must be a table")
    reader.check_keys(table, where, WEBHOOK_KEYS)
    url = table.get("url")
    if not isinstance(url, str) or not check_url(url):
        raise reader.fail(f"{where} url", f"{url!r} is not an http:// or https:// URL")
    secret = table.get("secret")
    if not isinstance(secret, str) or not secret:
        raise reader.fail(f"{where} secret", "a non-empty string is required (it signs "
                                             "every callback)")
    events = table.get("events", sorted(WEBHOOK_EVENTS))
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise reader.fail(f"{where} events", "expected a list of event names")
    for event in events:
        if event not in WEBHOOK_EVENTS:
            raise reader.fail(f"{where} events", f"unknown event '{event[:40]}' (known: "
                                                 f"{', '.join(sorted(WEBHOOK_EVENTS))})")
    return WebhookConfig(url, secret, frozenset(events))


def read_callback_hosts(reader: TableReader, table: Mapping[str, Any]) -> tuple[str, ...]:
    """``[export] callback_hosts``: host names (lower case) an export's callback may name."""
    hosts = table.get("callback_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise reader.fail("[export] callback_hosts", "expected a list of host names")
    return tuple(h.lower() for h in hosts)


def check_url(url: str) -> bool:
    """An absolute http(s) URL with a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
