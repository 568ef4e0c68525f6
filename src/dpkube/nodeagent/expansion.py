"""Kubernetes `$(VAR)` expansion in env values, command and args (the kubelet's forked expansion rules).

`$(NAME)` becomes the variable's value when it is defined and stays as written when it is not;
`$$` is an escaped `$`, so `$$(NAME)` yields the literal `$(NAME)`.
"""

from __future__ import annotations

from collections.abc import Mapping


def expand(text: str, variables: Mapping[str, str]) -> str:
    out: list[str] = []
    cursor, checkpoint = 0, 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")
                cursor += 1
            elif following == "(":
                closer = text.find(")", cursor + 2)
                if closer == -1:
                    out.append("$(")
                    cursor += 1
                else:
                    name = text[cursor + 2 : closer]
                    out.append(variables.get(name, f"$({name})"))
                    cursor = closer
            else:
                out.append("$" + following)
                cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]
