"""Errors Mochi reports to people: one clear message naming the field or file at fault."""


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
