"""The lake's S3 store (MinIO in a cluster, any S3 API): one bucket per pipeline stage.

- Requests are retried by botocore's "standard" retry mode (exponential backoff with jitter on
  throttling, 5xx answers, dropped connections and timeouts), `MOCHI_S3_MAX_ATTEMPTS` attempts in
  all (4 by default).
- Bounded waits: a connection must open within `MOCHI_S3_CONNECT_TIMEOUT_S` (5 s) and the
  endpoint must send its next bytes within `MOCHI_S3_READ_TIMEOUT_S` (20 s). The read timeout is
  per socket read, not per object, so it holds for any object size: Mochi's largest single
  request is one 8 MB part or a PUT below 16 MB, which a working endpoint acknowledges in well
  under a second. An endpoint that accepts connections but never answers therefore fails one
  request after at most attempts x (connect + read) plus botocore's backoff (a random share of
  1, 2, 4 ... s, below 20 s each): about 90 s with the defaults, and the first request of a
  process (the bucket check) is where a dead endpoint shows. The message is one line naming
  the endpoint.
- Credentials come from boto3's usual chain (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
  They are checked once per process, before anything is written, by looking at every stage
  bucket (creating the missing ones): wrong credentials or a missing permission fail at once with
  a message naming the endpoint and the problem. A secret never appears in a message: every
  message is scrubbed of the secret key and session token, whatever the server or botocore put
  in it. Requests are signed (SigV4), so the secret itself never travels; botocore does not
  follow HTTP redirects to other hosts.
- Large files go up as multipart uploads (the object appears only when the upload completes, so
  a killed writer leaves the previous object); an interrupted upload is aborted, and unfinished
  uploads of killed writers are dropped by `clean_uploads` (plus a bucket lifecycle rule where the
  server supports one).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from mochi_resources.errors import LakeError
from mochi_resources.stores import KeyMissing, StoredObject

MB = 1024 * 1024
# Files above this size are uploaded in parts (in parallel); below it, one PUT.
MULTIPART_THRESHOLD = 16 * MB
SPOOL_IN_MEMORY = 8 * MB  # an object read (`open`) above this size goes to a temporary file on local disk
_TRANSFER = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=8 * MB, max_concurrency=4)

_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key is not known to the endpoint (check AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "the secret key does not match the access key (check AWS_SECRET_ACCESS_KEY)",
    "InvalidToken": "the session token is invalid (check AWS_SESSION_TOKEN)",
    "ExpiredToken": "the session token has expired (AWS_SESSION_TOKEN)",
    "AuthorizationHeaderMalformed": "the request signature is malformed (check AWS_REGION)",
}

_clients: dict[tuple, object] = {}
_checked: set[tuple] = set()
_lock = threading.Lock()


def _split(key: str) -> tuple[str, str]:
    bucket, _, rest = key.partition("/")
    return bucket, rest


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3Store:
    """An S3 API as the lake's object store (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        buckets: list[str],
        *,
        region: str = "us-east-1",
        max_attempts: int = 4,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
    ):
        self.endpoint = endpoint
        self.max_attempts = max_attempts
        self.read_timeout_s = read_timeout_s
        self.buckets = list(buckets)
        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is None:
            raise LakeError(
                f"S3 endpoint {endpoint}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        frozen = creds.get_frozen_credentials()
        # the cache key carries a digest of the secret, never the secret itself
        secret_digest = hashlib.sha256((frozen.secret_key or "").encode()).hexdigest()
        # (S3 servers ask for secrets of 8 characters or more; a shorter one would scrub words)
        self._secrets = tuple(v for v in (frozen.secret_key, frozen.token) if v and len(v) >= 8)
        cache_key = (endpoint, region, max_attempts, connect_timeout_s, read_timeout_s,
                     frozen.access_key, secret_digest, frozen.token)
        with _lock:
            client = _clients.get(cache_key)
            if client is None:
                client = session.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name=region,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": max_attempts},
                        connect_timeout=connect_timeout_s,
                        read_timeout=read_timeout_s,
                        signature_version="s3v4",
                        s3={"addressing_style": "path"},
                    ),
                )
                _clients[cache_key] = client
        self.client = client
        self._cache_key = (*cache_key, tuple(self.buckets))

    # --- errors -----------------------------------------------------------------------------

    def _fail(self, exc: Exception, what: str, key: str | None = None) -> LakeError:
        """A LakeError naming the endpoint, the operation and the problem (never a secret)."""
        error = self._explain(exc, what, key)
        text = str(error)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return error.__class__(" ".join(text.split()))

    def _explain(self, exc: Exception, what: str, key: str | None) -> LakeError:
        where = f"S3 endpoint {self.endpoint}"
        target = f" s3://{key}" if key else ""
        if isinstance(exc, NoCredentialsError):
            return LakeError(f"{where}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
            waited = "no connection" if isinstance(exc, ConnectTimeoutError) else f"no answer within {self.read_timeout_s:g} s"
            return LakeError(
                f"{where}: {waited} in {self.max_attempts} attempt(s) while trying to {what}{target} "
                "(is the server up and MOCHI_S3_ENDPOINT right? MOCHI_S3_READ_TIMEOUT_S and "
                "MOCHI_S3_MAX_ATTEMPTS set the patience)"
            )
        if isinstance(exc, EndpointConnectionError):
            return LakeError(f"{where}: cannot connect (is the server up and MOCHI_S3_ENDPOINT right?) while trying to {what}{target}")
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in _MISSING_CODES:
                return KeyMissing(f"s3://{key} does not exist")
            if code in ("PermanentRedirect", "TemporaryRedirect", "Redirect") or 300 <= _status(exc) < 400:
                return LakeError(
                    f"{where}: answered the request to {what}{target} with a redirect ({code or _status(exc)}), "
                    "which Mochi does not follow: requests go to MOCHI_S3_ENDPOINT only (set it to the "
                    "server's own address and region)"
                )
            if code in _CREDENTIAL_CODES:
                return LakeError(f"{where}: credentials rejected: {_CREDENTIAL_CODES[code]}")
            if code in ("AccessDenied", "403", "Forbidden"):
                return LakeError(
                    f"{where}: access denied to {what}{target}: the credentials lack this permission "
                    "(or are wrong)"
                )
            message = exc.response.get("Error", {}).get("Message", "")
            return LakeError(f"{where}: cannot {what}{target}: {code or _status(exc)} {message}".rstrip())
        if isinstance(exc, BotoCoreError):
            return LakeError(f"{where}: cannot {what}{target}: {exc}")
        return LakeError(f"{where}: cannot {what}{target}: {exc}")

    def _diagnose_forbidden(self, bucket: str) -> LakeError:
        """A HEAD answer has no body: ask again with a GET to learn why the endpoint said 403."""
        try:
            self.client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            return self._fail(exc, "list bucket", bucket)
        return LakeError(f"S3 endpoint {self.endpoint}: access denied to bucket {bucket} (HEAD refused, listing allowed)")

    # --- buckets ----------------------------------------------------------------------------

    def check(self) -> None:
        """Every stage bucket exists (created when missing) and answers: once per process and settings."""
        if self._cache_key in _checked:
            return
        for bucket in self.buckets:
            self._ensure_bucket(bucket)
        _checked.add(self._cache_key)

    def _ensure_bucket(self, bucket: str) -> None:
        try:
            self.client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if _status(exc) == 403 or _code(exc) in ("403", "AccessDenied", "Forbidden"):
                raise self._diagnose_forbidden(bucket) from None
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail(exc, "check bucket", bucket) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "check bucket", bucket) from None
        try:
            self.client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail(exc, "create bucket", bucket) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "create bucket", bucket) from None
        try:  # best effort: not every S3 server has lifecycle rules; clean_uploads covers the rest
            self.client.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={"Rules": [{
                    "ID": "mochi-abort-unfinished-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }]},
            )
        except (ClientError, BotoCoreError):
            pass

    # --- store operations -------------------------------------------------------------------

    def uri(self, key: str) -> str:
        return f"s3://{key}"

    def describe(self) -> str:
        prefix = os.path.commonprefix(self.buckets) if self.buckets else ""
        return f"{self.endpoint} (buckets {prefix}*)"

    def put_file(self, key: str, local: Path) -> None:
        bucket, rest = _split(key)
        try:
            # upload_file aborts its multipart upload if any part fails
            self.client.upload_file(str(local), bucket, rest, Config=_TRANSFER)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "write", key) from None
        except Exception as exc:  # boto3's transfer manager wraps errors in its own classes
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, (ClientError, BotoCoreError)):
                raise self._fail(cause, "write", key) from None
            raise self._fail(exc, "write", key) from None
        Path(local).unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._upload(key, io.BytesIO(data), len(data))

    def put_written(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        buffer = io.BytesIO()
        write(buffer)
        self._upload(key, buffer, buffer.tell())  # the buffer itself: no copy of the object

    def _upload(self, key: str, body: BinaryIO, size: int) -> None:
        """One PUT of `body` (from its start) below MULTIPART_THRESHOLD bytes, parts above."""
        bucket, rest = _split(key)
        body.seek(0)
        try:
            if size < MULTIPART_THRESHOLD:
                self.client.put_object(Bucket=bucket, Key=rest, Body=body)
            else:
                self.client.upload_fileobj(body, bucket, rest, Config=_TRANSFER)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "write", key) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """A conditional PUT (`If-None-Match: *`): the server creates the key only if it is absent.

        412 Precondition Failed: the key exists. 409 ConditionalRequestConflict: another conditional
        write of the key is in flight; its winner is decided by the server, so this one lost too.
        """
        bucket, rest = _split(key)
        try:
            self.client.put_object(Bucket=bucket, Key=rest, Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if _status(exc) in (409, 412) or _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise self._fail(exc, "write", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "write", key) from None

    def get_bytes(self, key: str) -> bytes:
        bucket, rest = _split(key)
        try:
            # one GET: the body is one version of the object, whatever happens to the key meanwhile
            return self.client.get_object(Bucket=bucket, Key=rest)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "read", key) from None

    def open(self, key: str) -> BinaryIO:
        """The body of one GET (one version of the object): in memory up to SPOOL_IN_MEMORY bytes,
        above that in a temporary file on local disk (deleted when closed). A file has a descriptor,
        so readers that open files by name (DuckDB, polars' streaming scan) read it as they read a
        folder lake's file (`TableVersion.local_path`) instead of the whole object and its
        decompressed columns being held in memory."""
        bucket, rest = _split(key)
        handle: BinaryIO | None = None
        try:
            response = self.client.get_object(Bucket=bucket, Key=rest)
            if response.get("ContentLength", 0) <= SPOOL_IN_MEMORY:
                return io.BytesIO(response["Body"].read())
            handle = self._temporary(key, tempfile.TemporaryFile, prefix="mochi-s3-")
            for chunk in response["Body"].iter_chunks(chunk_size=MB):
                self._temporary(key, handle.write, chunk)
            # readers given the file descriptor read the file, not this object's buffer
            self._temporary(key, handle.flush)
            handle.seek(0)
            return handle
        except (ClientError, BotoCoreError) as exc:
            if handle is not None:
                handle.close()
            raise self._fail(exc, "read", key) from None
        except BaseException:
            if handle is not None:
                handle.close()
            raise

    def _temporary(self, key: str, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A local temporary file operation of `open`: no writable folder or a full disk is one
        LakeError naming the object and what to set."""
        try:
            return operation(*args, **kwargs)
        except OSError as exc:
            raise LakeError(
                f"{self.uri(key)}: cannot write it to a temporary file ({exc}); "
                "set TMPDIR to a writable folder with room for it"
            ) from None

    def exists(self, key: str) -> bool:
        bucket, rest = _split(key)
        try:
            self.client.head_object(Bucket=bucket, Key=rest)
            return True
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES or _status(exc) == 404:
                return False
            raise self._fail(exc, "check", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "check", key) from None

    def promote(self, src: str, dst: str) -> None:
        sbucket, srest = _split(src)
        dbucket, drest = _split(dst)
        try:
            # managed copy: one CopyObject below 5 GB, a multipart copy above; dst appears whole
            self.client.copy({"Bucket": sbucket, "Key": srest}, dbucket, drest, Config=_TRANSFER)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "copy", src) from None
        except Exception as exc:
            cause = exc.__cause__ or exc.__context__
            raise self._fail(cause if isinstance(cause, (ClientError, BotoCoreError)) else exc, "copy", src) from None

    def delete(self, keys: list[str]) -> None:
        by_bucket: dict[str, list[str]] = {}
        for key in keys:
            bucket, rest = _split(key)
            by_bucket.setdefault(bucket, []).append(rest)
        for bucket, rests in by_bucket.items():
            for i in range(0, len(rests), 1000):
                chunk = rests[i:i + 1000]
                try:
                    answer = self.client.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise self._fail(exc, "delete from", bucket) from None
                errors = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING_CODES]
                if errors:
                    first = errors[0]
                    raise LakeError(
                        f"S3 endpoint {self.endpoint}: cannot delete s3://{bucket}/{first.get('Key')}: "
                        f"{first.get('Code')} {first.get('Message', '')}".rstrip()
                    )

    def list(self, prefix: str) -> list[StoredObject]:
        bucket, rest = _split(prefix)
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=rest):
                for obj in page.get("Contents", []):
                    out.append(StoredObject(f"{bucket}/{obj['Key']}", obj["LastModified"].timestamp()))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "list", prefix) from None
        return sorted(out, key=lambda o: o.key)

    def list_dirs(self, prefix: str) -> list[str]:
        bucket, rest = _split(prefix)
        names = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=rest, Delimiter="/")
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(rest):].rstrip("/"))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "list", prefix) from None
        return sorted(n for n in names if n and not n.startswith("."))

    def clean_uploads(self, prefix: str, older_than: float) -> None:
        bucket, rest = _split(prefix)
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=rest)
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < older_than:
                        self.client.abort_multipart_upload(
                            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) in ("NotImplemented", "NoSuchUpload"):
                return
            raise self._fail(exc, "clean unfinished uploads in", prefix) from None
