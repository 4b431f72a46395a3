"""Real and phantom data: manifests, NIfTI IO, preprocessing into an ImageSpace, caches."""
