"""HTTP client of SEC EDGAR: ticker to CIK, then a company's filings from its submissions document.

EDGAR serves the two documents Mochi needs from two hosts:

- `https://www.sec.gov/files/company_tickers.json`: every listed company, as an object keyed
  "0", "1", ... of `{"cik_str": 320193, "ticker": "AAPL", "title": "Apple Inc."}`;
- `https://data.sec.gov/submissions/CIK##########.json` (the CIK zero-padded to ten digits): the
  company's name, tickers and `filings.recent`, column arrays (`accessionNumber`, `filingDate`,
  `reportDate`, `form`, `primaryDocument`, ...) of its latest filings, newest first, and
  `filings.files`, older filings in further documents of the same column layout
  (`https://data.sec.gov/submissions/{name}`).

A filing's primary document is
`https://www.sec.gov/Archives/edgar/data/{cik}/{accession number without dashes}/{primaryDocument}`.

| variable                 | default                                    | meaning |
|--------------------------|--------------------------------------------|---------|
| MOCHI_SEC_USER_AGENT     | (required)                                 | the descriptive User-Agent EDGAR requires: a name and a contact e-mail, e.g. `Mochi research ops@example.com` |
| MOCHI_SEC_BASE_URL       | https://www.sec.gov                        | the host of company_tickers.json and of filing documents |
| MOCHI_SEC_DATA_BASE_URL  | https://data.sec.gov; MOCHI_SEC_BASE_URL when only that is set | the host of the submissions documents |
| MOCHI_SEC_RPS            | 10                                         | requests per second (EDGAR's fair-access limit is 10) |

With only `MOCHI_SEC_BASE_URL` set (a proxy or a stand-in serving both paths), both documents come
from it. Without a User-Agent nothing is requested: EDGAR refuses anonymous clients, and Mochi
says so before calling. 429 and 5xx answers and dropped connections are retried with exponential
backoff (a `Retry-After` is honoured), a bounded number of times; 403 and other 4xx fail at once.
Sleeping and the clock are injectable so tests run without real waits.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mochi_resources.errors import ProviderError, host_does_not_resolve

DEFAULT_BASE_URL = "https://www.sec.gov"
DEFAULT_DATA_BASE_URL = "https://data.sec.gov"
DEFAULT_RPS = 10.0
MAX_RETRIES = 5
MAX_OLDER_FILES = 20  # older submissions documents fetched at most (each holds ~1,000+ filings)
_TIMEOUT_S = 30.0
_MAX_RETRY_AFTER_S = 120.0

FILING_COLUMNS = ("form", "filing_date", "report_date", "accession_number", "primary_document",
                  "primary_document_url", "description")


class EdgarError(ProviderError):
    """EDGAR cannot answer what was asked; the message names the URL, never a secret."""


class EdgarConfigError(EdgarError):
    """EDGAR is not configured (no User-Agent, a malformed URL): no retry can help."""


def _env_rps() -> float:
    raw = os.environ.get("MOCHI_SEC_RPS")
    if raw is None or raw.strip() == "":
        return DEFAULT_RPS
    try:
        value = float(raw)
    except ValueError:
        raise EdgarConfigError(f"MOCHI_SEC_RPS: {raw!r} is not a number") from None
    if not 0 < value <= DEFAULT_RPS:
        raise EdgarConfigError(f"MOCHI_SEC_RPS: {raw!r} must be above 0 and at most {DEFAULT_RPS:g} (EDGAR's limit)")
    return value


@dataclass
class EdgarSettings:
    user_agent: str | None
    base_url: str = DEFAULT_BASE_URL
    data_base_url: str = DEFAULT_DATA_BASE_URL
    rps: float = DEFAULT_RPS

    @classmethod
    def resolve(cls, user_agent: str | None = None, base_url: str | None = None,
                data_base_url: str | None = None) -> EdgarSettings:
        """Explicit values first, then the environment (see the module docstring)."""
        ua = user_agent or os.environ.get("MOCHI_SEC_USER_AGENT") or None
        base = base_url or os.environ.get("MOCHI_SEC_BASE_URL") or None
        data = data_base_url or os.environ.get("MOCHI_SEC_DATA_BASE_URL") or None
        if data is None:
            data = base or DEFAULT_DATA_BASE_URL
        base = base or DEFAULT_BASE_URL
        for name, url in (("MOCHI_SEC_BASE_URL", base), ("MOCHI_SEC_DATA_BASE_URL", data)):
            if not re.match(r"^https?://[^\s/]+", url):
                raise EdgarConfigError(f"{name}: {url!r} is not an http(s):// URL")
        return cls(user_agent=ua, base_url=base.rstrip("/"), data_base_url=data.rstrip("/"), rps=_env_rps())

    def require_user_agent(self) -> str:
        ua = (self.user_agent or "").strip()
        if not ua:
            raise EdgarConfigError(
                "MOCHI_SEC_USER_AGENT is not set: SEC EDGAR requires a descriptive User-Agent naming you "
                "and a contact e-mail (e.g. MOCHI_SEC_USER_AGENT='Jane Doe research jane@example.com'); "
                "nothing was requested")
        if "@" not in ua or len(ua) < 8:
            raise EdgarConfigError(
                f"MOCHI_SEC_USER_AGENT: {ua!r} is not descriptive: EDGAR asks for a name and a contact e-mail "
                "(e.g. 'Jane Doe research jane@example.com')")
        return ua


@dataclass
class EdgarClient:
    settings: EdgarSettings
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    max_retries: int = MAX_RETRIES
    requests_made: int = 0
    _last: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.user_agent = self.settings.require_user_agent()

    def _pace(self) -> None:
        """At most `rps` requests per second: consecutive requests are 1/rps seconds apart."""
        with self._lock:
            gap = 1.0 / self.settings.rps
            now = self.clock()
            if self._last is not None and now - self._last < gap:
                self.sleep(gap - (now - self._last))
                now = self.clock()
            self._last = now

    def get_json(self, url: str) -> dict | list | None:
        """The JSON document at url; None on 404. Retries 429/5xx/connection failures."""
        attempt = 0
        while True:
            self._pace()
            self.requests_made += 1
            req = urllib.request.Request(url, headers={
                "User-Agent": self.user_agent, "Accept": "application/json", "Accept-Encoding": "identity"})
            try:
                with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
                    body = resp.read()
                try:
                    return json.loads(body)
                except json.JSONDecodeError as exc:
                    raise EdgarError(f"EDGAR {url}: answer is not JSON ({exc.msg})") from None
            except urllib.error.HTTPError as exc:
                status = exc.code
                if status == 404:
                    return None
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                if status == 403:
                    raise EdgarError(
                        f"EDGAR {url}: 403 Forbidden: EDGAR refused the request (an undeclared or "
                        "non-descriptive User-Agent, or more than 10 requests per second from this address); "
                        "check MOCHI_SEC_USER_AGENT") from None
                if status != 429 and status < 500:
                    raise EdgarError(f"EDGAR {url}: HTTP {status} {exc.reason}") from None
                what = f"HTTP {status}"
            except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if host_does_not_resolve(reason):  # waiting does not change that
                    raise EdgarError(f"EDGAR {url}: cannot resolve the host ({reason}); check "
                                     "MOCHI_SEC_BASE_URL / MOCHI_SEC_DATA_BASE_URL and this machine's network and DNS") from None
                what = f"connection failed ({reason})"
                retry_after = None
            attempt += 1
            if attempt > self.max_retries:
                raise EdgarError(f"EDGAR {url}: {what}, still failing after {self.max_retries} retries") from None
            delay = retry_after if retry_after is not None else min(30.0, 0.5 * 2 ** (attempt - 1))
            self.sleep(delay * (1.0 if retry_after is not None else random.uniform(0.8, 1.2)))

    def cik_of(self, ticker: str) -> tuple[int, str] | None:
        """(CIK, company title) of a ticker from company_tickers.json; None when EDGAR lists no such ticker.

        EDGAR writes share classes with '-' (BRK-B); a ticker given with '.' (BRK.B) matches too.
        """
        data = self.get_json(f"{self.settings.base_url}/files/company_tickers.json")
        if not isinstance(data, dict):
            raise EdgarError(f"EDGAR {self.settings.base_url}/files/company_tickers.json: unexpected answer")
        wanted = {ticker.upper(), ticker.upper().replace(".", "-")}
        for entry in data.values():
            if isinstance(entry, dict) and str(entry.get("ticker", "")).upper() in wanted:
                return int(entry["cik_str"]), str(entry.get("title", ""))
        return None

    def filings(self, cik: int) -> tuple[dict, list[dict]]:
        """(company facts: name, tickers, sic description; every filing as a dict of FILING_COLUMNS)."""
        url = f"{self.settings.data_base_url}/submissions/CIK{cik:010d}.json"
        doc = self.get_json(url)
        if not isinstance(doc, dict) or "filings" not in doc:
            raise EdgarError(f"EDGAR {url}: no submissions document for CIK {cik}")
        rows = _rows(doc["filings"].get("recent", {}), cik, self.settings.base_url, url)
        for extra in doc["filings"].get("files", [])[:MAX_OLDER_FILES]:
            name = str(extra.get("name", ""))
            if not re.match(r"^[A-Za-z0-9_.\-]+\.json$", name):
                continue
            more_url = f"{self.settings.data_base_url}/submissions/{name}"
            more = self.get_json(more_url)
            if isinstance(more, dict):
                rows += _rows(more, cik, self.settings.base_url, more_url)
        company = {"cik": cik, "name": doc.get("name"), "tickers": doc.get("tickers", []),
                   "sic_description": doc.get("sicDescription")}
        return company, rows


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return max(0.0, min(seconds, _MAX_RETRY_AFTER_S))


def _rows(columns: dict, cik: int, base_url: str, url: str) -> list[dict]:
    """Column arrays of a submissions document -> one dict per filing."""
    try:
        accession = columns["accessionNumber"]
        forms = columns["form"]
        filed = columns["filingDate"]
    except (KeyError, TypeError):
        raise EdgarError(f"EDGAR {url}: the filings lack accessionNumber/form/filingDate columns") from None
    n = len(accession)
    report = columns.get("reportDate") or [""] * n
    primary = columns.get("primaryDocument") or [""] * n
    description = columns.get("primaryDocDescription") or [""] * n
    out = []
    for i in range(n):
        acc = str(accession[i])
        doc_name = str(primary[i] or "")
        link = (f"{base_url}/Archives/edgar/data/{cik}/{acc.replace('-', '')}/{urllib.parse.quote(doc_name)}"
                if doc_name else f"{base_url}/Archives/edgar/data/{cik}/{acc.replace('-', '')}/")
        out.append({
            "form": str(forms[i]),
            "filing_date": str(filed[i]),
            "report_date": str(report[i] or "") or None,
            "accession_number": acc,
            "primary_document": doc_name or None,
            "primary_document_url": link,
            "description": str(description[i] or "") or None,
        })
    return out


class EdgarResource(dg.ConfigurableResource):
    """SEC EDGAR for the sec_filings asset. Unset fields come from MOCHI_SEC_USER_AGENT,
    MOCHI_SEC_BASE_URL and MOCHI_SEC_DATA_BASE_URL when a run asks for the client (never at import);
    a deployment may also set them with `dg.EnvVar(...)`."""

    user_agent: str | None = None
    base_url: str | None = None
    data_base_url: str | None = None

    def get_client(self) -> EdgarClient:
        return EdgarClient(EdgarSettings.resolve(self.user_agent, self.base_url, self.data_base_url))
