"""BridgeAI's Prefect flows: ingestion, training, image build, deployment, drift, the pipeline.

Importing the package keeps embedded runs free of a false alarm wherever they start: Prefect's
ephemeral server sends telemetry unless ``PREFECT_SERVER_ANALYTICS_ENABLED`` is off, which
offline is an ``ERROR`` line on a healthy run. pyproject's ``[tool.prefect]`` covers commands
started in the repository root; this covers a notebook in ``notebooks/`` or a script elsewhere.
A value the user set is kept.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
