"""Live trading: brokers, live-trade configurations, their export for bots, forward tracking."""
