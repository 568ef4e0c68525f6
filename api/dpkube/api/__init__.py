"""The REST facade: the Lomas 0.3 API over DPQuery objects, budget grants and Datasets; no state of its own."""
