"""Test support: builders of custom-resource bodies, waits on the real API server, platform processes."""
