"""Griffe extension: read this project's docstrings as mkdocstrings' Google parser expects them.

The docstrings follow the project's style (``Example:`` sections, Sphinx roles such as ``:func:`x```,
several arguments sharing one ``Args:`` line); the API pages render them without changing a docstring:

* ``Example:`` is read as an ``Examples:`` section, so its ``>>>`` lines render as code (the parser reads
  a section it does not know as an admonition, whose ``ds[0][0]`` would be taken for a link);
* a Sphinx role becomes inline code of the name (``:func:`~a.b.c``` becomes ```c```);
* ``a, b, c: text`` in ``Args:`` becomes one entry per name, each with the text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["ProjectDocstrings"]

_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:$", re.M)
_SECTION = re.compile(r"^(\s*)(\w[\w ]*):$")
_SHARED_ARGS = re.compile(r"^(\s+)(\w+(?:, \w+)+): (.*)$")


def _role(match: re.Match[str]) -> str:
    name = match.group(2)
    return f"`{name.rpartition('.')[2] if match.group(1) else name}`"


def _split_shared_args(text: str) -> str:
    lines, section = [], None
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(2)
        shared = _SHARED_ARGS.match(line) if section == "Args" else None
        if shared:
            indent, names, description = shared.groups()
            lines += [f"{indent}{name}: {description}" for name in names.split(", ")]
        else:
            lines.append(line)
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """The docstring ``text`` as mkdocstrings' Google parser reads it (see the module's docstring).

    Example:
        >>> print(rewrite("See :func:`~pkg.mod.f`.\\n\\nArgs:\\n    a, b: as for f.\\n\\nExample:\\n    f(1)"))
        See `f`.
        <BLANKLINE>
        Args:
            a: as for f.
            b: as for f.
        <BLANKLINE>
        Examples:
            f(1)
    """
    return _split_shared_args(_EXAMPLE.sub(r"\1Examples:", _ROLE.sub(_role, text)))


class ProjectDocstrings(griffe.Extension):
    """Rewrites every docstring once it is loaded (see :func:`rewrite`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
