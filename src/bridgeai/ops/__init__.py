"""The local stack, SeaweedFS, the demo, and saved blocks as plain values."""
