"""The console's gettext catalogues: the .po files people translate, and the .mo files gettext reads.

Both are committed (a clean install needs no build step); `python -m console.catalogue` compiles
the .mo files again after a .po changes, and a test holds each .mo to its .po."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from console.labels import DOMAIN, TRANSLATIONS


def sources() -> list[Path]:
    """Every language's .po file."""
    return sorted(TRANSLATIONS.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def read(po: Path) -> Catalog:
    with po.open("rb") as source:
        return read_po(source, locale=po.parent.parent.name, domain=DOMAIN)


def compiled(po: Path) -> bytes:
    """The .mo a .po compiles to (fuzzy entries left out, as gettext would)."""
    out = io.BytesIO()
    write_mo(out, read(po), use_fuzzy=False)
    return out.getvalue()


def compile_all() -> list[Path]:
    """Write each .mo beside its .po; returns those written."""
    written = []
    for po in sources():
        mo = po.with_suffix(".mo")
        mo.write_bytes(compiled(po))
        written.append(mo)
    return written


if __name__ == "__main__":
    for path in compile_all():
        print(path)
