"""Task plugins: the four DP adapters are the builtins; admins upload custom packages kept in ConfigMaps."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest

from dpkube.k8s.client import core_path
from dpkube.k8s.plugins import COLLECTION_LABEL, package_config_map
from dpkube_testing.dioptra import tar_gz

API = "/api/v0"
PLUGINS = f"{API}/taskPlugin"
NOT_FOUND = {"message": "Not Found - The requested task plugin package does not exist"}
MODULES = {"p/__init__.py": b"", "p/tasks.py": b"def task():\n    return 1\n"}


def package(files: dict[str, bytes] = MODULES) -> bytes:
    return tar_gz(files)


def zipped(files: dict[str, bytes] = MODULES) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def plugin_name() -> str:
    """Custom packages are cluster-wide (system namespace): each test takes a fresh name."""
    return f"p_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def admin_caller(new_caller):
    return await new_caller(admin_user=True)


async def upload(http, who, name: str, content: bytes | None = None, collection: str | None = None):
    data = {"taskPluginName": name} | ({"collection": collection} if collection else {})
    return await http.post(f"{PLUGINS}/", data=data, headers=who.basic,
                           files={"taskPluginFile": (f"{name}.tar.gz", content or package())})


async def test_builtins_are_the_four_dp_library_adapters(http, caller) -> None:
    response = await http.get(f"{PLUGINS}/dioptra_builtins", headers=caller.basic)
    assert response.status_code == 200
    assert {p["taskPluginName"] for p in response.json()} == {"smartnoise_sql", "opendp", "diffprivlib",
                                                               "smartnoise_synth"}
    assert all(p["collection"] == "dioptra_builtins" and p["modules"] for p in response.json())


async def test_a_builtin_is_read_by_name_and_an_unknown_one_is_the_plugin_404(http, caller) -> None:
    found = await http.get(f"{PLUGINS}/dioptra_builtins/opendp", headers=caller.basic)
    assert found.json() == {"taskPluginName": "opendp", "collection": "dioptra_builtins", "modules": ["opendp.py"]}
    missing = await http.get(f"{PLUGINS}/dioptra_builtins/tensorflow", headers=caller.basic)
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND)


async def test_an_admin_uploads_a_package_and_gets_its_flattened_modules(http, admin_caller) -> None:
    name = plugin_name()
    response = await upload(http, admin_caller, name)
    assert response.status_code == 200
    body = response.json()
    assert body["taskPluginName"] == name and body["collection"] == "dioptra_custom"
    assert set(body["modules"]) == {"__init__.py", "tasks.py"}


async def test_a_package_is_a_labelled_configmap_in_the_system_namespace(http, admin_caller, admin,
                                                                          system_namespace) -> None:
    name = plugin_name()
    await upload(http, admin_caller, name)
    stored = await admin.get(core_path("configmaps", system_namespace, package_config_map(name)))
    assert stored["metadata"]["labels"][COLLECTION_LABEL] == "dioptra_custom"
    assert set(stored["binaryData"]) == {"__init__.py", "tasks.py"}


async def test_a_zip_package_is_accepted(http, admin_caller) -> None:
    response = await upload(http, admin_caller, plugin_name(), zipped())
    assert response.status_code == 200 and set(response.json()["modules"]) == {"__init__.py", "tasks.py"}


async def test_uploading_is_admin_only(http, caller) -> None:
    response = await upload(http, caller, plugin_name())
    assert response.status_code == 403 and response.json()["message"].startswith("Forbidden - ")


async def test_a_second_upload_of_a_name_is_400_with_dioptras_message(http, admin_caller) -> None:
    name = plugin_name()
    await upload(http, admin_caller, name)
    response = await upload(http, admin_caller, name)
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Bad Request - The names of one or more of the uploaded task plugin packages conflicts")


async def test_uploading_to_the_builtin_collection_is_a_form_error(http, admin_caller) -> None:
    response = await upload(http, admin_caller, plugin_name(), collection="dioptra_builtins")
    assert response.status_code == 400
    assert response.json()["message"] == ("Bad Request - The task plugin upload form contains invalid parameters. "
                                          "Please verify and resubmit.")


async def test_a_package_escaping_its_directory_is_a_form_error(http, admin_caller) -> None:
    response = await upload(http, admin_caller, plugin_name(), package({"../evil.py": b"import os"}))
    assert response.status_code == 400 and "traversal" in response.json()["detail"]


async def test_a_custom_package_is_read_listed_and_listed_after_the_builtins(http, admin_caller, caller) -> None:
    name = plugin_name()
    uploaded = (await upload(http, admin_caller, name)).json()
    assert (await http.get(f"{PLUGINS}/dioptra_custom/{name}", headers=caller.basic)).json() == uploaded
    assert uploaded in (await http.get(f"{PLUGINS}/dioptra_custom/", headers=caller.basic)).json()
    everything = (await http.get(f"{PLUGINS}/", headers=caller.basic)).json()
    assert [p["collection"] for p in everything[:4]] == ["dioptra_builtins"] * 4 and uploaded in everything[4:]


async def test_deleting_names_the_package_once_then_nothing(http, admin_caller, caller) -> None:
    name = plugin_name()
    await upload(http, admin_caller, name)
    first = await http.delete(f"{PLUGINS}/dioptra_custom/{name}", headers=admin_caller.basic)
    again = await http.delete(f"{PLUGINS}/dioptra_custom/{name}", headers=admin_caller.basic)
    assert first.json() == {"status": "Success", "collection": "dioptra_custom", "taskPluginName": [name]}
    assert (again.status_code, again.json()["taskPluginName"]) == (200, [])
    gone = await http.get(f"{PLUGINS}/dioptra_custom/{name}", headers=caller.basic)
    assert (gone.status_code, gone.json()) == (404, NOT_FOUND)


async def test_deleting_is_admin_only(http, admin_caller, caller) -> None:
    name = plugin_name()
    await upload(http, admin_caller, name)
    response = await http.delete(f"{PLUGINS}/dioptra_custom/{name}", headers=caller.basic)
    assert response.status_code == 403


async def test_collection_routes_answer_with_a_trailing_slash_too(http, caller) -> None:
    with_slash = await http.get(f"{PLUGINS}/dioptra_builtins/", headers=caller.basic)
    assert with_slash.status_code == 200 and len(with_slash.json()) == 4


async def test_a_wrong_method_is_a_json_405_message(http, caller) -> None:
    response = await http.patch(f"{PLUGINS}/dioptra_builtins", headers=caller.basic)
    assert response.status_code == 405 and response.json()["message"].startswith("Method Not Allowed - ")
