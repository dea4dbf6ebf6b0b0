"""Drift monitoring: statistics, the Evidently report, report storage."""
