"""Validation stage: walk-forward of the scenario's trader selection and robustness of its top traders."""
