"""A loopback stand-in of SEC EDGAR's two JSON endpoints, shaped after SEC's public documentation.

- `GET /files/company_tickers.json`: an object keyed "0", "1", ... of
  `{"cik_str": int, "ticker": str, "title": str}` (www.sec.gov);
- `GET /submissions/CIK##########.json`: the company's submissions document, with
  `filings.recent` as column arrays, newest first, and `filings.files` naming older documents,
  served at `GET /submissions/{name}` with the same columns at the top level (data.sec.gov).

Like EDGAR, it answers 403 to a request without a User-Agent. Tests can queue answers (429 with
`Retry-After`, 503) that the next requests get before the real document. It records each request's
path, User-Agent and arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APPLE_CIK = 320193

COMPANY_TICKERS = {
    "0": {"cik_str": APPLE_CIK, "ticker": "AAPL", "title": "Apple Inc."},
    "1": {"cik_str": 789019, "ticker": "MSFT", "title": "MICROSOFT CORP"},
    "2": {"cik_str": 1067983, "ticker": "BRK-B", "title": "BERKSHIRE HATHAWAY INC"},
}

RECENT = [  # newest first, as EDGAR lists them
    ("0000320193-24-000081", "2024-08-02", "2024-06-29", "10-Q", "aapl-20240629.htm", "10-Q"),
    ("0000320193-24-000080", "2024-08-01", "2024-08-01", "8-K", "aapl-20240801.htm", "8-K"),
    ("0000320193-24-000069", "2024-05-03", "2024-03-30", "10-Q", "aapl-20240330.htm", "10-Q"),
    ("0000320193-24-000050", "2024-05-02", "2024-05-02", "8-K", "aapl-20240502.htm", "8-K"),
    ("0001140361-24-012345", "2024-04-12", "", "4", "xslF345X05/form4.xml", "FORM 4"),
    ("0000320193-24-000006", "2024-02-02", "2023-12-30", "10-Q", "aapl-20231230.htm", "10-Q"),
]
OLDER = [
    ("0000320193-23-000106", "2023-11-03", "2023-09-30", "10-K", "aapl-20230930.htm", "10-K"),
    ("0000320193-23-000077", "2023-08-04", "2023-07-01", "10-Q", "aapl-20230701.htm", "10-Q"),
]
OLDER_NAME = f"CIK{APPLE_CIK:010d}-submissions-001.json"


def _columns(rows) -> dict:
    acc, filed, report, form, primary, desc = (list(c) for c in zip(*rows))
    return {"accessionNumber": acc, "filingDate": filed, "reportDate": report, "form": form,
            "primaryDocument": primary, "primaryDocDescription": desc,
            "acceptanceDateTime": [f"{d}T16:30:00.000Z" for d in filed]}


def submissions() -> dict:
    return {
        "cik": str(APPLE_CIK), "entityType": "operating", "sicDescription": "Electronic Computers",
        "name": "Apple Inc.", "tickers": ["AAPL"], "exchanges": ["Nasdaq"],
        "filings": {"recent": _columns(RECENT),
                    "files": [{"name": OLDER_NAME, "filingCount": len(OLDER), "filingFrom": "2023-08-04",
                               "filingTo": "2023-11-03"}]},
    }


class EdgarStandIn:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, float]] = []
        self.queued: list[tuple[int, dict]] = []  # (status, headers) answered before the documents
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                ua = self.headers.get("User-Agent")
                stand_in.requests.append((self.path, ua, time.monotonic()))
                if not ua or ua.startswith("Python-urllib"):
                    return self._send(403, {"message": "undeclared automated tool"})
                if stand_in.queued:
                    status, headers = stand_in.queued.pop(0)
                    return self._send(status, {"message": "queued answer"}, headers)
                if self.path == "/files/company_tickers.json":
                    return self._send(200, COMPANY_TICKERS)
                if self.path == f"/submissions/CIK{APPLE_CIK:010d}.json":
                    return self._send(200, submissions())
                if self.path == f"/submissions/{OLDER_NAME}":
                    return self._send(200, _columns(OLDER))
                return self._send(404, {"message": "not found"})

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EdgarStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
