"""The dpkube workflow convention: an MLproject (Dioptra/MLflow style) whose entry points are DP queries.

    name: penguin
    entry_points:
      count:
        library: smartnoise-sql        # smartnoise-sql | opendp | diffprivlib | smartnoise-synth
        dataset: PENGUIN
        parameters:
          epsilon: {type: float, default: 0.1}
          delta: float                 # MLflow shorthand: a type, no default
        payload:                       # the library's Lomas payload, snake_case
          query_str: SELECT COUNT(*) AS NB_ROW FROM df
          epsilon: "{epsilon}"         # a whole-string placeholder takes the parameter's typed value
          delta: "{delta}"

A placeholder inside a longer string is replaced by the value's text. Values come from the `-P` kwargs,
else the declared default; every value is checked against its declared type. A `command:` entry point, an
unknown entry point, parameter or placeholder, or a missing value is refused at submission.

The project file is untrusted: YAML aliases are refused (a few hundred bytes of nested aliases expand to
billions of nodes) and so is nesting deeper than MAX_DEPTH. `workflow_query` does the whole reading, and
runs in the worker pool.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from dpkube.api.services.dioptra.archives import Limits, read_archive
from dpkube.engine.errors import PayloadRejected
from dpkube.models.payloads import Library

PROJECT_FILES = ("MLproject", "MLproject.yaml", "dpproject.yaml")
MAX_PROJECT_BYTES = 64 * 1024
MAX_ENTRY_POINTS = 64
MAX_PARAMETERS = 64
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists in a project file (the example needs 5)."""
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
TYPES = ("string", "str", "path", "uri", "float", "number", "int", "integer", "bool", "boolean")


class WorkflowError(PayloadRejected):
    """The workflow cannot give a DP query; the message says why (an engine error: it crosses the pool)."""


class ProjectLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with bounded nesting: every node is written out once."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise WorkflowError("the project file uses a YAML alias (*name); write each value out instead")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise WorkflowError(f"the project file nests deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


@dataclass(frozen=True)
class ResolvedQuery:
    """One entry point with its parameters bound: what the DPQuery will run."""

    library: Library
    dataset: str
    payload: dict[str, Any]
    parameters: dict[str, Any]
    plugins: list[str] = field(default_factory=list)


def find_project(files: dict[str, bytes]) -> tuple[str, dict[str, Any]]:
    """(path, parsed document) of the project file in the shallowest directory that holds one."""
    candidates = sorted((p for p in files if posixpath.basename(p) in PROJECT_FILES),
                        key=lambda p: (p.count("/"), PROJECT_FILES.index(posixpath.basename(p)), p))
    if not candidates:
        raise WorkflowError(f"the workflow archive has no project file ({', '.join(PROJECT_FILES)})")
    path = candidates[0]
    content = files[path]
    if len(content) > MAX_PROJECT_BYTES:
        raise WorkflowError(f"{path} is larger than {MAX_PROJECT_BYTES} bytes")
    return path, parse_project(content)


def workflow_query(archive: bytes, limits: Limits, entry_point: str, kwargs: dict[str, str]) -> ResolvedQuery:
    """The query an uploaded workflow's entry point describes: the archive read, its project parsed and
    resolved (a worker pool job: all of it is CPU work on untrusted bytes)."""
    _, project = find_project(read_archive(archive, limits))
    return resolve(project, entry_point, kwargs)


def parse_project(content: bytes) -> dict[str, Any]:
    try:
        document = yaml.load(content.decode("utf-8"), Loader=ProjectLoader)
    except (yaml.YAMLError, ValueError) as exc:
        raise WorkflowError(f"the project file is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("entry_points"), dict):
        raise WorkflowError("the project file needs a mapping `entry_points`")
    if len(document["entry_points"]) > MAX_ENTRY_POINTS:
        raise WorkflowError(f"the project file has more than {MAX_ENTRY_POINTS} entry points")
    return document


def resolve(project: dict[str, Any], entry_point: str, kwargs: dict[str, str]) -> ResolvedQuery:
    """The entry point's query with `kwargs` (strings) and the defaults bound, typed and substituted."""
    entry = project["entry_points"].get(entry_point)
    if not isinstance(entry, dict):
        raise WorkflowError(f"unknown entry point {entry_point!r}")
    if "command" in entry:
        raise WorkflowError(f"entry point {entry_point!r} is a shell command; dpkube runs only DP queries")
    try:
        library = Library(str(entry.get("library")))
    except ValueError:
        raise WorkflowError(f"entry point {entry_point!r}: library must be one of "
                            f"{', '.join(lib.value for lib in Library)}") from None
    dataset, payload = entry.get("dataset"), entry.get("payload")
    if not isinstance(dataset, str) or not dataset:
        raise WorkflowError(f"entry point {entry_point!r}: `dataset` must be a name")
    if not isinstance(payload, dict):
        raise WorkflowError(f"entry point {entry_point!r}: `payload` must be a mapping")
    plugins = entry.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins) or len(plugins) > 8:
        raise WorkflowError(f"entry point {entry_point!r}: `plugins` must be a list of at most 8 package names")
    parameters = _bind(_declared(entry.get("parameters") or {}), kwargs)
    return ResolvedQuery(library, _fill(dataset, parameters), _fill(payload, parameters), parameters, plugins)


def _declared(parameters: Any) -> dict[str, tuple[str, Any]]:
    """name -> (type, default or ...), from `{type, default}` mappings or the `name: type` shorthand."""
    if not isinstance(parameters, dict) or len(parameters) > MAX_PARAMETERS:
        raise WorkflowError(f"`parameters` must be a mapping of at most {MAX_PARAMETERS} names")
    declared: dict[str, tuple[str, Any]] = {}
    for name, spec in parameters.items():
        if not isinstance(name, str) or not _PLACEHOLDER.fullmatch("{" + name + "}"):
            raise WorkflowError(f"parameter name {name!r} is not an identifier")
        spec = {"type": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict):
            raise WorkflowError(f"parameter {name!r}: give a type, or a mapping with `type` and `default`")
        kind = str(spec.get("type", "string"))
        if kind not in TYPES:
            raise WorkflowError(f"parameter {name!r}: type {kind!r} is not one of {', '.join(TYPES)}")
        declared[name] = (kind, spec.get("default", ...))
    return declared


def _bind(declared: dict[str, tuple[str, Any]], kwargs: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(declared))
    if unknown:
        raise WorkflowError(f"undeclared parameter(s): {', '.join(unknown)}")
    bound: dict[str, Any] = {}
    for name, (kind, default) in declared.items():
        value = kwargs.get(name, default)
        if value is ...:
            raise WorkflowError(f"parameter {name!r} has no value and no default")
        bound[name] = typed(name, kind, value)
    return bound


def typed(name: str, kind: str, value: Any) -> Any:
    """`value` (a `-P` string or a YAML default) as the declared type, or WorkflowError."""
    try:
        if kind in ("float", "number"):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        if kind in ("int", "integer"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind in ("bool", "boolean"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _TRUE | _FALSE:
                raise ValueError
            return text in _TRUE
        if isinstance(value, (dict, list)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"parameter {name!r}: {value!r} is not a {kind}") from None


def _fill(template: Any, parameters: dict[str, Any]) -> Any:
    """The template with `{name}` placeholders bound; an unknown placeholder is an error."""
    if isinstance(template, dict):
        return {key: _fill(value, parameters) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, parameters) for value in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return parameters[_known(whole.group(1), parameters)]
    return _PLACEHOLDER.sub(lambda m: str(parameters[_known(m.group(1), parameters)]), template)


def _known(name: str, parameters: dict[str, Any]) -> str:
    if name not in parameters:
        raise WorkflowError(f"placeholder {{{name}}} names no declared parameter")
    return name
