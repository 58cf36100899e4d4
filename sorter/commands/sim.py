"""`sorter sim snapshot|demo` and `sorter bench sim`: look at, exercise and measure the simulated cell.

MuJoCo, OpenCV and the cell are imported inside the handlers so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sorter.errors import SorterError


def register(groups: dict) -> None:
    snap = groups["sim"].add_parser("snapshot", help="render one scene: colour, depth and masks to a folder")
    snap.add_argument("--recipe", required=True, metavar="FILE")
    snap.add_argument("--scenario", default="random", metavar="NAME")
    snap.add_argument("--seed", type=int, default=1)
    snap.add_argument("--out", required=True, metavar="DIR")
    snap.set_defaults(handler=snapshot)
    demo = groups["sim"].add_parser("demo", help="drop a random scene and grasp every visible impurity")
    demo.add_argument("--recipe", required=True, metavar="FILE")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(handler=run_demo)
    bench = groups["bench"].add_parser("sim", help="speed and physics-trust figures of the simulated cell")
    bench.add_argument("--recipe", required=True, metavar="FILE", nargs="+")
    bench.add_argument("--grasps", type=int, default=50, help="centre grasps per kind of object (default 50)")
    bench.add_argument("--trials", type=int, default=10,
                       help="beside grasps and pushes per kind (default 10)")
    bench.add_argument("--resets", type=int, default=3,
                       help="seeds per scenario for the reset times (default 3; the mean and the slowest "
                            "are printed)")
    bench.add_argument("--passes", type=int, default=3,
                       help="repeats of the primitive and all-awake measurements (default 3; the median "
                            "pass is printed, and every pass's steps/s)")
    bench.add_argument("--skip-trust", action="store_true", help="speed figures only")
    bench.set_defaults(handler=run_bench)


def _cell(recipe_path: str):
    from sorter.cell.sim.cell import SimCell
    from sorter.recipe import load_recipe

    return SimCell(load_recipe(recipe_path))


def snapshot(args: argparse.Namespace) -> int:
    """Write color.png, depth.npy, depth.png, visible_mask.png and amodal_mask_<id>.png per impurity."""
    import cv2

    cell = _cell(args.recipe)
    cell.reset(args.scenario, args.seed)
    frame = cell.camera.read()
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SorterError(f"cannot create the output folder {out} ({exc}); choose another --out") from None
    cv2.imwrite(str(out / "color.png"), cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR))
    np.save(out / "depth.npy", frame.depth)
    cv2.imwrite(str(out / "depth.png"), _depth_colors(frame.depth))
    cv2.imwrite(str(out / "visible_mask.png"), cell.truth.visible_mask().astype(np.uint16))
    impurities = cell.truth.impurity_ids()
    for oid in impurities:
        cv2.imwrite(str(out / f"amodal_mask_{oid}.png"), cell.truth.amodal_mask(oid).astype(np.uint8) * 255)
    occlusion = ", ".join(f"{oid}: {cell.truth.occlusion_rate(oid):.2f}" for oid in impurities) or "none"
    print(f"{args.scenario} seed {args.seed}: {len(cell.truth.objects())} objects, impurities {impurities} "
          f"(occlusion {occlusion}); wrote {out}")
    return 0


def _depth_colors(depth: np.ndarray) -> np.ndarray:
    import cv2

    valid = depth > 0
    if not valid.any():
        return np.zeros((*depth.shape, 3), np.uint8)
    lo, hi = np.percentile(depth[valid], [1, 99])
    scaled = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    image = cv2.applyColorMap((255 * (1 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)
    image[~valid] = 0
    return image


def run_demo(args: argparse.Namespace) -> int:
    """Grasp each visible impurity of a random scene at its true position with the real primitives."""
    from sorter.cell.sim.scripted import grasp_action

    cell = _cell(args.recipe)
    start = time.perf_counter()
    cell.reset("random", args.seed)
    print(f"scene 'random' seed {args.seed}: {len(cell.truth.objects())} objects, "
          f"{cell.truth.impurities_remaining()} impurities ({time.perf_counter() - start:.2f} s to build)")
    cell.camera.read()
    visible = set(np.unique(cell.truth.visible_mask()).tolist())
    targets = [oid for oid in cell.truth.impurity_ids() if oid in visible]
    for oid in targets:
        action = grasp_action(cell, oid)
        start = time.perf_counter()
        outcome = cell.robot.execute(action)
        wall = time.perf_counter() - start
        print(f"grasp {cell.truth.object(oid).name} #{oid} "
              f"at ({action.x:.3f}, {action.y:.3f}, {action.z:.3f}) "
              f"angle {np.degrees(action.angle):.0f} deg: held={outcome.grasp_held} "
              f"width={outcome.finger_width * 1000:.1f} mm delivered={outcome.delivered} "
              f"arm {outcome.duration:.2f} s, wall {wall:.3f} s")
        cell.camera.read()
    print(f"impurities left in the workspace: {cell.truth.impurities_remaining()}; "
          f"simulated time {cell.time:.1f} s")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """Print the speed and physics-trust tables for each recipe; exit 1 when a trust figure fails."""
    from sorter.cell.sim.bench import measure_speed, measure_trust, speed_table, trust_table
    from sorter.recipe import load_recipe

    failed = False
    for path in args.recipe:
        recipe = load_recipe(path)
        figures = measure_speed(recipe, max(1, args.resets), passes=args.passes)
        print("\n".join(speed_table(recipe.product.name, figures)))
        if args.skip_trust:
            continue
        results = measure_trust(recipe, args.grasps, args.trials)
        print("\n".join(trust_table(recipe.product.name, results)))
        failed |= not all(r.passed() for r in results)
    return 1 if failed else 0
