"""``bench correlation``: the check of Theorem 1 of Sun et al. (2020), on any model and data.

TTT helps a test sample when the gradient of the main-task loss and the gradient of the rotation loss
on the shared extractor point the same way. For each corruption and severity (15 x 5 = 75 sets): the
mean inner product of the two gradients over the set's frames (labels are known at bench time), and
the improvement TTT gives on that set (error of mode off minus error of TTT reset and of TTT online,
paper settings). Scatter plot and Pearson correlation; the paper reports 0.93 (TTT) and 0.89
(TTT-Online) on CIFAR-10-C. A strong positive correlation on your own model and data says that the
rotation task is a useful proxy there, and where TTT will help.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..adaptation_config import PAPER_ONLINE, PAPER_RESET, AdaptationConfig
from ..corruptions import CORRUPTIONS
from ..objectives import plain_rotations
from ..training import main_loss, prepare_inputs
from .common import (
    add_common_arguments,
    format_table,
    load_model,
    parse_severities,
    print_targets,
    results_dir,
    run_record,
    set_up,
    target,
    write_json,
)
from .evaluation import Method, corrupted_sets, evaluate, make_frames, quality_name, truth_of

PROFILES = {"quick": {"frames": 12, "severities": (5,)},
            "full": {"frames": 200, "severities": (5,)}}
R_TARGET = 0.7
METHODS = (Method("off", AdaptationConfig(mode="off")), Method("TTT reset", PAPER_RESET),
           Method("TTT online", PAPER_ONLINE))
PAPER_R = {"TTT reset": 0.93, "TTT online": 0.89}


@contextlib.contextmanager
def _extractor_trainable(model):
    """Gradients for the extractor's parameters, whatever an adapter left in requires_grad."""
    params = list(model.extractor.parameters())
    saved = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield params
    finally:
        for p, flag in zip(params, saved):
            p.requires_grad_(flag)


def gradient_inner_product(model, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Inner product (and cosine) of the main-task and rotation gradients on the shared extractor.

    ``batch``: one frame as ``prepare_inputs`` builds it (``images`` (1, 3, S, S) plus its labels or
    detection targets). The rotation loss is taken on the frame's four rotations, as at test time.
    """
    with _extractor_trainable(model) as params:
        loss_main = main_loss(model, model.extractor(batch["images"]), batch)
        g_main = torch.autograd.grad(loss_main, params)
        rotated, labels = plain_rotations(batch["images"][0])
        loss_rot = F.cross_entropy(model.rotation_logits(rotated), labels)
        g_rot = torch.autograd.grad(loss_rot, params)
    a = torch.cat([g.reshape(-1) for g in g_main])
    b = torch.cat([g.reshape(-1) for g in g_rot])
    inner = float(torch.dot(a, b))
    norms = float(a.norm() * b.norm())
    return {"inner": inner, "cosine": inner / norms if norms > 0 else 0.0}


@torch.no_grad()
def rotation_error(model, images: torch.Tensor) -> float:
    """Error (%) of the rotation head on each frame's four rotations: how well the self-supervised task is
    solved on this set (chance is 75%)."""
    wrong = 0
    for image in images:
        rotated, labels = plain_rotations(image)
        wrong += int((model.rotation_logits(rotated).argmax(dim=1) != labels).sum())
    return 100.0 * wrong / (4 * max(len(images), 1))


def set_gradient_statistics(model, dataset, device) -> dict[str, float]:
    """Mean inner product and mean cosine over every frame of one set, and the rotation head's error."""
    tensors = prepare_inputs(dataset, model)
    values = [gradient_inner_product(model, {k: v[i:i + 1].to(device) for k, v in tensors.items()})
              for i in range(len(tensors["images"]))]
    return {"inner": float(np.mean([v["inner"] for v in values])),
            "cosine": float(np.mean([v["cosine"] for v in values])),
            "rotation_error": rotation_error(model, tensors["images"].to(device))}


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _with_images(data, images):
    return dataclasses.replace(data, images=images)


def load_user_data(args, task: str, size: int):
    from ..user_data import load_coco, load_image_folder

    if args.image_folder:
        return load_image_folder(args.image_folder, size=size)[0]
    return load_coco(args.coco, args.images, size=size)[0]


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(payload["correlation"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        x = [s["gradient_inner"] for s in payload["sets"]]
        y = [s["improvement"][name] for s in payload["sets"]]
        severities = [s["severity"] for s in payload["sets"]]
        points = ax.scatter(x, y, c=severities, cmap="viridis", s=22)
        r = payload["correlation"][name]["pearson_r"]
        ax.set_title(f"{name}: Pearson r = {r:.2f} (paper on CIFAR-10-C: {PAPER_R.get(name, math.nan):.2f})",
                     fontsize=9)
        ax.set_xlabel("mean inner product of main-task and rotation gradients (shared extractor)")
        ax.set_ylabel(f"improvement over off ({payload['quality']} points)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3)
        fig.colorbar(points, ax=ax, label="severity")
    fig.suptitle(f"{payload['model']}, {payload['frames_per_set']} frames per set ({payload['machine']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_parser(kinds) -> None:
    parser = kinds.add_parser("correlation", help="Theorem 1 check: gradient inner product vs TTT's improvement",
                              description=__doc__)
    add_common_arguments(parser, f"the CPU profile: {PROFILES['quick']['frames']} frames per set "
                                 f"(full: {PROFILES['full']['frames']})")
    parser.add_argument("--frames", type=int, help="frames per set (overrides the profile)")
    parser.add_argument("--severities", help="e.g. 5 (default: the 15 sets at severity 5), 1-5 for all 75")
    parser.add_argument("--task", default="classifier", choices=("classifier", "detector"),
                        help="with the default models; a --model checkpoint brings its own task")
    parser.add_argument("--model", help="your own checkpoint (its task decides the loss)")
    parser.add_argument("--image-folder", help="your own classification images, one sub-folder per class")
    parser.add_argument("--coco", help="your own detection data: COCO JSON")
    parser.add_argument("--images", help="image folder of the COCO JSON (default: next to it)")
    parser.add_argument("--split", default="test", choices=("val", "test"), help="split of the built-in frames")
    parser.add_argument("--name", help="output file stem under results/ (default: correlation_PROFILE)")
    parser.set_defaults(run=main)


def main(args) -> int:
    device = set_up(args)
    profile = "quick" if args.quick else "full"
    settings = PROFILES[profile]
    frames = args.frames or settings["frames"]
    task = args.task
    if args.model:
        from ..checkpoint import load_checkpoint

        task = load_checkpoint(args.model)[0].config.task
    model, description = load_model(task, args.model, device)
    size = model.config.input_size
    if args.image_folder or args.coco:
        data = load_user_data(args, task, size)
        if len(data) > frames:
            data = type(data)(**{f.name: getattr(data, f.name)[:frames] for f in dataclasses.fields(data)})
        data_description = f"user data {args.image_folder or args.coco}"
    else:
        data = make_frames(task, args.split, frames, size, args.seed + 1)
        data_description = f"built-in {task} frames, {args.split} split"
    severities = parse_severities(args.severities, settings["severities"])
    sets = corrupted_sets(data.images, severities, args.seed)
    sets.pop("clean")
    truth = truth_of(data, task)
    key = quality_name(task)
    quality = {m.name: evaluate(model, m, task, sets, truth, device, args.seed) for m in METHODS}
    records = []
    for set_name, images in tqdm(sets.items(), desc="gradients", unit="set"):
        corruption, severity = set_name.split("/")
        stats = set_gradient_statistics(model, _with_images(data, images), device)
        base = quality["off"][set_name][key]
        sign = 1.0 if key == "error" else -1.0  # improvement: error down, or mAP up
        records.append({"set": set_name, "corruption": corruption, "severity": int(severity),
                        "gradient_inner": stats["inner"], "gradient_cosine": stats["cosine"],
                        "rotation_error": stats["rotation_error"],
                        key + "_off": base,
                        **{f"{key}_{m.name}": quality[m.name][set_name][key] for m in METHODS[1:]},
                        "improvement": {m.name: sign * (base - quality[m.name][set_name][key]) for m in METHODS[1:]}})
        if key == "error":  # also the drop of the true class's cross-entropy: less quantised on few frames
            records[-1]["nll_improvement"] = {m.name: quality["off"][set_name]["nll"] - quality[m.name][set_name]["nll"]
                                              for m in METHODS[1:]}
    correlation = {}
    for m in METHODS[1:]:
        improvements = [r["improvement"][m.name] for r in records]
        correlation[m.name] = {
            "pearson_r": pearson([r["gradient_inner"] for r in records], improvements),
            "pearson_r_cosine": pearson([r["gradient_cosine"] for r in records], improvements),
            "mean_improvement": float(np.mean(improvements)),
            "pearson_r_nll": pearson([r["gradient_inner"] for r in records],
                                     [r["nll_improvement"][m.name] for r in records]) if key == "error" else None,
            "paper_r": PAPER_R[m.name],
        }
    clean = set_gradient_statistics(model, data, device)
    ssl = {"rotation_error_clean": clean["rotation_error"],
           "rotation_error_corrupted_mean": float(np.mean([r["rotation_error"] for r in records])),
           "pearson_r_rotation_error_vs_off": pearson([r["rotation_error"] for r in records],
                                                      [r[key + "_off"] for r in records]),
           "gradient_inner_clean": clean["inner"]}
    payload = {**run_record(args, device, profile), "task": task, "self_supervision": ssl, "model": description,
               "data": data_description,
               "quality": key, "frames_per_set": len(data), "severities": list(severities),
               "corruptions": list(CORRUPTIONS),
               "methods": {m.name: dataclasses.asdict(m.config) for m in METHODS},
               "sets": records, "correlation": correlation}
    payload["targets"] = [target(f"{name}: correlation between gradient inner product and improvement "
                                 f">= {R_TARGET:g}", c["pearson_r"] >= R_TARGET,
                                 f"Pearson r = {c['pearson_r']:.2f} over {len(records)} sets "
                                 f"(paper: {c['paper_r']:.2f} on CIFAR-10-C)")
                          for name, c in correlation.items()]
    payload["targets"].append(target("rotation head accuracy on the clean frames >= 85%",
                                     ssl["rotation_error_clean"] <= 15.0,
                                     f"{100 - ssl['rotation_error_clean']:.1f}%"))
    name = args.name or f"correlation_{profile}"
    png_path = results_dir() / f"{name}.png"
    plot(payload, png_path)
    print(format_table(["method", "Pearson r (inner product)", "r (cosine)", "r (vs cross-entropy drop)",
                        f"mean improvement ({key} pts)", "paper r"],
                       [[n, c["pearson_r"], c["pearson_r_cosine"],
                         "-" if c["pearson_r_nll"] is None else c["pearson_r_nll"],
                         c["mean_improvement"], c["paper_r"]] for n, c in correlation.items()]))
    print(f"rotation head error: clean {ssl['rotation_error_clean']:.1f}%, corrupted sets "
          f"{ssl['rotation_error_corrupted_mean']:.1f}% on average (chance 75%); Pearson r with the off {key} over "
          f"the sets: {ssl['pearson_r_rotation_error_vs_off']:.2f}")
    print()
    print_targets(payload["targets"])
    json_path = write_json(name, payload)
    print(f"wrote {json_path} and {png_path}")
    return 0
