"""Errors Mochi reports to people: one clear message naming the field or file at fault."""

import socket


class MochiError(Exception):
    """Base of every error Mochi reports to a user (the CLI prints it without a traceback)."""


class RequestError(MochiError):
    """A backtest request document is invalid; the message names each bad field."""


class BarsError(MochiError):
    """Bars (imported file, provider answer) are unusable; the message names the file or source."""


class LakeError(MochiError):
    """The lake (local folder or S3 API) cannot be read or written."""


class ProviderError(MochiError):
    """A market data provider cannot deliver the bars asked for."""


class ProviderUnavailable(ProviderError):
    """The provider kept failing in ways that may pass (5xx, timeouts, rate limits): worth a retry later."""


def host_does_not_resolve(reason: object) -> bool:
    """Whether a connection failed because the resolver says the host name does not exist
    (getaddrinfo's EAI_NONAME: a mistyped URL, or a machine without DNS). No retry fixes that;
    EAI_AGAIN, a resolver that did not answer, may pass and is not this."""
    return isinstance(reason, socket.gaierror) and reason.errno == socket.EAI_NONAME
