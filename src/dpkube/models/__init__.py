"""Pydantic models: the one schema behind the CRDs, the REST bodies and the runner's input."""
