"""simulation stage of the Mochi pipeline."""
