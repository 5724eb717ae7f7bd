"""HTTP client of the Polygon (now Massive) REST API: authentication, a request budget and retries.

Only the standard library is used (urllib). Configuration is read when a client is built, never at
import:

| variable                  | default                 | meaning                                          |
|---------------------------|-------------------------|--------------------------------------------------|
| POLYGON_API_KEY           | (required)              | the API key, sent as `Authorization: Bearer`     |
| MOCHI_POLYGON_BASE_URL    | https://api.polygon.io  | the service (or a proxy, or a test stand-in)     |
| MOCHI_POLYGON_RPM         | 5                       | requests per minute (free tier: 5); 0 = no limit |
| MOCHI_POLYGON_MAX_RETRIES | 4                       | retries of a 5xx answer, timeout or lost connection |
| MOCHI_POLYGON_TIMEOUT_S   | 30                      | seconds to wait for one answer                   |

Behaviour against the real service:

- Requests per minute: a sliding window of the last minute's requests; a request that would
  exceed the budget waits until the oldest one leaves the window.
- 429 (too many requests): wait the `Retry-After` seconds when the answer gives them, else an
  exponential backoff with jitter starting at one budget slot (60 / rpm seconds), up to
  `max_rate_limit_retries` times (12 by default: several minutes of patience, where the official
  client gives up after three quick retries).
- 5xx, timeouts and lost connections: exponential backoff with jitter, `max_retries` times.
- 401 and 403: fail at once with one message about the key; nothing is retried.
- 404: `None` for the caller to handle (an unknown ticker in the reference data).

The key never leaves this module: it travels in a header (not the URL), `next_url` links are
re-rooted on the configured base URL, an HTTP redirect is followed only within the configured
origin (scheme, host and port; a redirect elsewhere is refused before anything is sent there, so
the key never reaches another host), and every message is passed through `scrub` (which removes
the key and any `apiKey=` parameter).

Bounded waits: one answer may take `MOCHI_POLYGON_TIMEOUT_S` (silence on an open connection
counts as a timeout), and a request is tried `MOCHI_POLYGON_MAX_RETRIES + 1` times with backoffs
of 0.5-1 x 1, 2, 4, 8 ... s between, so a service that accepts connections but never answers
fails after at most (retries + 1) x timeout + 2**retries s (150 s + 15 s by default) with one
line naming the base URL.
Sleeping and the clock are injectable so that tests run without real waits.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mochi_resources.errors import ProviderError, ProviderUnavailable, host_does_not_resolve

DEFAULT_BASE_URL = "https://api.polygon.io"
_KEY_PARAM = re.compile(r"(?i)(api_?key=)[^&\s\"']*")
_WINDOW_S = 60.0
_MAX_RETRY_AFTER_S = 600.0


def scrub(text: str, key: str | None) -> str:
    """`text` with the API key and any `apiKey=...` query value replaced by `***`."""
    text = _KEY_PARAM.sub(r"\1***", str(text))
    if key:
        text = text.replace(key, "***")
    return text


class PolygonAuthError(ProviderError):
    """The service refused the API key (HTTP 401 or 403)."""


def _env_number(name: str, default: float, kind: type) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ProviderError(f"{name}: {raw!r} is not a number") from None
    if value < 0:
        raise ProviderError(f"{name}: {raw!r} must not be negative")
    return value


def base_url_from_env() -> str:
    """MOCHI_POLYGON_BASE_URL (default the public API), checked to be an http(s) URL."""
    url = (os.environ.get("MOCHI_POLYGON_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProviderError(
            f"MOCHI_POLYGON_BASE_URL: {url!r} is not an http(s) URL (e.g. {DEFAULT_BASE_URL})"
        )
    return url


@dataclass(frozen=True)
class PolygonConfig:
    """Connection settings; `api_key` is hidden from repr so it never lands in a log by accident."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: int = 5
    max_retries: int = 4
    max_rate_limit_retries: int = 12
    timeout_s: float = 30.0
    backoff_s: float = 1.0
    max_backoff_s: float = 120.0

    @classmethod
    def from_env(cls) -> PolygonConfig:
        key = (os.environ.get("POLYGON_API_KEY") or "").strip()
        if not key:
            raise ProviderError("POLYGON_API_KEY is not set: set it to your Polygon (Massive) API key")
        return cls(
            api_key=key,
            base_url=base_url_from_env(),
            requests_per_minute=int(_env_number("MOCHI_POLYGON_RPM", 5, int)),
            max_retries=int(_env_number("MOCHI_POLYGON_MAX_RETRIES", 4, int)),
            timeout_s=float(_env_number("MOCHI_POLYGON_TIMEOUT_S", 30.0, float)) or 30.0,
        )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


class _CrossOriginRedirect(Exception):
    def __init__(self, target: str):
        super().__init__(target)
        self.target = target


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects within the request's origin only: urllib would otherwise send every
    header, the Authorization with the key included, to whatever host a 30x names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != _origin(req.full_url):
            raise _CrossOriginRedirect(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Retry(Exception):
    """One failed attempt that may be retried: why, and how long the server asked us to wait."""

    def __init__(self, reason: str, rate_limited: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.rate_limited = rate_limited
        self.retry_after = retry_after


class PolygonClient:
    """GET JSON from the API with the request budget, retries and key hygiene of the module docstring."""

    def __init__(
        self,
        config: PolygonConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._log = log
        self._sent: deque[float] = deque()
        self._opener = urllib.request.build_opener(_SameOriginRedirects)
        self.requests_sent = 0
        self.waited_s = 0.0

    @classmethod
    def from_env(cls, **kwargs) -> PolygonClient:
        return cls(PolygonConfig.from_env(), **kwargs)

    # --- URLs -------------------------------------------------------------------------------

    def url(self, path_or_url: str, params: dict | None = None) -> str:
        """An absolute URL on the configured base; absolute inputs (next_url) keep only path and query."""
        parts = urllib.parse.urlsplit(path_or_url)
        base = urllib.parse.urlsplit(self.config.base_url)
        # The key is sent to the configured host only, whatever host a next_url names.
        query = parts.query
        pairs = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k.lower() not in ("apikey", "api_key")]
        if params:
            pairs.extend((k, str(v)) for k, v in params.items())
        path = parts.path if parts.path.startswith("/") else "/" + parts.path
        return urllib.parse.urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, urllib.parse.urlencode(pairs), ""))

    def aggregates_path(self, ticker: str, resolution: str, from_ms: int, to_ms: int, adjusted: bool = True) -> str:
        """Path and query of `GET /v2/aggs/ticker/{ticker}/range/1/{resolution}/{from}/{to}` (both ms, inclusive)."""
        if resolution not in ("minute", "hour", "day"):
            raise ProviderError(f"resolution: {resolution!r} is not minute, hour or day")
        symbol = urllib.parse.quote(ticker, safe=":")
        query = urllib.parse.urlencode({"adjusted": str(adjusted).lower(), "sort": "asc", "limit": 50000})
        return f"/v2/aggs/ticker/{symbol}/range/1/{resolution}/{int(from_ms)}/{int(to_ms)}?{query}"

    def public(self, url: str | None) -> str | None:
        """A URL as it may be shown or stored: key parameters scrubbed."""
        return None if url is None else scrub(url, self.config.api_key)

    # --- requests ---------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.waited_s += seconds
            self._sleep(seconds)

    def _acquire(self) -> None:
        """Block until one more request fits in the per-minute budget, then count it."""
        rpm = self.config.requests_per_minute
        if rpm > 0:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= _WINDOW_S:
                    self._sent.popleft()
                if len(self._sent) < rpm:
                    break
                self._wait(_WINDOW_S - (now - self._sent[0]))
            self._sent.append(self._clock())
        self.requests_sent += 1

    def _backoff(self, attempt: int, base: float) -> float:
        """Exponential backoff with jitter: a random share (50-100 %) of base * 2**attempt, capped."""
        return min(self.config.max_backoff_s, base * 2**attempt) * self._rng.uniform(0.5, 1.0)

    def _attempt(self, url: str, what: str) -> dict | None:
        request = urllib.request.Request(
            url,
            headers={
                "Authorization": f"Bearer {self.config.api_key}",
                "Accept": "application/json",
                "User-Agent": "mochi-backtest",
            },
        )
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                body = response.read()
        except _CrossOriginRedirect as exc:
            scheme, host, port = _origin(exc.target)
            elsewhere = f"{scheme}://{host}:{port}"
            raise ProviderError(
                f"{what}: the Polygon API at {self.config.base_url} redirected to another host ({elsewhere}); "
                "refused so that POLYGON_API_KEY is never sent there (set MOCHI_POLYGON_BASE_URL to the "
                "service's own address)"
            ) from None
        except urllib.error.HTTPError as exc:
            status = exc.code
            detail = _error_detail(exc)
            if status in (401, 403):
                raise PolygonAuthError(
                    f"{what}: the Polygon API refused POLYGON_API_KEY (HTTP {status}{': ' + detail if detail else ''}); "
                    "check that the key is valid and that your plan includes this data"
                ) from None
            if status == 404:
                return None
            if status == 429:
                raise _Retry(f"HTTP 429 (too many requests){': ' + detail if detail else ''}",
                             rate_limited=True, retry_after=_retry_after(exc.headers)) from None
            if status >= 500:
                raise _Retry(f"HTTP {status}{': ' + detail if detail else ''}") from None
            raise ProviderError(f"{what}: the Polygon API answered HTTP {status}{': ' + detail if detail else ''}") from None
        except (TimeoutError, socket.timeout):
            raise _Retry(f"no answer within {self.config.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Retry(f"no answer within {self.config.timeout_s:g} s") from None
            if host_does_not_resolve(reason):  # retries would only wait
                raise ProviderError(
                    f"{what}: cannot resolve the host of the Polygon API at {self.config.base_url} ({reason}); "
                    "check MOCHI_POLYGON_BASE_URL and this machine's network and DNS"
                ) from None
            raise _Retry(f"cannot connect ({reason})") from None
        except (ConnectionError, OSError) as exc:
            raise _Retry(f"connection failed ({exc.__class__.__name__})") from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise _Retry("the answer is not JSON") from None
        if not isinstance(doc, dict):
            raise _Retry("the answer is not a JSON object")
        if str(doc.get("status", "")).upper() == "ERROR":
            raise ProviderError(f"{what}: the Polygon API reported an error: {doc.get('error') or doc.get('message') or doc}")
        return doc

    def get(self, path_or_url: str, params: dict | None = None, *, what: str = "Polygon request") -> dict | None:
        """GET one JSON object (None on 404), within the budget, retrying as the module docstring says.

        Raises PolygonAuthError on 401/403 and ProviderError when retries run out; every message
        names `what` and never contains the key.
        """
        url = self.url(path_or_url, params)
        failures = rate_limited = 0
        while True:
            self._acquire()
            try:
                return self._attempt(url, what)
            except _Retry as retry:
                reason = scrub(retry.reason, self.config.api_key)
                if retry.rate_limited:
                    if rate_limited >= self.config.max_rate_limit_retries:
                        raise ProviderUnavailable(
                            f"{what}: still rate limited after {rate_limited + 1} attempts ({reason}); "
                            "lower MOCHI_POLYGON_RPM or try again later"
                        ) from None
                    slot = 60.0 / self.config.requests_per_minute if self.config.requests_per_minute else self.config.backoff_s
                    delay = retry.retry_after if retry.retry_after is not None else self._backoff(rate_limited, max(slot, self.config.backoff_s))
                    rate_limited += 1
                else:
                    if failures >= self.config.max_retries:
                        raise ProviderUnavailable(
                            f"{what}: the Polygon API at {self.config.base_url} failed {failures + 1} times, "
                            f"last: {reason}"
                        ) from None
                    delay = self._backoff(failures, self.config.backoff_s)
                    failures += 1
                if self._log:
                    self._log(f"{what}: {reason}; retrying in {delay:.1f} s")
                self._wait(delay)
            except ProviderError as exc:
                message = scrub(str(exc), self.config.api_key)
                raise exc.__class__(message) from None

    def ticker_details(self, ticker: str) -> dict | None:
        """`GET /v3/reference/tickers/{ticker}`: the `results` object, or None when the ticker is unknown."""
        symbol = urllib.parse.quote(ticker, safe=":")
        doc = self.get(f"/v3/reference/tickers/{symbol}", what=f"reference data of {ticker}")
        if doc is None:
            return None
        results = doc.get("results")
        return results if isinstance(results, dict) else None


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The service's own error text from an error answer (short), if any."""
    try:
        body = exc.read()
    except Exception:  # the body is a courtesy; the status code is what matters
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        text = doc.get("error") or doc.get("message") or ""
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
    return str(text).strip()[:200]


def _retry_after(headers) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), capped; None when absent."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


class PolygonResource(dg.ConfigurableResource):
    """The Polygon (Massive) aggregates API as a Dagster resource.

    The definitions pass the key and base URL as `dg.EnvVar` (resolved when a run starts, shown by
    name only in the UI); a field left unset falls back to the environment variable of the module
    docstring, read when the client is built.
    """

    api_key: str | None = None
    base_url: str | None = None
    requests_per_minute: int | None = None
    max_retries: int | None = None
    timeout_s: float | None = None

    def configured(self) -> bool:
        """Whether a key is available (the resource's, or POLYGON_API_KEY)."""
        return bool((self.api_key or os.environ.get("POLYGON_API_KEY") or "").strip())

    def get_config(self) -> PolygonConfig:
        env = PolygonConfig.from_env() if not (self.api_key or "").strip() else None
        key = (self.api_key or "").strip() or env.api_key
        base = (self.base_url or "").strip().rstrip("/") or base_url_from_env()
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderError(f"polygon base_url: {base!r} is not an http(s) URL (e.g. {DEFAULT_BASE_URL})")
        return PolygonConfig(
            api_key=key,
            base_url=base,
            requests_per_minute=self.requests_per_minute if self.requests_per_minute is not None
            else int(_env_number("MOCHI_POLYGON_RPM", 5, int)),
            max_retries=self.max_retries if self.max_retries is not None
            else int(_env_number("MOCHI_POLYGON_MAX_RETRIES", 4, int)),
            timeout_s=self.timeout_s or float(_env_number("MOCHI_POLYGON_TIMEOUT_S", 30.0, float)) or 30.0,
        )

    def get_client(self, log: Callable[[str], None] | None = None) -> PolygonClient:
        return PolygonClient(self.get_config(), log=log)
