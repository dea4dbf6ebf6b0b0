"""The model image, image digests, KServe manifests and rollout, the local target."""
