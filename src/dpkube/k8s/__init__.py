"""Thin adapters to the Kubernetes API: the client, and the few operations dpkube builds on it."""
