"""Single-layer image archives in `docker save` format, as `ctr images import` reads them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from dpkube.cluster.archive import File, SingleLayerImage


def written(tmp_path: Path) -> dict[str, bytes]:
    """The archive of a one-file image, as {member name: bytes}."""
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF pretend")
    image = SingleLayerImage("registry.k8s.io/pause:3.10", (File("/usr/bin/pause", binary),), ("/usr/bin/pause",))
    with tarfile.open(image.write(tmp_path / "pause.tar")) as archive:
        return {member.name: archive.extractfile(member).read() for member in archive.getmembers()}


def test_the_manifest_names_the_image_its_config_and_its_layer(tmp_path: Path) -> None:
    members = written(tmp_path)
    (entry,) = json.loads(members["manifest.json"])
    assert entry["RepoTags"] == ["registry.k8s.io/pause:3.10"]
    assert set(members) == {"manifest.json", entry["Config"], *entry["Layers"]}


def test_the_config_carries_the_layers_digest_and_the_command(tmp_path: Path) -> None:
    members = written(tmp_path)
    (entry,) = json.loads(members["manifest.json"])
    config = json.loads(members[entry["Config"]])
    layer = members[entry["Layers"][0]]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/usr/bin/pause"]
    assert config["config"]["User"] == "65532:65532"


def test_the_layer_holds_the_file_executable_below_its_folders(tmp_path: Path) -> None:
    members = written(tmp_path)
    (entry,) = json.loads(members["manifest.json"])
    with tarfile.open(fileobj=io.BytesIO(members[entry["Layers"][0]])) as layer:
        assert [(m.name, m.isdir()) for m in layer.getmembers()] == [
            ("usr", True), ("usr/bin", True), ("usr/bin/pause", False)]
        assert layer.getmember("usr/bin/pause").mode == 0o755
        assert layer.extractfile("usr/bin/pause").read() == b"\x7fELF pretend"
