"""SEC EDGAR filings of equity tickers, and the trade lens of filing days."""
