"""Uploaded archives are untrusted: bounded, regular files only, no escaping paths, read in memory."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile

import pytest

from dpkube.api.services.dioptra.archives import ArchiveError, CappedStream, Limits, read_archive
from dpkube.api.services.dioptra.plugins import package_modules
from dpkube_testing import hostile
from dpkube_testing.dioptra import tar_gz


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_tar_gz_gives_its_regular_files_by_relative_path() -> None:
    assert read_archive(tar_gz({"wf/MLproject": b"x", "./wf/a.py": b"y"})) == {"wf/MLproject": b"x", "wf/a.py": b"y"}


def test_a_zip_gives_its_regular_files() -> None:
    assert read_archive(zipped({"wf/MLproject": b"x"})) == {"wf/MLproject": b"x"}


@pytest.mark.parametrize("name", ["../evil", "wf/../../evil", "/etc/passwd"])
def test_escaping_paths_are_refused(name) -> None:
    with pytest.raises(ArchiveError):
        read_archive(tar_gz({name: b"x"}))


def test_escaping_paths_in_a_zip_are_refused() -> None:
    with pytest.raises(ArchiveError, match="traversal"):
        read_archive(zipped({"../evil": b"x"}))


def test_symlinks_are_refused() -> None:
    with pytest.raises(ArchiveError, match="regular files"):
        read_archive(tar_gz({"wf/MLproject": b"x"}, links={"wf/data": "/etc"}))


def test_an_upload_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(ArchiveError, match="larger than"):
        read_archive(os.urandom(2048), Limits(max_upload=1024))


def test_an_archive_unpacking_past_the_limit_is_refused() -> None:
    with pytest.raises(ArchiveError, match="unpacks to more"):
        read_archive(tar_gz({"a": b"0" * 5000, "b": b"0" * 5000}), Limits(max_total=8000))


def test_too_many_members_are_refused() -> None:
    with pytest.raises(ArchiveError, match="members"):
        read_archive(tar_gz({f"f{i}": b"" for i in range(5)}), Limits(max_members=4))


def test_garbage_is_not_an_archive() -> None:
    with pytest.raises(ArchiveError, match="not a tar or zip"):
        read_archive(b"hello, world")


def test_a_plugin_package_is_its_py_modules_flattened() -> None:
    modules = package_modules(tar_gz({"p1/__init__.py": b"", "p1/sub/tasks.py": b"x = 1", "p1/README": b"."}),
                              Limits())
    assert set(modules) == {"__init__.py", "tasks.py"}


def test_a_plugin_package_without_modules_is_refused() -> None:
    with pytest.raises(ArchiveError, match=r"no \.py"):
        package_modules(tar_gz({"p1/README": b"."}), Limits())


def test_a_member_whose_header_claims_a_terabyte_is_refused_from_its_header() -> None:
    with pytest.raises(ArchiveError, match="larger than"):
        read_archive(hostile.bz2_bomb(streams=50))


@pytest.mark.parametrize("compression", [gzip, bz2, lzma])
def test_a_claimed_terabyte_is_refused_in_every_compression(compression) -> None:
    header = tarfile.TarInfo("wf/MLproject")
    header.size = hostile.CLAIMED_BYTES
    with pytest.raises(ArchiveError, match="larger than"):
        read_archive(compression.compress(header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 2**20))


def test_a_long_name_header_claiming_a_terabyte_is_cut_off_at_the_cap() -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = hostile.CLAIMED_BYTES
    bomb = bz2.compress(header.tobuf(format=tarfile.GNU_FORMAT)) + bz2.compress(b"\0" * 2**24) * 4
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        read_archive(bomb, Limits(max_total=2**20))


def test_a_decompressing_stream_yields_at_most_one_byte_past_its_cap() -> None:
    with bz2.open(io.BytesIO(bz2.compress(b"\0" * 2**24) * 64)) as zeros:
        stream = CappedStream(zeros, cap=2**20)
        with pytest.raises(ArchiveError):
            while stream.read(2**16):
                pass
    assert stream.yielded == 2**20 + 1


def test_declared_sizes_past_the_total_are_refused_before_the_content_is_read() -> None:
    with pytest.raises(ArchiveError, match="unpacks to more"):
        read_archive(tar_gz({f"f{i}": b"0" * 3000 for i in range(3)}), Limits(max_total=8000, max_file=4000))


def test_a_zip_unpacking_past_the_limit_is_refused() -> None:
    with pytest.raises(ArchiveError, match="unpacks to more"):
        read_archive(zipped({"a": b"0" * 5000, "b": b"0" * 5000}), Limits(max_total=8000))


def test_a_zip_with_too_many_members_is_refused() -> None:
    with pytest.raises(ArchiveError, match="members"):
        read_archive(zipped({f"f{i}": b"" for i in range(5)}), Limits(max_members=4))


@pytest.mark.parametrize("compression", [gzip, bz2, lzma])
def test_a_compressed_tar_gives_its_files(compression) -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as archive:
        info = tarfile.TarInfo("wf/MLproject")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    assert read_archive(compression.compress(plain.getvalue())) == {"wf/MLproject": b"x"}
