"""Data ingestion and versioning: download, validation, cleaning, split, DVC, git."""
