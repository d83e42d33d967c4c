"""``bench report``: regenerate the generated parts of the documentation.

* docs/results.md: everything between ``<!-- results:start -->`` and ``<!-- results:end -->`` is
  rendered from the JSON files under results/ (the markers are appended under a "Results" heading
  when the file has none). Every number comes from a JSON file written by a bench command, shown
  with that command and the machine that produced it.
* README.md: the node's parameter table between ``<!-- parameters:start -->`` and
  ``<!-- parameters:end -->``, rendered from the parameter specs (``ros/parameters.py``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..ros.parameters import SPECS
from .common import results_dir
from .evaluation import FEATURES, TENT, TTT_RESET, quality_name

START = "<!-- results:start -->"
END = "<!-- results:end -->"
PARAMETERS_START = "<!-- parameters:start -->"
PARAMETERS_END = "<!-- parameters:end -->"
KINDS = ("accuracy", "gradual", "realtime", "correlation")


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_num(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _reruns(payload: dict) -> str:
    """Methods rerun later on the same frames (``bench accuracy --update``)."""
    return "".join(f" Rerun later for {', '.join(u['methods'])}: `{u['command']}`, machine {u['machine']}, run "
                   f"{u['created']}." for u in payload.get("updates", []))


def _provenance(payload: dict) -> str:
    text = (f"Command: `{payload.get('command', '?')}` (profile {payload.get('profile', '?')}, seed "
            f"{payload.get('seed', '?')}). Machine: {payload.get('machine', '?')}. Run {payload.get('created', '?')}.")
    text += _reruns(payload)
    for part in payload.get("pooled_from", []):  # runs pooled by bench pool-seeds or join-corruptions
        what = (f"Corruptions {', '.join(part['corruptions'])} (seeds {part['seeds']})" if "corruptions" in part
                else f"Seeds {part['seeds']}")
        text += (f" {what} from `{part['file']}`: `{part['command']}`, machine {part['machine']}, "
                 f"run {part['created']}.{_reruns(part)}")
    return text


def _targets(payload: dict) -> list[str]:
    return [f"- **{'PASS' if t['passed'] else 'MISS'}** {t['target']}: {t['detail']}"
            for t in payload.get("targets", [])]


def _with_spread(value: float, spread: float | None) -> str:
    return f"{value:.1f}" if spread is None else f"{value:.1f} ± {spread:.1f}"


# per classification stream (``evaluation.score_stream``); the summary keeps each as "<part>_by_severity"
STREAM_PARTS = ("error_first_tenth", "error_last_tenth")
STREAM_PART_HEADER = ["method", "first tenth", "last tenth", "whole stream"]


def stream_part_rows(summary: dict, severity: int) -> list[list]:
    """Per method that measured it (classification): the mean error over the corruptions in the first and the
    last tenth of the streams and over the whole streams, at ``severity``."""
    s, keys = str(severity), [f"{part}_by_severity" for part in STREAM_PARTS]
    return [[n, *(m[k][s] for k in keys), m["mean_by_severity"][s]]
            for n, m in summary.items() if all(k in m for k in keys)]


def render_accuracy(name: str, payload: dict) -> list[str]:
    out = [f"### Accuracy under corruption: `{name}.json`", "", _provenance(payload), ""]
    severities = payload["severities"]
    top = max(severities)
    seeds = payload.get("seeds", [payload.get("seed")])
    several = len(seeds) > 1  # one seed has no spread to show
    over = f"mean over seeds {seeds} (± the spread over seeds)" if several else f"seed {seeds[0]}"
    for task, summary in payload["summary"].items():
        block = payload["tasks"][task]
        key = "error" if task == "classifier" else "mAP"
        arrow = "lower is better" if key == "error" else "higher is better"
        out.append(f"**{task}**: {key} (%) on {block['frames_per_set']} {payload['split']} frames per set, "
                   f"{arrow}; {over}; model: {block['model']}.")
        if "rotation_accuracy_clean" in block:
            out.append(f"Rotation head accuracy on the clean frames (all four quarter turns): "
                       f"{100 * block['rotation_accuracy_clean']:.1f}%.")
        out.append("")
        out.append(md_table(["method", f"clean {key}"] + [f"mean {key}, severity {s}" for s in severities]
                            + ["steps/frame", "ms/frame"],
                            [[n, s["clean"], *[_with_spread(s["mean_by_severity"][str(v)],
                                                            s.get("spread_by_severity", {}).get(str(v))
                                                            if several else None)
                                               for v in severities], s["mean_steps"], s["ms_per_frame"]]
                             for n, s in summary.items()]))
        out.append("")
        methods = list(summary)
        out.append(f"Per corruption at severity {top}:")
        out.append("")
        out.append(md_table(["corruption"] + methods,
                            [[c] + [block["results"][m][f"{c}/{top}"][key] for m in methods]
                             for c in payload["corruptions"]]))
        out.append("")
        along = stream_part_rows(summary, top)
        if along:
            out.append(f"Mean error along the streams at severity {top} (the first and the last tenth of the "
                       f"frames each method scores; a \"first N\" row's are those of its N frames):")
            out.append("")
            out.append(md_table(STREAM_PART_HEADER, along))
            out.append("")
        for label, choice, method in (("Tent's", block.get("tent_lr"), TENT),
                                      ("Feature alignment's", block.get("features_lr"), FEATURES)):
            if choice and method in summary:  # a learning rate only where its method was measured
                val = ", ".join(f"{lr}: {v:.1f}" for lr, v in choice.get("val", {}).items()) or "none"
                out.append(f"{label} learning rate {choice['chosen_lr']:g}: {choice['criterion']}; val {key} per "
                           f"candidate: {val}.")
                out.append("")
        if block.get("reset_frames") and TTT_RESET in summary:
            out.append(f"TTT reset (10 steps of 32 copies per frame) is scored on the first {block['reset_frames']} "
                       f"frames of each set, beside mode off on the same frames.")
            out.append("")
    out += _targets(payload)
    out += ["", f"![accuracy per corruption](results/{name}.png)", ""]
    return out


def render_gradual(name: str, payload: dict) -> list[str]:
    schedule = payload["schedule"]
    out = [f"### Gradually changing severity: `{name}.json`", "", _provenance(payload), "",
           f"Error (%) per segment of {payload['segment']} frames, mean over the 15 corruptions; severity schedule "
           f"{' '.join(map(str, schedule))}.", ""]
    out.append(md_table(["method"] + [f"sev {s}" for s in schedule] + ["mean", "slope per level (1->5)"],
                        [[n, *r["mean_segments"], r["mean_error"], r["slope_per_severity"]]
                         for n, r in payload["results"].items()]))
    out.append("")
    out += _targets(payload)
    out += ["", f"![error over the stream](results/{name}.png)", ""]
    return out


def _at_rate(payload: dict) -> str:
    """On the wall clock each run's budgets are multiples of its own reference, as the file records it."""
    if not payload.get("clock", "").startswith("wall clock"):
        return ""
    own = [r["plain_inference_ms"] for r in payload["runs"] if r["budget_multiple"] > 0]
    return f"; the budgets are multiples of {payload['budget_reference']} ({min(own):.2f}-{max(own):.2f} ms)"


def render_realtime(name: str, payload: dict) -> list[str]:
    out = [f"### Real time (the stream does not wait): `{name}.json`", "", _provenance(payload), "",
           f"{payload['task']} streams, the 15 corruptions at severity 5, {payload['frames_per_stream']} frames each; "
           f"plain inference {payload['plain_inference_ms']:.2f} ms per frame back to back{_at_rate(payload)} "
           f"({payload['timing']}; {payload.get('clock', 'skip-idle clock')}); mixed precision "
           f"{'on' if payload.get('amp') else 'off'}. Dropped frames are scored with the last published output and "
           f"count as missed deadlines.", ""]
    out.append("Cost of one adaptation step as a multiple of one forward pass:")
    out.append("")
    out.append(md_table(["objective", "copies", "step ms", "step / forward", "per copy"],
                        [[c["objective"], str(c["batch_size"]), c["step_ms"], c["step_over_forward"], c["per_copy"]]
                         for c in payload["step_costs"]]))
    out.append("")
    rows, quality = [], quality_name(payload["task"])
    for r in payload["runs"]:
        lat = r["latency_ms"]
        budget = "none" if r["budget_multiple"] == 0 else f"{r['budget_multiple']:g}x ({r['budget_ms']:.2f} ms)"
        met = "-" if r["deadline_met_fraction"] is None else f"{100 * r['deadline_met_fraction']:.1f}"
        rows.append([f"{r['fps']:g}", budget, r["method"], r[quality], met, f"{100 * r['drop_fraction']:.1f}",
                     f"{r['mean_steps']:.2f}",
                     "/".join(f"{lat['predict'][p]:.1f}" for p in ("p50", "p95", "p99")),
                     "/".join(f"{lat['adapt'][p]:.1f}" for p in ("p50", "p95", "p99")),
                     f"{r['peak_memory']['mb']:.0f}"])
    memory_kind = payload["runs"][0]["peak_memory"]["kind"] if payload["runs"] else "peak memory"
    first = "error %" if quality == "error" else "mAP@0.5"
    out.append(md_table(["Hz", "budget", "method", first, "deadline met %", "dropped %", "steps",
                         "predict ms p50/p95/p99", "adapt ms p50/p95/p99", f"{memory_kind} MB"], rows))
    out.append("")
    out += _targets(payload)
    out += ["", f"![{quality} and deadlines per budget](results/{name}.png)", ""]
    return out


def render_correlation(name: str, payload: dict) -> list[str]:
    out = [f"### Theorem 1 check (gradient correlation): `{name}.json`", "", _provenance(payload), "",
           f"{len(payload['sets'])} sets (15 corruptions x severities {payload['severities']}), "
           f"{payload['frames_per_set']} frames each, {payload['data']}; model: {payload['model']}.", ""]
    out.append(md_table(["method", "Pearson r (inner product vs improvement)", "r (cosine)",
                         "r (inner product vs cross-entropy drop)", f"mean improvement ({payload['quality']} points)",
                         "paper r (CIFAR-10-C)"],
                        [[n, _num(c["pearson_r"], 2), _num(c["pearson_r_cosine"], 2), _num(c.get("pearson_r_nll"), 2),
                          c["mean_improvement"], _num(c["paper_r"], 2)] for n, c in payload["correlation"].items()]))
    out.append("")
    ssl = payload.get("self_supervision")
    if ssl:
        out.append(f"Rotation head error (chance 75%): {ssl['rotation_error_clean']:.1f}% on the clean frames, "
                   f"{ssl['rotation_error_corrupted_mean']:.1f}% on the corrupted sets on average; Pearson r between "
                   f"it and the {payload['quality']} of mode off over the sets: "
                   f"{_num(ssl['pearson_r_rotation_error_vs_off'], 2)}.")
        out.append("")
    out += _targets(payload)
    out += ["", f"![gradient inner product vs improvement](results/{name}.png)", ""]
    return out


RENDERERS = {"accuracy": render_accuracy, "gradual": render_gradual, "realtime": render_realtime,
             "correlation": render_correlation}


def render_results(payloads: dict[str, dict]) -> str:
    """Markdown for every result file, grouped by benchmark in a fixed order; ``payloads``: stem -> JSON."""
    lines = ["Generated by `ttt-perception bench report` from `results/*.json`; do not edit by hand. Each block "
             "names the command and the machine that produced its numbers.", ""]
    # one-seed runs pooled into another file are shown there, as its provenance
    pooled = {Path(part["file"]).stem for payload in payloads.values() for part in payload.get("pooled_from", [])}
    for kind in KINDS:
        for name in sorted(n for n in payloads if n.split("_", 1)[0] == kind and n not in pooled):
            lines += RENDERERS[kind](name, payloads[name])
    if len(lines) == 2:
        lines.append("No results yet: run `ttt-perception bench accuracy --quick` (and gradual, realtime, "
                     "correlation), then `ttt-perception bench report`.")
    return "\n".join(lines).rstrip() + "\n"


def replace_section(readme: str, section: str, start: str = START, end: str = END,
                    heading: str = "## Results") -> str:
    """``readme`` with the text between the markers replaced by ``section``; markers appended
    (under ``heading``) if absent."""
    if start in readme and end in readme and readme.index(start) < readme.index(end):
        head, rest = readme.split(start, 1)
        _, tail = rest.split(end, 1)
        return f"{head}{start}\n{section}{end}{tail}"
    base = readme.rstrip("\n")
    prefix = f"{base}\n\n" if base else ""
    return f"{prefix}{heading}\n\n{start}\n{section}{end}\n"


def _default_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def render_parameter_table(specs=SPECS) -> str:
    """Markdown table of the node's parameters: name, default, when a change applies, values."""
    rows = ["| parameter | default | changes | values | meaning |", "| --- | --- | --- | --- | --- |"]
    for spec in specs:
        if spec.choices:
            values = ", ".join(spec.choices)
        elif spec.low is not None and spec.high is not None:
            values = f"{spec.low:g} .. {spec.high:g}"
        else:
            values = ""
        meaning = spec.description.replace("|", "\\|").replace("<", "\\<")
        rows.append(f"| `{spec.name}` | `{_default_text(spec.default)}` | {spec.kind} | {values} "
                    f"| {meaning} |")
    return "\n".join(rows) + "\n"


def load_payloads(directory: Path) -> dict[str, dict]:
    payloads = {}
    for path in sorted(Path(directory).glob("*.json")):
        if path.stem.split("_", 1)[0] not in RENDERERS:
            continue
        try:
            payloads[path.stem] = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    return payloads


def add_parser(kinds) -> None:
    parser = kinds.add_parser("report", description=__doc__,
                              help="docs/results.md from results/*.json; the README's parameter table")
    parser.add_argument("--out", default="docs/results.md",
                        help="the results page to update (created when missing)")
    parser.add_argument("--readme", default="README.md",
                        help="the README whose parameter table is regenerated ('' : none)")
    parser.add_argument("--results", help="folder of the JSON files (default: results/)")
    parser.set_defaults(run=main)


def _update(path: Path, section: str, **markers) -> None:
    text = path.read_text() if path.is_file() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(text, section, **markers))


def main(args) -> int:
    directory = Path(args.results) if args.results else results_dir()
    out = Path(args.out)
    payloads = load_payloads(directory)
    # image links relative to the page
    images = Path(os.path.relpath(directory.resolve(), out.resolve().parent)).as_posix()
    _update(out, render_results(payloads).replace("](results/", f"]({images}/"))
    print(f"updated {out} from {len(payloads)} result files in {directory}")
    if args.readme:
        _update(Path(args.readme), render_parameter_table(), start=PARAMETERS_START,
                end=PARAMETERS_END, heading="## Parameters")
        print(f"updated the parameter table in {args.readme}")
    return 0
