"""The `dpkube` command: one sub-command module per concern."""
