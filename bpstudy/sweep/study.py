"""The study a sweep runs: created (or resumed) with the sweep file's sampler, pruner and
objective, and frozen on the settings its trials share.

A study resumes with the objective and the settings it was created with; anything else
would mix incomparable trials in one study, its best trial and its report. The settings
are checked by the command at its set-up (`check_settings`) and by each worker before
each trial (`settings_clash`), under the workers' locks.
"""

from __future__ import annotations

from bpstudy.config.serialize import NOT_HASHED
from bpstudy.errors import BpstudyError, redact, shown
from bpstudy.sweep.locks import file_lock, lock_path, study_lock
from bpstudy.sweep.samplers import make_pruner, make_sampler
from bpstudy.sweep.spec import SweepSpec
from bpstudy.sweep.storage import SETTINGS_ATTR, journal_path, open_storage, stored

OBJECTIVE_ATTR = "bpstudy.objective"  # the metrics and directions the study was created with


def create_study(spec: SweepSpec, storage):
    import optuna

    try:
        study = stored(
            lambda: optuna.create_study(
                study_name=spec.study_name,
                storage=storage,
                sampler=make_sampler(spec),
                pruner=make_pruner(spec),
                directions=list(spec.directions),
                load_if_exists=True,
            )
        )
    except ValueError as exc:
        raise BpstudyError(f"study '{spec.study_name}': {str(exc).splitlines()[0]}") from None
    check_objective(study, spec)
    return study


def stored_attrs(storage_url: str, opened, name: str) -> dict | None:
    """The user attributes of study `name`, if the storage holds it; None for a new study.
    Nothing is made to look: a journal file that is not there holds no study."""
    if opened is None:
        if not journal_path(storage_url).is_file():
            return None
        opened = open_storage(storage_url)
    try:
        return stored(lambda: opened.get_study_user_attrs(opened.get_study_id_from_name(name)))
    except KeyError:
        return None


def check_objective(study, spec: SweepSpec) -> None:
    """A study resumes with the objective it was created with. Optuna loads a stored study
    whatever directions are asked for: a file switched to two objectives failed every
    trial at `tell`, for ever; one switched to another metric or direction labelled the
    stored values with the new name."""
    wanted = [[m, d] for m, d in zip(spec.metrics, spec.directions, strict=True)]
    was = stored(lambda: study.user_attrs).get(OBJECTIVE_ATTR)
    if was is None:  # new (or made by an older bpstudy): its directions at least
        stored_dirs = [d.name.lower() for d in study.directions]
        if stored_dirs == list(spec.directions):
            stored(lambda: study.set_user_attr(OBJECTIVE_ATTR, wanted))
            return
        was = [["its objective", d] for d in stored_dirs]
    if was != wanted:
        said = ", ".join(f"{m} ({d})" for m, d in was)
        asks = ", ".join(f"{m} ({d})" for m, d in wanted)
        raise BpstudyError(
            f"study '{spec.study_name}' optimises {said}; {spec.path.name} asks for {asks}: "
            "give the sweep another study_name (or --study-name), or use another --storage"
        )


def study_settings(spec: SweepSpec, base) -> dict:
    """What every trial of the study shares: the composed config of its fixed part (the
    file's overrides, the command line's, the single-valued params; flattened to dotted
    keys, the searched keys and the groups they choose left out), and the searched space
    (Optuna's JSON per key). Compared by value, so 1e-2 is 0.01 and restating a default
    or moving an override into the file changes nothing. How a run is shown and where it
    is logged (a tracking URI may hold a password) are not settings: the keys a config's
    hash leaves out (NOT_HASHED)."""
    from optuna.distributions import distribution_to_json

    from bpstudy.config.compose import GROUPS
    from bpstudy.config.serialize import flatten, to_dict

    chosen = tuple(f"{k}." for k in spec.space if k in GROUPS)
    config = {
        k: v
        for k, v in flatten(to_dict(base)).items()
        if k not in spec.space and not k.startswith(chosen) and not _not_a_setting(k)
    }
    space = {k: distribution_to_json(d) for k, d in spec.space.items()}
    return {"config": config, "space": space}


def _not_a_setting(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_HASHED)


def check_settings(study, spec: SweepSpec, base, storage_url: str) -> dict:
    """A study resumes with the settings it was created with. A resume with, say,
    trainer.epochs=3 where the first trials had 2 mixed incomparable trials in one study,
    its best trial and its report, without a word. Until it holds a trial, a study takes
    the settings of the command at hand (a first command stopped in its set-up, say); the
    workers check them again before each trial (another command may have set its own
    meanwhile). Returns this command's settings, for its workers to compare."""
    wanted = study_settings(spec, base)
    # under the lock the workers take a trial with: a command that sets a new study's
    # settings either comes before every trial, or sees one and compares
    lock = lock_path(storage_url, spec.study_name)
    with file_lock(lock), study_lock(storage_url, spec.study_name):
        was = stored(lambda: study.user_attrs).get(SETTINGS_ATTR)
        if (
            was is None
            or "config" not in was
            or not stored(lambda: study.get_trials(deepcopy=False))
        ):
            stored(lambda: study.set_user_attr(SETTINGS_ATTR, wanted))
            return wanted
    change = settings_change(was, wanted)
    if change:
        raise BpstudyError(
            f"study '{spec.study_name}' was run with {redact(change)}: its trials would not "
            "be comparable; give another study_name (or --study-name), or use another --storage"
        )
    return wanted


def settings_clash(study, settings: dict | None) -> str | None:
    """How the settings another command set this new study up with, after this one did
    (see check_settings), differ from `settings`; None if they do not. Its trials win."""
    was = study.user_attrs.get(SETTINGS_ATTR)
    if settings is None or not was or "config" not in was:
        return None
    return settings_change(was, settings)


def settings_change(stored: dict, wanted: dict) -> str | None:
    """The first setting in which `wanted` differs from the study's `stored` ones."""
    change = _config_change(stored["config"], wanted["config"])
    return change or _space_change(stored["space"], wanted["space"])


def _config_change(was: dict, now: dict) -> str | None:
    """The first key both configs have with another value (a key only one has came with
    another bpstudy version: its default is what the other ran with)."""
    for key, value in was.items():
        if key in now and now[key] != value:
            return f"{key}={shown(value)}, this command {key}={shown(now[key])}"
    return None


def _space_change(was: dict, now: dict) -> str | None:
    """The first param searched differently (compared as distributions, not as text)."""
    from optuna.distributions import json_to_distribution

    old = {k: json_to_distribution(v) for k, v in was.items()}
    new = {k: json_to_distribution(v) for k, v in now.items()}
    for key in [*old, *(k for k in new if k not in old)]:
        if old.get(key) != new.get(key):
            return (
                f"params.{key} {old.get(key, 'not searched')}, "
                f"this command {new.get(key, 'not searched')}"
            )
    return None
