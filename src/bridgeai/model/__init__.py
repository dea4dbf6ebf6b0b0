"""The house-price model, its fast booster, its MLflow pyfunc and where it comes from."""
