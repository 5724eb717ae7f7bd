"""scenarios stage of the Mochi pipeline."""
