"""``bench pool-seeds`` and ``bench join-corruptions``: accuracy runs of one protocol, made into one result.

The full protocol (three seeds of 1000 / 300 frames per set) takes hours on a CPU. Each seed can run on
its own (``bench accuracy --seeds 1 --name ..._seed1``), on another day or machine, and the runs are
pooled here: each set's mean and spread are recomputed from every seed's own numbers, the targets are
checked again on the pooled means, and each run's command and machine are kept in ``pooled_from``.
Runs are pooled only when they measured the same thing: split, severities, corruptions, frames per
set, reset frames, model, the same methods with the same settings and learning rates.

Long streams split the other way: the same seeds, each run on a part of the 15 corruptions
(``bench accuracy --corruptions ...``), in parallel; ``join-corruptions`` puts the parts together as one
run over all of them (the clean set, which every part measures, must agree).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..corruptions import CORRUPTIONS
from .accuracy import SAME_FRAMES_KEYS, average_over_seeds, corruptions_of, finish
from .evaluation import FEATURES, TENT, quality_name

SAME_RUN_KEYS = ("split", "severities", "corruptions")
# what pooling and joining read of every file, and of each of its tasks
RUN_KEYS = ("split", "severities", "machine", "tasks")
TASK_KEYS = ("seeds", "methods", "results")
# what ``--update`` requires of the same frames, except the seeds (which pooling wants to differ)
SAME_TASK_KEYS = tuple(key for key in SAME_FRAMES_KEYS if key != "seeds")


def seeds_of(block: dict, label: str) -> dict[str, dict[str, dict]]:
    """method -> seed -> per-set numbers of one task's results; a one-seed run's results are that seed's."""
    by_seed = block.get("by_seed") or {}
    if by_seed and set(by_seed) == set(block["results"]):
        return by_seed
    if len(block["seeds"]) == 1:
        seed = str(block["seeds"][0])
        return {name: {seed: per_set} for name, per_set in block["results"].items()}
    raise SystemExit(f"{label}: seeds {block['seeds']} without each seed's own numbers (written before "
                     "they were kept); only one-seed runs of such files can be pooled")


def _chosen_lr(choice: dict | None):
    return None if choice is None else choice["chosen_lr"]


def _same_settings(label: str, block: dict, first_label: str, first: dict, task: str) -> None:
    """Refuses (SystemExit) runs that did not measure the same thing as the first one."""
    def differs(what, mine, theirs):
        raise SystemExit(f"{label}: {task} {what} {mine!r} differs from {first_label}'s {theirs!r}")

    for key in SAME_TASK_KEYS:
        if block.get(key) != first.get(key):
            differs(key, block.get(key), first.get(key))
    for key, method in (("tent_lr", TENT), ("features_lr", FEATURES)):
        if method in block["results"] and _chosen_lr(block.get(key)) != _chosen_lr(first.get(key)):
            differs(f"{key} (chosen)", _chosen_lr(block.get(key)), _chosen_lr(first.get(key)))
    if set(block["results"]) != set(first["results"]):
        differs("methods", sorted(block["results"]), sorted(first["results"]))
    for name, method in block["methods"].items():
        other = first["methods"][name]
        if method.get("frames_per_set") != other.get("frames_per_set"):
            differs(f"{name} frames per set", method.get("frames_per_set"), other.get("frames_per_set"))
        # settings added to the package later are missing from older files: compare the ones both record
        mine, theirs = method["config"], other["config"]
        for key in mine.keys() & theirs.keys():
            if mine[key] != theirs[key]:
                differs(f"{name} {key}", mine[key], theirs[key])


def _check_runs(runs: dict[str, dict], keys, command: str) -> tuple[str, dict]:
    """Refuses (SystemExit) fewer than two runs, or runs that differ in ``keys`` or in their tasks; returns
    the first run and its label."""
    if len(runs) < 2:
        raise SystemExit(f"{command}: give at least two result files")
    (first_label, first), *_ = runs.items()
    for label, run in runs.items():
        for key in keys:
            if run.get(key) != first.get(key):
                raise SystemExit(f"{label}: {key} {run.get(key)!r} differs from {first_label}'s {first.get(key)!r}")
        if set(run["tasks"]) != set(first["tasks"]):
            raise SystemExit(f"{label}: tasks {sorted(run['tasks'])} differ from {first_label}'s "
                             f"{sorted(first['tasks'])}")
    return first_label, first


def _averaged(per_method: dict[str, dict[str, dict]]) -> dict:
    """The results and spreads over the seeds of method -> seed -> per-set numbers, with those numbers."""
    results, spread = {}, {}
    for name, by_seed in per_method.items():
        results[name], spread[name] = average_over_seeds(by_seed)
    return {"results": results, "spread": spread, "by_seed": per_method}


def _combined(runs: dict[str, dict], command: str, tasks: dict, part_keys=("seeds",), **fields) -> dict:
    """The payload made from ``runs``: their tasks combined, each run's own ``part_keys``, command and
    machine kept in ``pooled_from``; ``fields`` are the run-level keys of the result."""
    first = next(iter(runs.values()))
    machines = list(dict.fromkeys(run["machine"] for run in runs.values()))
    return {"command": command, "profile": first.get("profile"), "seed": first.get("seed"),
            "device": first.get("device"), "machine": "; ".join(machines),
            "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **fields, "tasks": tasks,
            "pooled_from": [{"file": label, **{k: run.get(k) for k in part_keys},
                             **{k: run.get(k) for k in ("command", "machine", "created")},
                             "updates": run.get("updates", [])} for label, run in runs.items()],
            "summary": {}, "targets": []}


def pool(runs: dict[str, dict], command: str) -> dict:
    """One accuracy payload (without summary and targets) from ``runs`` (label -> payload) over disjoint seeds."""
    first_label, first = _check_runs(runs, SAME_RUN_KEYS, "pool-seeds")
    tasks = {}
    for task, base in first["tasks"].items():
        per_method: dict[str, dict[str, dict]] = {}
        rotation: dict[str, float] = {}
        methods = {name: {**m, "config": dict(m["config"])} for name, m in base["methods"].items()}
        for label, run in runs.items():
            block = run["tasks"][task]
            _same_settings(label, block, first_label, base, task)
            for name, by_seed in seeds_of(block, label).items():
                again = sorted(set(by_seed) & set(per_method.get(name, {})))
                if again:
                    raise SystemExit(f"{label}: {task} seed(s) {again} are already in an earlier file")
                per_method.setdefault(name, {}).update(by_seed)
            rotation.update(block.get("rotation_accuracy_by_seed")
                            or {str(s): block["rotation_accuracy_clean"] for s in block["seeds"]})
            for name, method in block["methods"].items():
                methods[name]["config"].update(method["config"])  # the union of what the files record
        seeds = sorted(int(s) for s in rotation)
        tasks[task] = {**base, "seeds": seeds, "methods": methods,
                       "rotation_accuracy_clean": float(np.mean(list(rotation.values()))),
                       "rotation_accuracy_by_seed": rotation, **_averaged(per_method)}
    seeds = sorted({s for block in tasks.values() for s in block["seeds"]})
    return _combined(runs, command, tasks, **{key: first[key] for key in SAME_RUN_KEYS}, seeds=seeds)


def _check_parts(runs: dict[str, dict]) -> tuple[str, ...]:
    """Refuses (SystemExit) parts that cannot be joined; returns their corruptions, in the benchmark's order."""
    first_label, first = _check_runs(runs, ("split", "severities", "seeds"), "join-corruptions")
    seen: dict[str, str] = {}
    for label, run in runs.items():
        for corruption in corruptions_of(run):
            if corruption in seen:
                raise SystemExit(f"{label}: {corruption} is already in {seen[corruption]}")
            seen[corruption] = label
        for task, block in run["tasks"].items():
            _same_settings(label, block, first_label, first["tasks"][task], task)
            if block["seeds"] != first["tasks"][task]["seeds"]:
                raise SystemExit(f"{label}: {task} seeds {block['seeds']} differ from {first_label}'s")
    return tuple(c for c in CORRUPTIONS if c in seen)


def join(runs: dict[str, dict], command: str) -> dict:
    """One accuracy payload (without summary and targets) from ``runs`` (label -> payload) over the same
    seeds and disjoint corruptions."""
    corruptions = _check_parts(runs)
    (first_label, first), *_ = runs.items()
    tasks = {}
    for task, base in first["tasks"].items():
        key = quality_name(task)
        per_method: dict[str, dict[str, dict]] = {}
        for label, run in runs.items():
            for name, by_seed in seeds_of(run["tasks"][task], label).items():
                for seed, per_set in by_seed.items():
                    joined = per_method.setdefault(name, {}).setdefault(seed, {})
                    for set_name, record in per_set.items():
                        if set_name in joined and joined[set_name][key] != record[key]:
                            raise SystemExit(f"{label}: {task} {name} seed {seed} {set_name} {key} "
                                             f"{record[key]} differs from {first_label}'s {joined[set_name][key]}: "
                                             "not the same frames")
                        joined.setdefault(set_name, record)
        tasks[task] = {**base, **_averaged(per_method)}
    fields = {k: first.get(k) for k in ("split", "severities", "seeds")}
    return _combined(runs, command, tasks, part_keys=("seeds", "corruptions"), **fields,
                     corruptions=list(corruptions))


def _missing_keys(run) -> list[str]:
    """What pooling reads that ``run`` lacks: most of it, for a file of another benchmark."""
    if not isinstance(run, dict):
        return list(RUN_KEYS)
    missing = [key for key in RUN_KEYS if key not in run]
    tasks = run.get("tasks")
    if "tasks" not in missing and not (isinstance(tasks, dict) and tasks):
        return [*missing, "task results"]
    return missing + [f"tasks.{task}.{key}" for task, block in (tasks or {}).items() for key in TASK_KEYS
                      if not isinstance(block, dict) or key not in block]


def _read_runs(paths: list[str], command: str) -> dict[str, dict]:
    runs = {}
    for path in map(Path, paths):
        try:
            runs[str(path)] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{command}: cannot read {path}: {exc}") from exc
        missing = _missing_keys(runs[str(path)])
        if missing:  # refused here, not as a KeyError deep inside
            raise ValueError(f"{path} is not a result of bench accuracy (it has no {', '.join(missing)})")
    return runs


def add_parser(kinds) -> None:
    parser = kinds.add_parser("pool-seeds", help="pool accuracy runs over different seeds into one result",
                              description=__doc__)
    parser.add_argument("files", nargs="+", help="results/*.json written by bench accuracy, one or more seeds each")
    parser.add_argument("--name", required=True, help="output file stem under results/")
    parser.set_defaults(run=main)
    parser = kinds.add_parser("join-corruptions", help="join accuracy runs over parts of the corruptions into one "
                                                       "result", description=__doc__)
    parser.add_argument("files", nargs="+", help="results/*.json written by bench accuracy --corruptions, the "
                                                 "same seeds each")
    parser.add_argument("--name", required=True, help="output file stem under results/")
    parser.set_defaults(run=main_join)


def main(args) -> int:
    finish(pool(_read_runs(args.files, "pool-seeds"), "ttt-perception " + " ".join(sys.argv[1:])), args.name)
    return 0


def main_join(args) -> int:
    finish(join(_read_runs(args.files, "join-corruptions"), "ttt-perception " + " ".join(sys.argv[1:])), args.name)
    return 0
