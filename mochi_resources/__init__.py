"""Mochi resources: settings, the lake and its IO manager, market data providers, SQL engines."""
