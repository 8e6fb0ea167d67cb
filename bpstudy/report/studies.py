"""Find a study in its Optuna storage, without creating anything there.

An unknown name is the user's to fix: one line that lists the studies the storage holds
(exit 2). A journal file that does not exist is not created, nor are Optuna's tables in a
database that has none (opening either would).
"""

from __future__ import annotations

from bpstudy.errors import BpstudyError, redact
from bpstudy.sweep.storage import (
    check_url,
    holds_studies,
    is_rdb,
    journal_path,
    open_storage,
    stored,
)


class UnknownStudyError(BpstudyError):
    """No study of that name in the storage."""


def study_names(storage) -> list[str]:
    import optuna

    return sorted(stored(lambda: optuna.get_all_study_names(storage)))


def load_study(name: str, storage_url: str):
    """The study `name` in `storage_url` (journal:PATH or an RDB URL)."""
    import optuna

    where = redact(storage_url)
    check_url(storage_url)  # a bare path, a folder, a file that is no journal: say so
    if is_rdb(storage_url) and not holds_studies(storage_url):
        raise UnknownStudyError(
            f"no study '{name}': {where} holds no Optuna study (it has none of Optuna's "
            "tables), so known studies: none (run 'bpstudy sweep' with it first)"
        )
    if not is_rdb(storage_url) and not journal_path(storage_url).is_file():
        raise UnknownStudyError(
            f"no study '{name}': {where} does not exist, so known studies: none "
            "(run 'bpstudy sweep' here first, or pass --storage URL)"
        )
    storage = open_storage(storage_url)
    known = study_names(storage)
    if name not in known:
        raise UnknownStudyError(
            f"no study '{name}' in {where}; known studies: {', '.join(known) or 'none'}"
        )
    return stored(lambda: optuna.load_study(study_name=name, storage=storage))
