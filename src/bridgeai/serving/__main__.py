"""``python -m bridgeai.serving``: the model server (the model image's entrypoint)."""

from bridgeai.serving.main import cli

cli()
