"""`sorter run`, `sorter runs list|show|export` and `sorter bench loop`: the sorting run and its log.

Heavy modules (mujoco, perception, the policy) are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from sorter.errors import SorterError


def register(groups: dict) -> None:
    _register_run(groups[""])
    _register_runs(groups["runs"])
    bench = groups["bench"].add_parser("loop", help="decision overhead per cycle and a memory soak of the "
                                                    "pick loop on the simulated cell")
    bench.add_argument("--recipe", required=True, metavar="FILE")
    bench.add_argument("--cycles", type=_positive_int, default=2000, help="soak length (default 2000)")
    bench.add_argument("--seed", type=int, default=1, help="evaluation seed (odd by convention)")
    bench.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    bench.set_defaults(handler=bench_loop)


def _register_run(top) -> None:
    run = top.add_parser("run", help="sort batch after batch (simulated cell unless the recipe names "
                                     "hardware)")
    run.add_argument("--recipe", required=True, metavar="FILE")
    run.add_argument("--max-picks", type=_positive_int, metavar="N", help="stop after N items delivered")
    run.add_argument("--duration", type=_positive_float, metavar="S",
                     help="stop after S seconds of cell time (simulated seconds on the simulated cell)")
    run.add_argument("--db", metavar="PATH", help="run log (default: the user's data directory)")
    run.add_argument("--json", metavar="PATH", help="write the run's summary as JSON")
    run.add_argument("--seed", type=int, default=1, help="seed of the feeder and the policy (default 1)")
    run.add_argument("--dry-run", action="store_true",
                     help="capture, decide and print each action with its safety verdict; move nothing")
    run.add_argument("--cycles", type=_positive_int, metavar="N",
                     help="stop after N cycles (a dry run defaults to 5)")
    run.add_argument("--operator", default=os.environ.get("USER", ""), help="who runs it (for the log)")
    run.set_defaults(handler=run_command)


def _register_runs(runs) -> None:
    ls = runs.add_parser("list", help="recent runs, newest first")
    ls.add_argument("--db", metavar="PATH")
    ls.add_argument("--limit", type=_positive_int, default=20)
    ls.set_defaults(handler=runs_list)
    show = runs.add_parser("show", help="one run: summary, batches and alarms")
    show.add_argument("id", type=int)
    show.add_argument("--db", metavar="PATH")
    show.set_defaults(handler=runs_show)
    export = runs.add_parser("export", help="one run's cycles as CSV")
    export.add_argument("id", type=int)
    export.add_argument("--csv", nargs="?", const="-", default="-", metavar="PATH",
                        help="write CSV to PATH (default: standard output)")
    export.add_argument("--db", metavar="PATH")
    export.set_defaults(handler=runs_export)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


# ------------------------------------------------------------------------------------------ sorter run


def run_command(args: argparse.Namespace) -> int:
    """Run the sorting loop to its end; exit 1 with the alarm's message when a fault ended it."""
    import numpy as np

    from sorter.cell.factory import open_cell
    from sorter.loop import LoopOptions, PickLoop, RunLimits
    from sorter.perception.attention import load_attender
    from sorter.policy.registry import make_policy, model_sha256
    from sorter.recipe import load_recipe
    from sorter.runlog import RunLog

    recipe = load_recipe(args.recipe)
    policy = make_policy(recipe)
    attender = load_attender(recipe)
    cycles = args.cycles or (5 if args.dry_run else None)
    limits = RunLimits(max_picks=args.max_picks, duration_s=args.duration, max_cycles=cycles)
    options = LoopOptions(dry_run=args.dry_run, unattended=True, operator=args.operator, seed=args.seed,
                          model_sha256=model_sha256(recipe), frames=False)
    print(f"{recipe.product.name}: policy {policy.name}, {'simulated' if recipe.is_simulated else 'real'} "
          f"cell{', DRY RUN (nothing moves)' if args.dry_run else ''}; {attender.note}", file=sys.stderr)
    with RunLog(args.db) as runlog, open_cell(recipe, seed=args.seed, dry_run=args.dry_run) as cell:
        loop = PickLoop(recipe, cell, policy, attender, runlog, np.random.default_rng(args.seed), limits,
                        options)
        _drive(loop, dry_run=args.dry_run)
        result = loop.result
        if loop.run_id is not None:
            print(f"run {loop.run_id} in {runlog.path}", file=sys.stderr)
    error = loop.error
    if isinstance(error, SorterError):
        raise SorterError(str(error))
    if error is not None or result is None:
        raise SorterError(f"the run stopped on an unexpected error ({type(error).__name__}: {error}); "
                          "the run log records it")
    summary = _summary(result)
    _print_table(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if result.fault is not None and result.fault.acknowledged_at is None:
        raise SorterError(f"run stopped by {result.fault.code}: {result.fault.message}")
    return 0


def _drive(loop, dry_run: bool) -> None:
    """Run the loop in its worker thread, print status and alarms, stop cleanly on Ctrl-C."""
    from sorter.loop import AlarmRaised, CycleDone, RunEnded, StateChanged

    events = loop.subscribe()
    status = _StatusLine(sys.stderr)
    previous = signal.getsignal(signal.SIGINT)
    interrupted = threading.Event()

    def on_interrupt(signum, frame):
        interrupted.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        loop.start()
        while True:
            if interrupted.is_set() and loop.state not in ("stopping", "stopped"):
                loop.stop("interrupted by operator (Ctrl-C)")
                status.message("stopping after the cycle in flight; Ctrl-C again aborts at once")
            event = events.get(timeout=0.2)
            if isinstance(event, CycleDone):
                if dry_run:
                    print(_describe_dry_cycle(event.record))
                status.update(event.progress)
            elif isinstance(event, AlarmRaised):
                status.message(f"ALARM {event.alarm.code}: {event.alarm.message}")
            elif isinstance(event, StateChanged) and event.new == "stopping":
                status.message(f"stopping: {event.reason}")
            elif isinstance(event, RunEnded) or (event is None and loop.join(0)):
                break
        loop.join()
    finally:
        signal.signal(signal.SIGINT, previous)
        status.finish()


class _StatusLine:
    """One live line on a terminal (rewritten in place); every 25 cycles when output is not a terminal."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False

    def update(self, p) -> None:
        gs = "-" if p.grasp_success is None else f"{p.grasp_success:.0%}"
        pph = "-" if p.picks_per_hour is None else f"{p.picks_per_hour:.0f}"
        line = (f"{p.state:<8} batch {p.batch:>3}  cycles {p.cycles:>5}  picks {p.picks:>4}  "
                f"grasp success {gs:>4}  picks/h {pph:>5}  t {p.cell_time:7.1f} s")
        if self.tty:
            self.stream.write("\r" + line)
            self.shown = True
        elif p.cycles % 25 == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.finish()
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.shown = False


def _describe_dry_cycle(r) -> str:
    if r.action_kind is None:
        return f"cycle {r.number}: {r.attention_mode}: {r.attention_reason}"
    where = ", ".join("nan" if v is None else f"{v:.3f}" for v in (r.x, r.y, r.z))
    angle = "nan" if r.angle is None else f"{math.degrees(r.angle):.1f} deg"
    return (f"cycle {r.number}: {r.action_kind} at ({where}) m, {angle} [{r.attention_mode}] "
            f"-> safety {r.safety_detail}")


def _summary(result) -> dict:
    m = result.metrics
    t = m.time
    return {
        "run_id": result.run_id, "end_reason": result.end_reason, "picks": m.picks,
        "grasp_success": m.grasp_success, "action_efficiency": m.action_efficiency,
        "picks_per_hour": m.picks_per_hour, "purity": m.purity, "false_picks": m.false_picks,
        "impurities_left": m.impurities_left, "lost_items": m.lost_items, "actions": m.actions,
        "grasps": m.grasps, "pushes": m.pushes, "refusals": m.refusals, "cycles": m.cycles,
        "batches": m.batches, "clean_batches": m.clean_batches, "perception_ms_median": t.perception_ms,
        "decision_ms_median": t.decision_ms, "motion_s_median": t.motion_s,
        "overhead_share_of_motion": t.overhead_share,
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _print_table(summary: dict) -> None:
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:<{width}}  {_fmt(value)}")


# ----------------------------------------------------------------------------------------- sorter runs


def _open_log(db: str | None):
    from sorter.runlog import RunLog, RunLogError, default_db_path

    path = Path(db) if db else default_db_path()
    if not path.exists():
        raise RunLogError(f"no run log at {path}; run `sorter run --recipe FILE` first or pass --db PATH")
    return RunLog(path)


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _end_text(info) -> str:
    return info.end_reason if info.finished else "unfinished (the process ended without closing the run)"


def runs_list(args: argparse.Namespace) -> int:
    with _open_log(args.db) as runlog:
        runs = runlog.runs(args.limit)
        if not runs:
            print(f"no runs recorded in {runlog.path}")
            return 0
        print(f"{'id':>4}  {'started':<19}  {'recipe':<18} {'policy':<10} {'cell':<8} {'picks':>5}  ended")
        for r in runs:
            picks = json.loads(r.summary).get("picks", "-") if r.summary else "-"
            cell = r.cell + (" dry" if r.dry_run else "")
            print(f"{r.id:>4}  {_when(r.started_at):<19}  {r.recipe_name:<18} {r.policy:<10} {cell:<8} "
                  f"{picks!s:>5}  {_end_text(r)}")
    return 0


def runs_show(args: argparse.Namespace) -> int:
    from sorter.metrics import summarize

    with _open_log(args.db) as runlog:
        info = runlog.run(args.id)
        cycles, batches, alarms = runlog.cycles(args.id), runlog.batches(args.id), runlog.alarms(args.id)
    print(f"run {info.id}: {info.recipe_name} ({info.recipe_path}, sha256 {info.recipe_sha256[:12]})")
    print(f"  policy {info.policy}{' model ' + info.model_sha256[:12] if info.model_sha256 else ''}, "
          f"{info.cell} cell{' (dry run)' if info.dry_run else ''}, operator {info.operator or '-'}, "
          f"seed {info.seed}")
    print(f"  started {_when(info.started_at)}, ended {_when(info.ended_at)}: {_end_text(info)}")
    m = summarize(cycles, batches)
    _print_table({"picks": m.picks, "grasp_success": m.grasp_success, "action_efficiency":
                  m.action_efficiency, "picks_per_hour": m.picks_per_hour, "purity": m.purity,
                  "false_picks": m.false_picks, "lost_items": m.lost_items, "actions": m.actions,
                  "refusals": m.refusals, "cycles": m.cycles, "perception_ms_median": m.time.perception_ms,
                  "decision_ms_median": m.time.decision_ms, "motion_s_median": m.time.motion_s})
    print(f"batches ({len(batches)}):")
    for b in batches:
        print(f"  {b.number:>3}  {_when(b.started_at)}  {b.end_reason or 'open':<13} impurities "
              f"{_fmt(b.impurities_at_start)} -> {_fmt(b.impurities_left)} left")
    print(f"alarms ({len(alarms)}):")
    for a in alarms:
        ack = f"acknowledged {_when(a.acknowledged_at)}" if a.acknowledged_at else (
            "not acknowledged" if a.needs_ack else "")
        print(f"  {_when(a.raised_at)}  {a.severity:<7} {a.code}: {a.message} {ack}".rstrip())
    return 0


def runs_export(args: argparse.Namespace) -> int:
    with _open_log(args.db) as runlog:
        if args.csv == "-":
            try:
                runlog.export_csv(args.id, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            n = runlog.export_csv(args.id, fh)
    print(f"wrote {n} cycles of run {args.id} to {args.csv}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------- sorter bench loop


def _rss_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_loop(args: argparse.Namespace) -> int:
    """Decision overhead per cycle and a soak of N cycles with resident memory at start and end."""
    import numpy as np

    from sorter.cell.factory import open_cell
    from sorter.loop import LoopOptions, PickLoop, RunLimits
    from sorter.metrics import summarize
    from sorter.perception.attention import load_attender
    from sorter.policy.registry import make_policy
    from sorter.recipe import load_recipe
    from sorter.runlog import RunLog

    recipe = load_recipe(args.recipe)
    if not recipe.is_simulated:
        raise SorterError("`sorter bench loop` runs on the simulated cell; use a recipe with sim camera "
                          "and robot")
    policy, attender = make_policy(recipe), load_attender(recipe)
    with tempfile.TemporaryDirectory() as tmp, RunLog(Path(tmp) / "bench.sqlite") as runlog, \
            open_cell(recipe, seed=args.seed) as cell:
        loop = PickLoop(recipe, cell, policy, attender, runlog, np.random.default_rng(args.seed),
                        RunLimits(max_cycles=args.cycles), LoopOptions(unattended=True, seed=args.seed))
        rss = _Sampler(loop)
        t0 = time.perf_counter()
        loop.start()
        rss.follow()
        wall = time.perf_counter() - t0
        result = loop.result
        errors = [a for a in runlog.alarms(result.run_id) if a.code == "internal error"]
        metrics = summarize(runlog.cycles(result.run_id), runlog.batches(result.run_id))
    figures = _bench_figures(result, metrics, rss, wall, len(errors))
    for key, value in figures.items():
        print(f"{key:<34} {_fmt(value)}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if not errors and result.end_reason.startswith("max cycles") else 1


class _Sampler:
    """Resident memory after the first 20 cycles (warm caches) and at the end of the soak."""

    WARMUP = 20

    def __init__(self, loop):
        self.loop = loop
        self.events = loop.subscribe()
        self.start_mib = _rss_mib()
        self.warm_mib: float | None = None
        self.end_mib = 0.0
        self.peak_mib = self.start_mib

    def follow(self) -> None:
        from sorter.loop import CycleDone, RunEnded

        while True:
            event = self.events.get(timeout=1.0)
            if isinstance(event, CycleDone):
                now = _rss_mib()
                self.peak_mib = max(self.peak_mib, now)
                if event.record.number == self.WARMUP:
                    self.warm_mib = now
                if event.record.number % 100 == 0:
                    print(f"  cycle {event.record.number}: {now:.0f} MiB resident", file=sys.stderr)
            if isinstance(event, RunEnded) or (event is None and self.loop.join(0)):
                break
        self.loop.join()
        self.end_mib = _rss_mib()


def _bench_figures(result, metrics, rss: _Sampler, wall: float, errors: int) -> dict:
    import numpy as np

    t = metrics.time
    overhead = None if t.perception_ms is None or t.decision_ms is None else t.perception_ms + t.decision_ms
    return {
        "cycles": metrics.cycles,
        "end_reason": result.end_reason,
        "unhandled_errors": errors,
        "perception_ms_median": t.perception_ms,
        "decision_ms_median": t.decision_ms,
        "overhead_ms_median (perc+policy)": overhead,
        "motion_s_median (modelled)": t.motion_s,
        "overhead_share_of_motion": t.overhead_share,
        "capture_ms_median (sim render)": t.capture_ms,
        "wall_s_per_cycle": wall / max(metrics.cycles, 1),
        "rss_mib_start": rss.start_mib,
        "rss_mib_after_warmup": rss.warm_mib,
        "rss_mib_end": rss.end_mib,
        "rss_mib_peak": rss.peak_mib,
        "picks": metrics.picks,
        "picks_per_hour": metrics.picks_per_hour,
        "grasp_success": metrics.grasp_success,
        "purity": metrics.purity,
        "batches": metrics.batches,
        "target_overhead_ok": bool(overhead is not None and overhead <= 150.0
                                   and (t.overhead_share or np.inf) < 0.10),
    }
