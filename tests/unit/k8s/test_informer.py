"""The cache keeps the latest version of each object, whichever way it arrived (watch or read-through)."""

from __future__ import annotations

from dpkube.k8s.informer import LISTED, Informer, newer


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


def by_user(kept: dict) -> str | None:
    return kept.get("user")


def owned(name: str, version: str, user: str | None) -> dict:
    return {**obj(name, version), "user": user}


def test_an_index_files_what_the_view_keeps_under_its_key() -> None:
    informer = Informer(client=None, path="/x", indexes={"user": by_user})  # type: ignore[arg-type]
    informer.put(owned("a", "1", "alice"))
    informer.put(owned("b", "2", "bob"))
    informer.put(owned("c", "3", "alice"))
    assert sorted(informer.indexed("user", "alice")) == ["a", "c"]
    assert informer.indexed("user", "carol") == {}


def test_an_object_whose_key_changes_moves_to_its_new_key() -> None:
    informer = Informer(client=None, path="/x", indexes={"user": by_user})  # type: ignore[arg-type]
    informer.put(owned("a", "1", "alice"))
    informer.put(owned("a", "2", "bob"))
    assert (dict(informer.indexed("user", "alice")), list(informer.indexed("user", "bob"))) == ({}, ["a"])


def test_an_object_without_a_key_or_dropped_by_the_transform_leaves_the_index() -> None:
    informer = Informer(client=None, path="/x", indexes={"user": by_user},  # type: ignore[arg-type]
                        transform=lambda o: None if o["metadata"]["resourceVersion"] == "3" else o)
    informer.put(owned("a", "1", "alice"))
    informer.put(owned("a", "2", None))
    assert informer.indexed("user", "alice") == {}
    informer.put(owned("b", "1", "bob"))
    informer.put(owned("b", "3", "bob"))
    assert informer.indexed("user", "bob") == {}
    assert "b" not in informer.objects


def test_observers_see_listed_items_whole_even_those_the_view_drops() -> None:
    informer = Informer(client=None, path="/x", transform=lambda o: None)  # type: ignore[arg-type]
    seen: list[tuple[str, dict]] = []
    informer.observe(lambda kind, o: seen.append((kind, o)))
    listed = {**obj("a", "3"), "spec": {"large": "x"}}
    assert informer._keep_listed(listed) is None
    assert seen == [(LISTED, listed)]
