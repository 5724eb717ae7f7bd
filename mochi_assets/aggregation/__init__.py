"""aggregation stage of the Mochi pipeline."""
