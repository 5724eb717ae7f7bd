"""Secrets stay home: the Polygon key never reaches another host, and no error shows a secret."""

from __future__ import annotations

import json

import boto3
import pytest

from mochi_resources.errors import LakeError, ProviderError
from mochi_resources.polygon import PolygonClient, PolygonConfig
from mochi_resources.s3 import S3Store

KEY = "pk_live_S3CR3T_do_not_leak"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


def client(base_url: str) -> PolygonClient:
    config = PolygonConfig(api_key=KEY, base_url=base_url, requests_per_minute=0, max_retries=1, timeout_s=5)
    return PolygonClient(config, sleep=lambda s: None)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_never_receives_the_key(recorders, status):
    elsewhere = recorders("localhost")  # another host name and port: another origin
    api = recorders()
    api.status, api.headers = status, {"Location": f"{elsewhere.url}/v2/aggs/steal?x=1"}
    with pytest.raises(ProviderError) as err:
        client(api.url).get("/v2/aggs/ticker/AAPL/range/1/minute/1/2", what="minute bars of AAPL")
    message = str(err.value)
    assert message == (
        f"minute bars of AAPL: the Polygon API at {api.url} redirected to another host "
        f"(http://localhost:{elsewhere.port}); refused so that POLYGON_API_KEY is never sent there "
        "(set MOCHI_POLYGON_BASE_URL to the service's own address)"
    )
    assert KEY not in message
    assert elsewhere.requests == []  # nothing at all was sent there, let alone the key
    assert api.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_a_redirect_within_the_origin_is_followed_with_the_key(recorders):
    api = recorders()

    def respond(handler):
        if handler.path.startswith("/old"):
            return 302, {"Location": "/new"}, b""
        return 200, {"Content-Type": "application/json"}, json.dumps({"status": "OK", "results": []}).encode()

    api.respond = respond
    assert client(api.url).get("/old") == {"status": "OK", "results": []}
    assert [r["path"] for r in api.requests] == ["/old", "/new"]
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in api.requests)


def test_the_key_never_appears_in_an_error(recorders):
    api = recorders()
    api.status, api.body = 400, json.dumps({"status": "ERROR", "error": f"bad request for key {KEY}"}).encode()
    with pytest.raises(ProviderError) as err:
        client(api.url).get(f"/v2/x?apiKey={KEY}")
    assert KEY not in str(err.value) and "***" in str(err.value)


def test_s3_errors_never_show_the_secret(recorders, monkeypatch):
    """A server that echoes the secret in its error message: the message Mochi shows is scrubbed."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    s3 = recorders()

    def respond(handler):
        if handler.command == "HEAD":
            return 404, {}, b""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code>'
            f"<Message>refused: secret {SECRET} is not welcome</Message></Error>"
        )
        return 400, {"Content-Type": "application/xml"}, body.encode()

    s3.respond = respond
    store = S3Store(s3.url, ["fault-raw"], max_attempts=1)
    with pytest.raises(LakeError) as err:
        store.check()
    message = str(err.value)
    assert message.startswith(f"S3 endpoint {s3.url}: cannot create bucket s3://fault-raw: InvalidArgument")
    assert SECRET not in message and "secret *** is not welcome" in message
    assert all(SECRET not in json.dumps(r["headers"]) for r in s3.requests)  # signed, never sent
    assert boto3  # the real boto3 client made these requests


@pytest.mark.parametrize("status", [301, 307])
def test_s3_redirects_to_another_host_are_not_followed(recorders, monkeypatch, status):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    elsewhere, s3 = recorders("localhost"), recorders()
    s3.status, s3.headers = status, {"Location": f"{elsewhere.url}/fault-raw/x", "x-amz-bucket-region": "eu-west-1"}
    s3.body = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>moved</Message>'
        f"<Endpoint>localhost:{elsewhere.port}</Endpoint></Error>"
    ).encode()
    store = S3Store(s3.url, ["fault-raw"], max_attempts=2)
    for action in (lambda: store.get_bytes("fault-raw/x"), lambda: store.put_bytes("fault-raw/x", b"abc")):
        with pytest.raises(LakeError, match=r"^S3 endpoint http://127\.0\.0\.1:\d+: answered the request to (read|write) "
                                            r"s3://fault-raw/x with a redirect \(PermanentRedirect\), which Mochi does not follow"):
            action()
    assert elsewhere.requests == []
