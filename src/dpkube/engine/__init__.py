"""The DP engine: costs, releases and dummy data for the four Lomas libraries, with no Kubernetes.

Entry points: `cost.estimate_cost` (pure, metadata only: every refusal the request decides, before
any data is read), `release.run_query` (runs on a frame; what it returns is a function of DP outputs
and public facts), `dummy.dummy_frame` and `datasets.load_frame`. Each library's module is imported only when a
query uses it, so a SQL runner never loads torch.
"""
