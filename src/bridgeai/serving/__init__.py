"""The Open Inference Protocol v2 model server."""
