"""Image archives written without an engine: a single-layer image in `docker save` format, which
`ctr images import` reads. The pause and CoreDNS images are made this way from binaries built here."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class File:
    """One file of the image's only layer."""

    path: str
    source: Path
    mode: int = 0o755


@dataclass(frozen=True)
class SingleLayerImage:
    """An image of a few static files and a command, run as `user`."""

    reference: str
    files: tuple[File, ...]
    entrypoint: tuple[str, ...]
    user: str = "65532:65532"
    env: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def write(self, target: Path) -> Path:
        """The `docker save` archive of this image at `target`."""
        layer = _layer(self.files)
        layer_digest = hashlib.sha256(layer).hexdigest()
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": list(self.entrypoint), "User": self.user, "Env": list(self.env),
                       "Labels": self.labels, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
            "history": [{"created_by": "dpkube.cluster.archive"}],
        }, sort_keys=True).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [self.reference],
                                "Layers": [f"{layer_digest}/layer.tar"]}]).encode()
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w") as archive:
            _add(archive, config_name, config)
            _add(archive, f"{layer_digest}/layer.tar", layer)
            _add(archive, "manifest.json", manifest)
        return target


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))


def _layer(files: tuple[File, ...]) -> bytes:
    """A layer tarball: the files and their parent folders, owned by root, with fixed times (reproducible)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        folders = sorted({str(Path(f.path.lstrip("/")).parents[i]) for f in files
                          for i in range(len(Path(f.path.lstrip("/")).parents) - 1)})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            layer.addfile(info)
        for file in sorted(files, key=lambda f: f.path):
            _add(layer, file.path.lstrip("/"), file.source.read_bytes(), file.mode)
    return buffer.getvalue()
