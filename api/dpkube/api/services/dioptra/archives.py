"""Untrusted uploads (workflows, plugin packages): read in memory with bounds, never extracted to disk.

Only regular files and directories are accepted; links, devices, absolute paths and `..` are refused.
Members are counted and their sizes checked from their headers before their content is read, and a tar
is decompressed as a stream that fails past a hard cap on the bytes it yields, so an archive whose
header claims a terabyte is refused after reading at most the cap. Run it in the worker pool: it is
CPU work on untrusted input.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import posixpath
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, BinaryIO

from dpkube.engine.errors import PayloadRejected

TAR_BLOCK = 512
TAR_HEADER_BLOCKS = 3
"""Header blocks a member may use besides its content (an extended header and its own)."""
TAR_TRAILER = 20 * TAR_BLOCK
"""The end-of-archive blocks, padded to tar's default record."""
COMPRESSIONS: tuple[tuple[bytes, ModuleType], ...] = ((b"\x1f\x8b", gzip), (b"BZh", bz2), (b"\xfd7zXZ\x00", lzma))
"""Magic bytes of the compressions a tar may come in, and the module whose `open` reads them as a stream."""
STREAM_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError, zlib.error)


class ArchiveError(PayloadRejected):
    """The upload is not an archive we accept; the message says why (an engine error: it crosses the pool)."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one upload: its bytes, its members, and what it unpacks to."""

    max_upload: int = 512 * 1024
    max_members: int = 256
    max_total: int = 4 * 1024 * 1024
    max_file: int = 1024 * 1024

    @property
    def max_stream(self) -> int:
        """The most bytes a tar may decompress to: its members' content, their headers and the trailer."""
        return self.max_total + self.max_members * TAR_HEADER_BLOCKS * TAR_BLOCK + TAR_TRAILER


DEFAULT_LIMITS = Limits()


def _clean(name: str) -> str:
    """The member's relative path, or ArchiveError for an absolute or escaping one."""
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"absolute or non-POSIX path in the archive: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"path traversal in the archive: {name!r}")
    return posixpath.join(*parts) if parts else ""


class CappedStream:
    """A decompressing reader that refuses to yield more than `cap` bytes in total (it never asks its
    source for more than one byte past the cap, so a claimed terabyte is never inflated)."""

    def __init__(self, source: BinaryIO | Any, cap: int) -> None:
        self.source = source
        self.cap = cap
        self.yielded = 0

    def read(self, size: int | None = -1) -> bytes:
        room = self.cap - self.yielded + 1
        data = self.source.read(room if size is None or size < 0 else min(size, room))
        self.yielded += len(data)
        if self.yielded > self.cap:
            raise ArchiveError(f"the archive unpacks to more than {self.cap} bytes")
        return data


def read_archive(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Every regular file of a tar (plain, gzip, bz2 or xz) or zip archive: relative path -> content."""
    if len(data) > limits.max_upload:
        raise ArchiveError(f"the archive is larger than {limits.max_upload} bytes")
    if zipfile.is_zipfile(io.BytesIO(data)):
        return _read_zip(data, limits)
    compression = next((module for magic, module in COMPRESSIONS if data.startswith(magic)), None)
    try:
        with (io.BytesIO(data) if compression is None else compression.open(io.BytesIO(data), "rb")) as source, \
                tarfile.open(fileobj=CappedStream(source, limits.max_stream), mode="r|") as archive:  # type: ignore[call-overload]
            return _read_tar(archive, limits)
    except ArchiveError:
        raise
    except STREAM_ERRORS:
        raise ArchiveError("not a tar or zip archive") from None


def _read_tar(archive: tarfile.TarFile, limits: Limits) -> dict[str, bytes]:
    """Member by member, in stream order: each header is checked before its content is read."""
    files: dict[str, bytes] = {}
    members = total = 0
    for member in archive:
        members += 1
        if members > limits.max_members:
            raise ArchiveError(f"the archive has more than {limits.max_members} members")
        path = _clean(member.name)
        if member.isdir():
            continue
        if not member.isfile():
            raise ArchiveError(f"only regular files are accepted, not {member.name!r}")
        if member.size > limits.max_file:
            raise ArchiveError(f"{member.name!r} is larger than {limits.max_file} bytes")
        total += member.size
        if total > limits.max_total:
            raise ArchiveError(f"the archive unpacks to more than {limits.max_total} bytes")
        extracted = archive.extractfile(member)
        if extracted is None or not path:
            raise ArchiveError(f"unreadable member {member.name!r}")
        files[path] = extracted.read(member.size)
    return files


def _read_zip(data: bytes, limits: Limits) -> dict[str, bytes]:
    """Sizes from the central directory first; then each member read up to its limit, whatever it claimed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_members:
                raise ArchiveError(f"the archive has more than {limits.max_members} members")
            _check_sizes([(i.filename, i.file_size) for i in infos if not i.is_dir()], limits)
            files: dict[str, bytes] = {}
            total = 0
            for info in infos:
                path = _clean(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if info.is_dir():
                    continue
                if mode not in (0, 0o100000):
                    raise ArchiveError(f"only regular files are accepted, not {info.filename!r}")
                with archive.open(info) as member:
                    content = _bounded(info.filename, member.read(limits.max_file + 1), limits)
                total += len(content)
                if total > limits.max_total:
                    raise ArchiveError(f"the archive unpacks to more than {limits.max_total} bytes")
                files[path] = content
            return files
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, ValueError, zlib.error,
            lzma.LZMAError, EOFError) as exc:
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
