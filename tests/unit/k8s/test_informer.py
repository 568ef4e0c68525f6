"""The cache keeps the latest version of each object, whichever way it arrived (watch or read-through)."""

from __future__ import annotations

from dpkube.k8s.informer import Informer, newer


def obj(name: str, version: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": version}}


def test_a_higher_resource_version_is_newer() -> None:
    assert newer(obj("a", "11"), obj("a", "9"))
    assert not newer(obj("a", "9"), obj("a", "11"))


def test_anything_is_newer_than_nothing() -> None:
    assert newer(obj("a", "1"), None)


def test_a_read_through_never_replaces_a_later_watched_version() -> None:
    informer = Informer(client=None, path="/x")  # type: ignore[arg-type]
    informer.objects["a"] = obj("a", "20")
    informer.put(obj("a", "15"))
    assert informer.objects["a"]["metadata"]["resourceVersion"] == "20"
    informer.put(obj("a", "25"))
    assert informer.objects["a"]["metadata"]["resourceVersion"] == "25"


def test_an_informer_is_not_synced_before_its_first_list() -> None:
    assert not Informer(client=None, path="/x").synced  # type: ignore[arg-type]


def test_a_transform_keeps_only_what_readers_need() -> None:
    informer = Informer(client=None, path="/x", transform=lambda o: {"metadata": o["metadata"], "kept": True})  # type: ignore[arg-type]
    informer.put({**obj("a", "3"), "spec": {"large": "x" * 1000}})
    assert informer.objects["a"] == {"metadata": {"name": "a", "resourceVersion": "3"}, "kept": True}


def test_a_transform_that_keeps_nothing_drops_the_object() -> None:
    informer = Informer(client=None, path="/x", transform=lambda o: None)  # type: ignore[arg-type]
    informer.objects["a"] = obj("a", "3")
    informer.put(obj("a", "4"))
    assert "a" not in informer.objects
