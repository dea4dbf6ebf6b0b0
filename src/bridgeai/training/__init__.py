"""Fitting, evaluation, MLflow tracking, the registry and the champion gate."""
