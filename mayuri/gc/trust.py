"""Whether gc may believe that a folder or blob with no row is garbage.

"No row points at it" means garbage only while the database really indexes
the store. A database made after the history it should index (a lost
mayuri.db re-created, an old backup restored), or one that knows none of a
good share of the run folders, would make every run folder and blob look
like a leftover: then gc deletes no leftovers and says why.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path

from mayuri.gc.safe_fs import run_folder_names
from mayuri.store.db import Store
from mayuri.store.gc_queries import database_created_at

# More run folders than this share (and more than a couple) without a row: the database is not the index.
UNOWNED_SHARE = 0.05
UNOWNED_FEW = 2
# Clock slack between the database's date (whole seconds) and folder times.
_SLACK = 2.0


def distrust(store: Store, root: Path, known_runs: Container[str]) -> str | None:
    """Why leftovers must not be collected from this store now, or None when they may."""
    folders = list(run_folder_names(root))
    if not folders:
        return None
    advice = ("Run `mayuri doctor`; `mayuri doctor --rebuild` re-indexes the store from its run folders "
              "and blobs. No leftover folder or unreferenced blob is deleted meanwhile.")
    unowned = sum(1 for name, _ in folders if name not in known_runs)
    if unowned > UNOWNED_FEW and unowned > UNOWNED_SHARE * len(folders):
        return (f"{unowned} of {len(folders)} run folders have no record in the database: it does not "
                f"index this store. {advice}")
    created = database_created_at(store)
    oldest = min(mtime for _, mtime in folders)
    if created is not None and created > oldest + _SLACK:
        return (f"the database is younger than the oldest run folder it should index ({len(folders)} run "
                f"folders): it may have been re-created or restored from an old backup. {advice}")
    return None
