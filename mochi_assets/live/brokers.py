"""Brokers: where promoted traders are meant to trade. Records in the live-trades bucket, no secrets.

A broker record holds its name, kind, account id, account currency, an optional note and at most
the NAME of an environment variable that will hold the credentials on the machine running the
execution bot (`credentials_env`). Anything that looks like a secret (a field named like one, a
value shaped like a key or token) is refused before anything is written.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from mochi_assets.live.records import RecordStore
from mochi_resources.errors import MochiError
from mochi_resources.lake import Lake

KIND = "brokers"
BROKER_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]{0,39}$")
_KIND = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")

# Field names that would hold a secret, and value shapes of common secrets.
_SECRET_FIELD = re.compile(r"(?i)(pass(word|phrase)?|secret|token|api[_-]?key|private[_-]?key|credential(?!s_env$))")
_SECRET_VALUE = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\b(sk|pk|rk)_(live|test)_[0-9A-Za-z]{8,}"),  # Stripe/Alpaca-style keys
    re.compile(r"\bgh[pousr]_[0-9A-Za-z]{20,}"),  # GitHub tokens
    re.compile(r"\beyJ[0-9A-Za-z_\-]{10,}\.[0-9A-Za-z_\-]{10,}"),  # a JWT
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*\S+"),
)


class BrokerError(MochiError):
    """A broker command cannot be carried out; the message names the field or the broker."""


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def looks_like_secret(value: str) -> bool:
    """True for a value shaped like a key, token or password (a known format, `password=...`, or a
    long random-looking word other than a link: 24+ characters, letters and digits, >= 3.5 bits/char)."""
    if any(p.search(value) for p in _SECRET_VALUE):
        return True
    for word in value.split():
        if word.startswith(("http://", "https://")):  # a link is not a secret (a token in it is caught above)
            continue
        if (len(word) >= 24 and re.search(r"[A-Za-z]", word) and re.search(r"\d", word)
                and _entropy(word) >= 3.5):
            return True
    return False


def refuse_secrets(fields: dict[str, Any], what: str) -> None:
    """One clear error when a field is named like a secret or a value looks like one."""
    for name, value in fields.items():
        if _SECRET_FIELD.search(name):
            raise BrokerError(f"{what}: field {name!r} would hold a secret; a record keeps at most the "
                              "NAME of an environment variable holding credentials (--credentials-env)")
        if isinstance(value, dict):
            refuse_secrets(value, what)
        elif isinstance(value, str) and looks_like_secret(value):
            raise BrokerError(f"{what}: {name} looks like a secret (a key, token or password); secrets "
                              "never go into Mochi records: put it in an environment variable and give "
                              "its NAME with --credentials-env")


def check_broker_name(name: str) -> str:
    if not isinstance(name, str) or not BROKER_NAME.match(name):
        raise BrokerError(f"broker name {name!r} is not valid (lower-case letters, digits and '-', at most 40)")
    return name


def broker_store(lake: Lake) -> RecordStore:
    return RecordStore(lake, KIND)


def validate_broker(name: str, kind: str, account: str, currency: str, credentials_env: str | None,
                    note: str | None) -> dict:
    """The state of a broker record; BrokerError naming the first bad field."""
    check_broker_name(name)
    if not _KIND.match(kind or ""):
        raise BrokerError(f"--kind: {kind!r} is not valid (lower-case letters, digits, '_' and '-', e.g. "
                          "interactive-brokers, oanda, alpaca, paper)")
    if not _ACCOUNT.match(account or ""):
        raise BrokerError(f"--account: {account!r} is not a valid account id (letters, digits, '.', '_', '-')")
    if not _CURRENCY.match(currency or ""):
        raise BrokerError(f"--currency: {currency!r} is not an ISO 4217 code (three capital letters, e.g. USD)")
    state: dict[str, Any] = {"kind": kind, "account": account, "currency": currency,
                             "credentials_env": credentials_env, "note": note, "status": "active"}
    refuse_secrets({k: v for k, v in state.items() if v is not None}, f"broker {name}")
    if credentials_env is not None and not _ENV_NAME.match(credentials_env):
        raise BrokerError(f"--credentials-env: {credentials_env!r} is not an environment variable name "
                          "(capital letters, digits and '_'); give the variable's NAME, never its value")
    if note is not None and len(note) > 200:
        raise BrokerError("--note: at most 200 characters")
    return state


def add_broker(lake: Lake, name: str, kind: str, account: str, currency: str,
               credentials_env: str | None = None, note: str | None = None) -> dict:
    state = validate_broker(name, kind, account, currency, credentials_env, note)

    def change(current: dict | None) -> dict:
        if current is not None and current["status"] != "removed":
            raise BrokerError(f"broker {name} already exists (remove it first, or pick another name)")
        return state

    return broker_store(lake).append(name, change, "add")


def get_broker(lake: Lake, name: str) -> dict:
    """The broker's current record; BrokerError when unknown or removed."""
    check_broker_name(name)
    doc = broker_store(lake).latest(name)
    if doc is None or doc["status"] == "removed":
        known = ", ".join(b["name"] for b in list_brokers(lake)) or "none"
        raise BrokerError(f"unknown broker {name!r} (known: {known}); add it with `mochi brokers add`")
    return doc


def list_brokers(lake: Lake) -> list[dict]:
    return [b for b in broker_store(lake).all_latest() if b["status"] != "removed"]


def remove_broker(lake: Lake, name: str, in_use: list[str]) -> dict:
    """Append a removal; refused while live configurations (`in_use`, their ids) use the broker."""
    get_broker(lake, name)
    if in_use:
        raise BrokerError(f"broker {name} is used by live configuration(s) {', '.join(in_use)}; "
                          "remove them first (`mochi live remove ID`)")

    def change(current: dict | None) -> dict:
        if current is None or current["status"] == "removed":
            raise BrokerError(f"broker {name} was removed meanwhile")
        return {**{k: current[k] for k in ("kind", "account", "currency", "credentials_env", "note")},
                "status": "removed"}

    return broker_store(lake).append(name, change, "remove")
