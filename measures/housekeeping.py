"""Removing what dead runs left behind in a home's publish folder.

A publisher writes `publish/[external/].YYYY-MM.tmp-*` and, where the atomic exchange is not
available, briefly moves the replaced publication to `.YYYY-MM.old-<pid>`; a publisher killed
meanwhile leaves them. Both are only ever created while holding the publish lock, so whoever
holds it next knows that no live publisher owns any of them: `remove_publish_leftovers`
refuses to run without that lock and removes them all.
"""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from measures import locks

log = logging.getLogger("opte.publish")

LEFTOVER = re.compile(r"^\.\d{4}-\d{2}\.(?:tmp-.+|old-\d+)$")


def remove_publish_leftovers(publish_root: Path) -> list[Path]:
    """Delete the temporary folders of dead publishers under `publish_root` (and its external/).

    Must be called holding the publish lock (measures.locks.publish_lock); returns what was removed.
    """
    publish_root = Path(publish_root)
    if not locks.held(publish_root / locks.PUBLISH_LOCK, exclusive=True):
        raise RuntimeError("remove_publish_leftovers needs the publish lock: a live publisher may own them")
    removed = []
    for folder in (publish_root, publish_root / "external"):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if LEFTOVER.match(entry.name):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    if removed:
        log.warning("removed %d folder(s) left by interrupted publications: %s", len(removed),
                    ", ".join(str(p.relative_to(publish_root)) for p in removed))
    return removed
