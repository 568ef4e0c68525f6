"""Untrusted uploads (workflows, plugin packages): read in memory with bounds, never extracted to disk.

Only regular files and directories are accepted; links, devices, absolute paths and `..` are refused,
and both the number of members and the uncompressed bytes are capped before anything is read.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zipfile
from dataclasses import dataclass


class ArchiveError(ValueError):
    """The upload is not an archive we accept; the message says why."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one upload: its bytes, its members, and what it unpacks to."""

    max_upload: int = 512 * 1024
    max_members: int = 256
    max_total: int = 4 * 1024 * 1024
    max_file: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


def _clean(name: str) -> str:
    """The member's relative path, or ArchiveError for an absolute or escaping one."""
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"absolute or non-POSIX path in the archive: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"path traversal in the archive: {name!r}")
    return posixpath.join(*parts) if parts else ""


def read_archive(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Every regular file of a tar (any compression) or zip archive: relative path -> content."""
    if len(data) > limits.max_upload:
        raise ArchiveError(f"the archive is larger than {limits.max_upload} bytes")
    if zipfile.is_zipfile(io.BytesIO(data)):
        return _read_zip(data, limits)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = []
            for member in archive:
                members.append(member)
                if len(members) > limits.max_members:
                    raise ArchiveError(f"the archive has more than {limits.max_members} members")
            _check_sizes([(m.name, m.size) for m in members if m.isfile()], limits)
            files: dict[str, bytes] = {}
            for member in members:
                path = _clean(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise ArchiveError(f"only regular files are accepted, not {member.name!r}")
                extracted = archive.extractfile(member)
                if extracted is None or not path:
                    raise ArchiveError(f"unreadable member {member.name!r}")
                files[path] = _bounded(member.name, extracted.read(limits.max_file + 1), limits)
            return files
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError("not a tar or zip archive") from None


def _read_zip(data: bytes, limits: Limits) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_members:
                raise ArchiveError(f"the archive has more than {limits.max_members} members")
            _check_sizes([(i.filename, i.file_size) for i in infos if not i.is_dir()], limits)
            files: dict[str, bytes] = {}
            for info in infos:
                path = _clean(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if info.is_dir():
                    continue
                if mode not in (0, 0o100000):
                    raise ArchiveError(f"only regular files are accepted, not {info.filename!r}")
                with archive.open(info) as member:
                    files[path] = _bounded(info.filename, member.read(limits.max_file + 1), limits)
            return files
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
        raise ArchiveError(f"unreadable zip archive: {exc}") from None


def _check_sizes(sizes: list[tuple[str, int]], limits: Limits) -> None:
    if sum(size for _, size in sizes) > limits.max_total:
        raise ArchiveError(f"the archive unpacks to more than {limits.max_total} bytes")
    for name, size in sizes:
        if size > limits.max_file:
            raise ArchiveError(f"{name!r} is larger than {limits.max_file} bytes")


def _bounded(name: str, content: bytes, limits: Limits) -> bytes:
    """The content, unless it is longer than its header claimed and over the limit."""
    if len(content) > limits.max_file:
        raise ArchiveError(f"{name!r} is larger than {limits.max_file} bytes")
    return content
