"""reporting stage of the Mochi pipeline."""
