"""Privacy budgets: the ledger of a grant and its rules."""
