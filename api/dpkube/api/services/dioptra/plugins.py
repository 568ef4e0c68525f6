"""Task plugins: the builtin collection is the four DP library adapters; custom packages live in ConfigMaps.

A custom package is code the DP guarantee would have to trust, so only admins upload or delete one, and
it is stored (one ConfigMap per package, one key per `.py`) and mounted read-only into the pods of the
queries that name it (`plugins:` of a workflow entry point), never imported by the runner.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from typing import Any

from dpkube.api.auth import Identity
from dpkube.api.errors import DioptraTooLarge
from dpkube.api.services.compute import Compute
from dpkube.api.services.dioptra import messages
from dpkube.api.services.dioptra.archives import DEFAULT_LIMITS, ArchiveError, Limits, read_archive
from dpkube.api.services.dioptra.forms import Form
from dpkube.api.services.dioptra.records import ORIGIN_LABEL
from dpkube.api.services.retry import retrying
from dpkube.engine.errors import PayloadRejected
from dpkube.k8s.client import Conflict, KubeClient, NotFound, core_path
from dpkube.k8s.plugins import COLLECTION_LABEL, CUSTOM, NAME_ANNOTATION, package_config_map

BUILTINS = "dioptra_builtins"
MODULES_ANNOTATION = "dpkube.io/dioptra-modules"
MAX_STORED_BYTES = 768 * 1024
"""The `.py` files of one package, before base64: a ConfigMap holds about 1 MiB."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.py$")

BUILTIN_PLUGINS: dict[str, list[str]] = {
    "smartnoise_sql": ["smartnoise_sql.py"],
    "opendp": ["opendp.py"],
    "diffprivlib": ["diffprivlib.py"],
    "smartnoise_synth": ["smartnoise_synth.py"],
}
"""The DP library adapters (`dpkube.engine.libraries.<name>`), read-only, shipped with the platform."""


def _wire(name: str, collection: str, modules: list[str]) -> dict[str, Any]:
    return {"taskPluginName": name, "collection": collection, "modules": modules}


def package_modules(archive: bytes, limits: Limits) -> dict[str, bytes]:
    """The `.py` files of a package archive, flattened to their base names (Dioptra's layout); a worker
    pool job."""
    modules: dict[str, bytes] = {}
    for path, content in read_archive(archive, limits).items():
        base = posixpath.basename(path)
        if not base.endswith(".py"):
            continue
        if not _MODULE.match(base):
            raise ArchiveError(f"{path!r} is not a Python module name")
        if base in modules and modules[base] != content:
            raise ArchiveError(f"two different modules are named {base!r}")
        modules[base] = content
    if not modules:
        raise ArchiveError("the package holds no .py module")
    return modules


class Plugins:
    """Lists both collections; uploads, reads and deletes custom packages in the system namespace."""

    def __init__(self, client: KubeClient, namespace: str, compute: Compute, limits: Limits = DEFAULT_LIMITS) -> None:
        self.client = client
        self.namespace = namespace
        self.compute = compute
        self.limits = limits

    def builtins(self) -> list[dict[str, Any]]:
        return [_wire(name, BUILTINS, modules) for name, modules in BUILTIN_PLUGINS.items()]

    def builtin(self, name: str) -> dict[str, Any]:
        if name not in BUILTIN_PLUGINS:
            raise messages.not_found("task plugin package")
        return _wire(name, BUILTINS, BUILTIN_PLUGINS[name])

    async def custom(self) -> list[dict[str, Any]]:
        items = await retrying(lambda: self.client.list_all(core_path("configmaps", self.namespace),
                                                            label_selector=f"{COLLECTION_LABEL}={CUSTOM}"))
        plugins = [self._from_config_map(item) for item in items]
        return sorted(plugins, key=lambda plugin: plugin["taskPluginName"])

    async def get_custom(self, name: str) -> dict[str, Any]:
        found = await self._config_map(name)
        if found is None:
            raise messages.not_found("task plugin package")
        return self._from_config_map(found)

    async def all(self) -> list[dict[str, Any]]:
        return self.builtins() + await self.custom()

    async def upload(self, caller: Identity, form: Form) -> dict[str, Any]:
        name = form.fields.get("taskPluginName", "")
        collection = form.fields.get("collection") or CUSTOM
        if not _NAME.match(name):
            raise messages.invalid_plugin_form("taskPluginName must be a Python identifier of at most 63 characters")
        if collection != CUSTOM:
            raise messages.invalid_plugin_form(f"only the {CUSTOM} collection takes uploads")
        if "taskPluginFile" not in form.files:
            raise messages.invalid_plugin_form("missing: taskPluginFile")
        archive = form.files["taskPluginFile"][1]
        if len(archive) > self.limits.max_upload:
            raise DioptraTooLarge(f"Payload Too Large - The package is larger than {self.limits.max_upload} bytes.")
        try:
            modules: dict[str, bytes] = await self.compute.run(caller.user, package_modules, archive, self.limits)
        except PayloadRejected as exc:
            raise messages.invalid_plugin_form(exc.message) from None
        if sum(len(content) for content in modules.values()) > MAX_STORED_BYTES:
            raise DioptraTooLarge(f"Payload Too Large - The package's modules exceed {MAX_STORED_BYTES} bytes.")
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": package_config_map(name), "namespace": self.namespace,
                         "labels": {COLLECTION_LABEL: CUSTOM, ORIGIN_LABEL: "dioptra"},
                         "annotations": {NAME_ANNOTATION: name, MODULES_ANNOTATION: json.dumps(list(modules))}},
            "binaryData": {module: base64.b64encode(content).decode() for module, content in modules.items()},
        }
        try:
            created = await retrying(lambda: self.client.create(core_path("configmaps", self.namespace), body))
        except Conflict:
            raise messages.duplicate_plugin() from None
        return self._from_config_map(created)

    async def delete(self, name: str) -> dict[str, Any]:
        """Dioptra answers success either way; the list names what was deleted."""
        found = await self._config_map(name)
        deleted: list[str] = []
        if found is not None:
            try:
                await self.client.delete(core_path("configmaps", self.namespace, found["metadata"]["name"]),
                                         uid=found["metadata"]["uid"])
                deleted = [name]
            except NotFound:
                pass
        return {"status": "Success", "collection": CUSTOM, "taskPluginName": deleted}

    async def _config_map(self, name: str) -> dict[str, Any] | None:
        if not _NAME.match(name):
            return None
        try:
            found = await retrying(lambda: self.client.get(core_path("configmaps", self.namespace,
                                                                     package_config_map(name))))
        except NotFound:
            return None
        notes = found["metadata"].get("annotations") or {}
        labels = found["metadata"].get("labels") or {}
        return found if notes.get(NAME_ANNOTATION) == name and labels.get(COLLECTION_LABEL) == CUSTOM else None

    @staticmethod
    def _from_config_map(config_map: dict[str, Any]) -> dict[str, Any]:
        notes = config_map["metadata"].get("annotations") or {}
        try:
            modules = json.loads(notes.get(MODULES_ANNOTATION, "[]"))
        except ValueError:
            modules = []
        return _wire(notes.get(NAME_ANNOTATION, ""), CUSTOM,
                     modules or sorted((config_map.get("binaryData") or {}).keys()))
