"""The dpkube operator: admits DPQueries against budgets, runs one pod per query, charges and releases."""
