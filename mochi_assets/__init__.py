"""Mochi: a backtest platform as a Dagster code location (see definitions.py)."""
