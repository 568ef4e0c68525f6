"""One distribution, one import namespace, and no folder that shadows the standard library."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_operator_folder_does_not_shadow_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import operator, dpkube.models.kinds; print(operator.__file__)"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    assert "site-packages" not in out and out.strip().endswith("operator.py")
    assert not out.startswith(str(REPO))


def test_wheel_holds_one_dpkube_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("dpkube-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.startswith("dpkube-")}
    assert top_level == {"dpkube"}
    assert "dpkube/__init__.py" not in names
    assert "dpkube/models/kinds.py" in names
    assert "dpkube/controlplane/local.py" in names
