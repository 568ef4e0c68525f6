"""The client is usable on a laptop without the DP libraries: importing it loads none of them."""

import subprocess
import sys


def test_importing_the_client_loads_no_dp_library_nor_pandas() -> None:
    code = ("import sys, dpkube.client; "
            "print(sorted(m for m in ('opendp', 'snsql', 'snsynth', 'diffprivlib', 'pandas', 'torch') "
            "if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
