"""multipart/form-data, parsed from the (already size-limited) body with the standard library.

Dioptra's client posts its job and plugin forms this way; parsing here spares a dependency for two routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message


class FormError(ValueError):
    """The body is not a multipart form."""


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Part name -> (file name, content)."""


def _header_params(value: str) -> Message:
    message = Message()
    message["content-type"] = value
    return message


def parse_form(content_type: str, body: bytes) -> Form:
    """Fields (UTF-8 text) and files of a multipart/form-data body; the first part of a name wins."""
    header = _header_params(content_type)
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise FormError("expected a multipart/form-data body")
    form = Form()
    delimiter = b"--" + boundary.encode("latin-1")
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise FormError("a form part has no header")
        content = content.removesuffix(b"\r\n")
        part = Message()
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            part[key.strip()] = value.strip()
        disposition = part.get("content-disposition", "")
        params = _header_params("form-data/x; " + disposition.partition(";")[2])
        name, filename = params.get_param("name"), params.get_param("filename")
        if not isinstance(name, str) or name in form.fields or name in form.files:
            continue
        if isinstance(filename, str):
            form.files[name] = (filename, content)
        else:
            try:
                form.fields[name] = content.decode("utf-8")
            except UnicodeDecodeError:
                raise FormError(f"form field {name!r} is not UTF-8") from None
    return form
