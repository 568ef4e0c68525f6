"""Custom task plugin packages: where they are stored, and the names both the facade and the operator use.

A package is one ConfigMap in the operator's namespace (one key per `.py` file). Query pods that name a
package get a read-only copy mounted; the runner never imports it (only allowlisted DP libraries run).
"""

from __future__ import annotations

import hashlib

COLLECTION_LABEL = "dpkube.io/dioptra-collection"
CUSTOM = "dioptra_custom"
NAME_ANNOTATION = "dpkube.io/dioptra-plugin-name"
MOUNT_ROOT = "/opt/dpkube/plugins"


def package_config_map(name: str) -> str:
    """The ConfigMap holding a custom package (names may hold characters object names cannot)."""
    return f"plugin-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def package_copy(name: str) -> str:
    """The copy of a package's ConfigMap in a query's namespace."""
    return f"dpkube-{package_config_map(name)}"
