"""Pure rules of the operator: no I/O, called by the reconciler and by tests directly."""
