"""The audit's sections, in report order. Each is a module with ``run(ctx: AuditContext) -> Part``; adding a
section is one new module here and one entry in :data:`SECTIONS`."""

from __future__ import annotations

from collections.abc import Callable

from synthkit.audit.context import AuditContext, Part
from synthkit.audit.sections import (
    brain_age,
    conditioning,
    diversity,
    examples,
    icn,
    memorisation,
    paired,
    realism,
    variance,
)

SECTIONS: list[tuple[str, Callable[[AuditContext], Part]]] = [
    ("realism", realism.run),
    ("diversity", diversity.run),
    ("paired", paired.run),
    ("variance", variance.run),
    ("icn", icn.run),
    ("conditioning", conditioning.run),
    ("brain_age", brain_age.run),
    ("memorisation", memorisation.run),
    ("examples", examples.run),
]
