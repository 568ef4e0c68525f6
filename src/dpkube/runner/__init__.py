"""The per-query pod: read one RunnerInput, run it through the engine, write one RunnerOutput.

`python -m dpkube.runner --input FILE [--output FILE] [--warm]`; see `__main__` for exit codes.
"""
