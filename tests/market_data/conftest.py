"""A local stand-in for the Polygon (Massive) REST API, written from its public documentation.

Endpoints:
- `GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}` with `adjusted`, `sort`,
  `limit` (and `cursor` on follow-up pages): `{ticker, queryCount, resultsCount, adjusted, results:
  [{v, vw, o, c, h, l, t, n}], status, request_id, next_url?}`; `from`/`to` are dates or Unix ms,
  both inclusive; `t` is the bar's start in Unix ms; pages hold at most `limit` bars and link the
  next one with an absolute `next_url` that carries a `cursor`.
- `GET /v3/reference/tickers/{ticker}`: `{results: {ticker, name, market, locale, ...}, status}`,
  404 `{status: NOT_FOUND}` for unknown tickers.
- Authentication with `Authorization: Bearer KEY` or `?apiKey=KEY`; otherwise 401
  `{status: ERROR, error: "Unknown API Key"}`.

Data: the synthetic EURUSD minutes of Mochi serve as `C:EURUSD` (real-looking, with missing
minutes); hour and day bars are aggregated from them over UTC hours and UTC days, as Polygon does
for forex. Faults are scripted per request with `fail_next` (429 with or without Retry-After,
5xx, a slow answer for timeouts, an empty page, an expired key).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from mochi_assets.market_data.synthetic import synthetic_minute_bars

API_KEY = "test-KEY-5ecret-0123456789"
DATA_START, DATA_END = dt.date(2023, 12, 28), dt.date(2024, 3, 8)

REFERENCE = {
    "C:EURUSD": {"ticker": "C:EURUSD", "name": "Euro - United States Dollar", "market": "fx", "locale": "global",
                 "active": True, "currency_symbol": "USD", "base_currency_symbol": "EUR"},
}


def _aggregate(minute: pl.DataFrame, every: str) -> pl.DataFrame:
    return (
        minute.group_by(pl.col("ts").dt.truncate(every).alias("period"), maintain_order=True)
        .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
             pl.col("volume").sum())
        .rename({"period": "ts"})
        .sort("ts")
    )


def _to_results(df: pl.DataFrame) -> list[dict]:
    out = df.select(
        pl.col("ts").dt.epoch("ms").alias("t"), pl.col("open").alias("o"), pl.col("high").alias("h"),
        pl.col("low").alias("l"), pl.col("close").alias("c"), pl.col("volume").alias("v"),
    )
    return [{**r, "vw": round((r["h"] + r["l"]) / 2, 6), "n": int(r["v"])} for r in out.iter_rows(named=True)]


@functools.cache
def _data() -> tuple[dict, dict]:
    minute = synthetic_minute_bars("SYN:EURUSD", DATA_START, DATA_END)
    tables = {"minute": minute, "hour": _aggregate(minute, "1h"), "day": _aggregate(minute, "1d")}
    return tables, {k: _to_results(v) for k, v in tables.items()}


class PolygonStandIn:
    """The server's state: data, page size, scripted faults and a log of every request."""

    def __init__(self):
        self.tables, self.results = _data()
        self.page_size = 50000
        self.faults: list = []  # consumed one per request: int status, ("429", seconds), "slow", "empty"
        self.requests: list[dict] = []
        self.key_in_next_url = False
        self.clock = None  # a test clock whose now() is logged with each request
        self.lock = threading.Lock()
        self.url = ""

    def fail_next(self, *faults) -> None:
        with self.lock:
            self.faults.extend(faults)

    def agg_requests(self, timespan: str | None = None) -> list[dict]:
        return [r for r in self.requests if r["kind"] == "aggs" and (timespan is None or r["timespan"] == timespan)]


def _parse_bound(text: str, end: bool) -> int:
    if text.isdigit():
        return int(text)
    day = dt.date.fromisoformat(text)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return int(((start + dt.timedelta(days=1)) if end else start).timestamp() * 1000) - (1 if end else 0)


def _handler(state: PolygonStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status: int, doc: dict, headers: dict | None = None) -> None:
            body = json.dumps(doc).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def do_GET(self):
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            segments = [urllib.parse.unquote(s) for s in parts.path.strip("/").split("/")]
            entry = {"path": parts.path, "query": query, "kind": "other",
                     "clock": state.clock.now if state.clock is not None else None}
            if segments[:2] == ["v2", "aggs"] and len(segments) == 9:
                entry.update(kind="aggs", ticker=segments[3], timespan=segments[6])
            elif segments[:3] == ["v3", "reference", "tickers"]:
                entry.update(kind="reference", ticker=segments[3])
            with state.lock:
                state.requests.append(entry)
                fault = state.faults.pop(0) if state.faults else None
            auth = self.headers.get("Authorization", "")
            key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else query.get("apiKey")
            if fault == "badkey" or key != API_KEY:
                # Like the real service, the error text may quote what it was given.
                return self._send(401, {"status": "ERROR", "request_id": "r1", "error": f"Unknown API Key {key}"})
            if isinstance(fault, int):
                return self._send(fault, {"status": "ERROR", "error": "internal error"})
            if isinstance(fault, tuple) and fault[0] == "429":
                headers = {"Retry-After": str(fault[1])} if fault[1] is not None else {}
                return self._send(429, {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"},
                                  headers)
            if fault == "slow":
                time.sleep(1.0)
            if entry["kind"] == "reference":
                ref = REFERENCE.get(entry["ticker"])
                if ref is None:
                    return self._send(404, {"status": "NOT_FOUND", "request_id": "r2", "message": "Ticker not found."})
                return self._send(200, {"status": "OK", "request_id": "r2", "results": ref})
            if entry["kind"] != "aggs":
                return self._send(404, {"status": "NOT_FOUND"})
            timespan = segments[6]
            lo, hi = _parse_bound(segments[7], False), _parse_bound(segments[8], True)
            entry["from"], entry["to"] = lo, hi
            rows = state.results.get(timespan) if segments[3] == "C:EURUSD" else []
            if rows is None:
                return self._send(400, {"status": "ERROR", "error": f"unknown timespan {timespan}"})
            selected = [r for r in rows if lo <= r["t"] <= hi]
            limit = min(int(query.get("limit", 5000)), state.page_size)
            offset = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if "cursor" in query else 0
            page = selected[offset: offset + limit]
            doc = {"ticker": segments[3], "queryCount": len(page), "resultsCount": len(page),
                   "adjusted": query.get("adjusted") == "true", "status": "OK", "request_id": "r3"}
            if fault == "empty":
                page = []
                doc.update(queryCount=0, resultsCount=0)
            else:
                offset += limit
            if page:
                doc["results"] = page
            if offset < len(selected):
                cursor = base64.urlsafe_b64encode(str(offset).encode()).decode()
                next_query = {"cursor": cursor, **({"apiKey": API_KEY} if state.key_in_next_url else {})}
                doc["next_url"] = f"{state.url}{parts.path}?{urllib.parse.urlencode(next_query)}"
            return self._send(200, doc)

    return Handler


@pytest.fixture
def polygon_server():
    """The stand-in on 127.0.0.1 at a free port; stopped after the test."""
    state = PolygonStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
