"""`sorter teach`, `sorter eval perception` and `sorter bench perception` on the simulated cell.

Heavy modules (mujoco, scikit-learn, the perception stack) are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from sorter.errors import SorterError

METRICS = ("top1_hit", "recall_topk", "false_alarm", "clean_searched", "cluster_hit", "wrong_target",
           "msr_targ", "gsi", "attention_ms_median", "attention_cpu_ms_median", "heightmap_ms_median")


def register(groups: dict) -> None:
    teach = groups[""].add_parser("teach", help="teach the product's look from clean frames (simulated "
                                  "scenes, or the recipe's camera when it names hardware)")
    teach.add_argument("--recipe", required=True, metavar="FILE")
    teach.add_argument("--frames", type=_positive_int, default=60, help="clean scenes to learn from (60)")
    teach.add_argument("--interval", type=float, default=3.0,
                       help="seconds between camera frames on a real cell: change the product meanwhile (3)")
    teach.add_argument("--seed", type=int, default=0, help="first training seed, even (default 0)")
    teach.add_argument("--output", metavar="PATH", help="model file (default: the recipe's "
                       "perception.appearance.model, else <recipe-stem>.appearance.npz beside the recipe)")
    teach.set_defaults(handler=teach_command)
    ev = groups["eval"].add_parser("perception", help="attention against simulator ground truth")
    ev.add_argument("--recipe", required=True, metavar="FILE")
    ev.add_argument("--scenario", default="random,challenging,invisible",
                    help="scenario or comma-separated scenarios (default random,challenging,invisible)")
    ev.add_argument("--scenes", type=_positive_int, default=20, help="scenes per scenario (default 20)")
    ev.add_argument("--seed", type=int, default=1, help="first evaluation seed, odd (default 1)")
    ev.add_argument("--baseline", action="append", choices=("spectral", "finegrained"), default=[],
                    help="also run an OpenCV saliency baseline on the same scenes (repeatable)")
    ev.add_argument("--no-appearance", action="store_true",
                    help="ignore the recipe's taught appearance model (saliency alone)")
    ev.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ev.set_defaults(handler=eval_command)
    bench = groups["bench"].add_parser("perception", help="heightmap, VOCUS2 and attention timings")
    bench.add_argument("--recipe", required=True, metavar="FILE")
    bench.add_argument("--scenes", type=_positive_int, default=20)
    bench.add_argument("--repeats", type=_positive_int, default=5, help="timed runs per scene (5)")
    bench.add_argument("--seed", type=int, default=1)
    bench.set_defaults(handler=bench_command)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _load(path: str):
    from sorter.recipe import load_recipe

    recipe = load_recipe(path)
    if not recipe.is_simulated:
        raise SorterError(f"{path} drives hardware; teaching and evaluation here use the simulated cell "
                          "(use a recipe with camera.kind and robot.kind 'sim')")
    return recipe


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def teach_command(args: argparse.Namespace, camera_devices=None) -> int:
    from sorter.recipe import load_recipe

    if args.seed % 2:
        raise SorterError(f"--seed {args.seed} is odd; teaching uses training seeds, which are even")
    recipe = load_recipe(args.recipe)
    named = recipe.perception.appearance.model
    if args.output:
        out = Path(args.output)
    elif named:
        out = recipe.resolve(named)
    else:
        out = recipe.path.parent / f"{recipe.path.stem}.appearance.npz"
    try:
        model = _teach(recipe, args, camera_devices)
    except ValueError as exc:
        raise SorterError(f"teaching failed: {exc}") from None
    model.save(out)
    print(f"wrote {out} ({model.metadata['train_samples']} patches, clean novelty peaks "
          f"{min(model.metadata['clean_peaks']):.1f}..{max(model.metadata['clean_peaks']):.1f} nats)")
    if not named or (args.output and recipe.resolve(named) != out):
        print(f"add it to the recipe:\n  perception:\n    appearance: {{model: {_relative(out, recipe)}}}")
    return 0


def _teach(recipe, args: argparse.Namespace, camera_devices):
    """Teach on simulated clean scenes, or on the recipe's real camera (no robot is connected)."""
    from sorter.perception.evaluate import teach, teach_from_camera

    if recipe.is_simulated:
        print(f"teaching {recipe.product.name} from {args.frames} clean scenes (seeds {args.seed}, "
              f"{args.seed + 2}, ...)", file=sys.stderr)
        return teach(recipe, args.frames, args.seed, _progress)
    from sorter.cell.hand_eye_store import load_camera_pose
    from sorter.cell.realsense import RealSenseCamera

    pose = load_camera_pose(recipe)
    print(f"teaching {recipe.product.name} from {args.frames} camera frames {args.interval:g} s apart: "
          "show clean product only and change it between frames", file=sys.stderr)
    with RealSenseCamera(recipe.camera, devices=camera_devices) as camera:
        return teach_from_camera(recipe, camera, pose, args.frames, args.interval, args.seed, _progress)


def _relative(path: Path, recipe) -> str:
    try:
        return str(path.resolve().relative_to(recipe.path.parent))
    except ValueError:
        return str(path.resolve())


def eval_command(args: argparse.Namespace) -> int:
    from sorter.perception.attention import VOCUS2, load_attender
    from sorter.perception.evaluate import BASELINES, capture_scenes, evaluate

    if args.seed % 2 == 0:
        raise SorterError(f"--seed {args.seed} is even; evaluation uses evaluation seeds, which are odd")
    recipe = _load(args.recipe)
    scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in recipe.sim.scenarios or s == "clean"]
    if unknown:
        known = ", ".join(k for k in recipe.sim.scenarios if k != "clean")
        raise SorterError(f"unknown scenario(s) {', '.join(unknown)}; use one of: {known}")
    attender = None if args.no_appearance else load_attender(recipe)
    appearance = attender.appearance if attender is not None else None
    print("appearance: " + (f"taught model {recipe.perception.appearance.model} ({attender.note})"
                            if appearance else "none, saliency alone decides"
                            + ("" if args.no_appearance else " (run `sorter teach`)")), file=sys.stderr)
    seeds = [args.seed + 2 * i for i in range(args.scenes)]
    clean = capture_scenes(recipe, "clean", seeds, _progress)
    methods = [VOCUS2] + [BASELINES[b] for b in dict.fromkeys(args.baseline)]
    rows = []
    for scenario in scenarios:
        caps = capture_scenes(recipe, scenario, seeds, _progress)
        for method in methods:
            figures = evaluate(recipe, caps, clean, appearance, method)
            rows.append({"scenario": scenario, "method": method.name, **figures})
    label = ("saliency alone" if appearance is None else "saliency + taught appearance" if attender.fused
             else "saliency, taught appearance guarding clean verdicts and searches")
    print(markdown_table(recipe.product.name, rows, label))
    if args.json:
        doc = {"recipe": str(recipe.path), "product": recipe.product.name, "seed": args.seed,
               "scenes": args.scenes, "appearance": appearance is not None, **rows[0], "results": rows}
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


def markdown_table(product: str, rows: list[dict], label: str) -> str:
    """The evaluation rows as a Markdown table (per-stage medians in the last column) under a heading
    naming the product and how impurities were decided (``label``)."""
    head = ["scenario", "method", *METRICS, "stages ms (median)"]
    lines = [f"### {product} ({label})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_ms_median"].items() if v is not None)
        cells = [r["scenario"], r["method"], *(_fmt(r[m]) for m in METRICS), stages]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def bench_command(args: argparse.Namespace) -> int:
    import cv2

    from sorter.cell.sim.cell import SimCell
    from sorter.perception.attention import load_attender
    from sorter.perception.heightmap import compute_heightmaps
    from sorter.perception.saliency import foreground_mask, saliency_input, vocus2

    recipe = _load(args.recipe)
    attender = load_attender(recipe)
    cv2.setNumThreads(1)
    cell, grid = SimCell(recipe), recipe.workspace.grid()
    times: dict[str, list[tuple[float, float]]] = {"heightmap": [], "vocus2": [], "attention": []}
    for seed in (args.seed + 2 * i for i in range(args.scenes)):
        cell.reset("random", seed)
        frame = cell.camera.read()
        hm = compute_heightmaps(frame, cell.camera_pose, grid)
        image = saliency_input(hm, foreground_mask(hm, recipe.perception.occlusion.min_point_height))
        jobs = {"heightmap": (compute_heightmaps, frame, cell.camera_pose, grid),
                "vocus2": (vocus2, image, recipe.perception.saliency),
                "attention": (attender.attend, hm)}
        for _ in range(args.repeats):
            for name, (fn, *fn_args) in jobs.items():
                times[name].append(_timed(fn, *fn_args))
    print(f"perception timings, {args.scenes} random scenes x {args.repeats}, one OpenCV thread "
          f"({recipe.product.name}; {attender.note})")
    print("  wall: elapsed time (includes waiting for a busy CPU); cpu: this thread's CPU time")
    for name, values in times.items():
        wall = sorted(v[0] for v in values)
        cpu = sorted(v[1] for v in values)
        p95 = wall[min(len(wall) - 1, int(0.95 * len(wall)))]
        print(f"  {name:10s} wall median {statistics.median(wall):6.2f} ms  p95 {p95:6.2f} ms   "
              f"cpu median {statistics.median(cpu):6.2f} ms")
    return 0


def _timed(fn, *args) -> tuple[float, float]:
    """Wall and thread-CPU milliseconds of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn(*args)
    return (time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3
