"""market_data stage of the Mochi pipeline."""
