"""automation stage of the Mochi pipeline."""
