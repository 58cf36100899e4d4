"""Benchmark suites and result tables: paper 2's impurity protocol and the policy's forward-pass speed.

Impurity suite (paper 2, 6.1): the ``random``, ``challenging`` and ``invisible`` cases, the same odd
evaluation seeds for every method. Per case and method it reports grasp success (impurity grasps over
grasp attempts) and action efficiency (impurities picked over actions), both pooled over the runs, and,
beyond the paper, false picks: product items the grasps delivered to the reject bin (on a line, product
thrown away), which neither paper figure shows.

Only impurities that end up in the reject bin count as picked (one pushed off the table is lost, not
sorted). An episode ends when no impurity is left in the workspace, when a method that relies on attention is
told the batch is clean (the cell would then call for the next batch, so whatever impurity is left is
simply missed), or after ``recipe.loop.max_actions_per_batch`` actions (30 by default): the production
loop raises an alarm at that count, so no method gets more tries than the cell would allow.

Two ways to count, both reported. *Pooled* (``grasp_success``, ``action_efficiency``): every grasp and
every action of every run, the run that never finished included; the stricter figure, and the one the
production loop lives with. *Per completion* (``*_per_completion``): paper 2's own protocol (section 6.1,
"the average success rate of grasp per-completion", "the number of actions per-completion"), which it
takes from VPG's evaluation: each run that binned every impurity scores its own grasp success and its
impurities over its actions, and the figures are the means of those scores; runs that did not complete
count only in ``completion``. Paper 2's published figures are per completion: that is the table to
set beside them (it favours a method that leaves its hard runs unfinished, hence completion beside it).

Twenty runs leave wide margins, so ``leads`` says how far one method is ahead of each other one: the
differences of both figures with paired-bootstrap intervals over the shared seeds (every method meets the
same scenes, so a resample draws whole seeds and scores both methods on them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sorter.cell.base import ActionKind
from sorter.errors import ModelFileError, SorterError

CASES = ("random", "challenging", "invisible")
ALL_METHODS = ("ours", "no-tsd", "no-oi", "no-t", "vpg", "s-vpg", "heuristic")
MODEL_PATTERN = "tcdd-{model}.safetensors"
RESAMPLES = 2000  # bootstrap resamples of the seeds behind each lead's intervals
INTERVAL = 0.95  # central share of the bootstrap distribution that an interval spans
BOOTSTRAP_SEED = 0  # fixed: the same runs always print the same intervals
FIGURES = ("pooled", "per completion")  # the two ways of counting (module docstring)


@dataclass(frozen=True)
class EpisodeResult:
    """One benchmark run: what was there, what was done, what came out."""

    method: str
    case: str
    seed: int
    impurities: int
    picked: int
    actions: int
    grasps: int
    grasp_hits: int
    ended: str
    false_picks: int = 0  # product items delivered to the reject bin: product lost, not sorted


@dataclass(frozen=True)
class CaseResult:
    """Pooled figures of one method on one case."""

    method: str
    case: str
    grasp_success: float
    action_efficiency: float
    completion: float
    runs: int
    actions: int
    grasps: int
    false_picks: int = 0
    grasp_success_per_completion: float = 0.0  # paper 2's protocol; 0 when no run completed
    action_efficiency_per_completion: float = 0.0


def summarize(episodes: list[EpisodeResult]) -> CaseResult:
    """A method's figures on one case: pooled over all attempts and actions, and per completion."""
    all_runs = np.arange(len(episodes))[None]
    grasps = sum(e.grasps for e in episodes)
    actions = sum(e.actions for e in episodes)
    return CaseResult(
        method=episodes[0].method, case=episodes[0].case,
        grasp_success=sum(e.grasp_hits for e in episodes) / grasps if grasps else 0.0,
        action_efficiency=sum(e.picked for e in episodes) / actions if actions else 0.0,
        completion=sum(e.picked == e.impurities for e in episodes) / len(episodes),
        runs=len(episodes), actions=actions, grasps=grasps,
        false_picks=sum(e.false_picks for e in episodes),
        grasp_success_per_completion=float(_per_completion(episodes, "grasp_hits", "grasps", all_runs)[0]),
        action_efficiency_per_completion=float(_per_completion(episodes, "picked", "actions", all_runs)[0]))


@dataclass(frozen=True)
class Lead:
    """How far ``method`` is ahead of ``rival`` on one case: the pooled figures' differences (method
    minus rival) and their paired-bootstrap intervals over the ``runs`` shared seeds."""

    method: str
    rival: str
    case: str
    runs: int
    grasp_success: float
    grasp_success_interval: tuple[float, float]
    action_efficiency: float
    action_efficiency_interval: tuple[float, float]
    figures: str = "pooled"  # or "per completion" (see the module docstring)

    @property
    def verdict(self) -> str:
        """Ahead when both intervals lie above zero, behind when one lies below, else not separated."""
        lows = (self.grasp_success_interval[0], self.action_efficiency_interval[0])
        highs = (self.grasp_success_interval[1], self.action_efficiency_interval[1])
        if min(highs) < 0:
            return "behind"
        return "ahead" if min(lows) > 0 else "not separated"


def leads(episodes: list[EpisodeResult], method: str = "ours", resamples: int = RESAMPLES,
          seed: int = BOOTSTRAP_SEED, figures: str = "pooled") -> list[Lead]:
    """``method`` against every other method on every case of ``episodes`` (paired bootstrap), on the
    pooled figures or, with ``figures="per completion"``, on paper 2's.

    Raises ValueError when two methods did not run the same seeds on a case: unpaired runs would compare
    different scenes.
    """
    by: dict[tuple[str, str], dict[int, EpisodeResult]] = {}
    for e in episodes:
        by.setdefault((e.method, e.case), {})[e.seed] = e
    cases = list(dict.fromkeys(e.case for e in episodes))
    rivals = [m for m in dict.fromkeys(e.method for e in episodes) if m != method]
    out = []
    for case in cases:
        mine = by.get((method, case))
        if not mine:
            continue
        for rival in rivals:
            theirs = by.get((rival, case))
            if theirs is None:
                continue
            if set(theirs) != set(mine):
                raise ValueError(f"{method} and {rival} ran different seeds on the {case} case")
            seeds = sorted(mine)
            out.append(_lead([mine[s] for s in seeds], [theirs[s] for s in seeds], resamples, seed, figures))
    return out


def _lead(mine: list[EpisodeResult], theirs: list[EpisodeResult], resamples: int, seed: int,
          figures: str) -> Lead:
    score = _pooled if _counted(figures) == "pooled" else _per_completion
    n = len(mine)
    idx = np.vstack([np.arange(n), np.random.default_rng(seed).integers(0, n, size=(resamples, n))])
    tail = 100 * (1 - INTERVAL) / 2
    found = []
    for num, den in (("grasp_hits", "grasps"), ("picked", "actions")):
        diff = score(mine, num, den, idx) - score(theirs, num, den, idx)
        lo, hi = np.percentile(diff[1:], [tail, 100 - tail])
        found += [float(diff[0]), (float(lo), float(hi))]
    return Lead(mine[0].method, theirs[0].method, mine[0].case, n, *found, figures=figures)


def _counted(figures: str) -> str:
    """``figures`` when it names one of ``FIGURES``; raises ValueError otherwise."""
    if figures not in FIGURES:
        raise ValueError(f"unknown figures '{figures}'; expected one of {', '.join(FIGURES)}")
    return figures


def _pooled(runs: list[EpisodeResult], num: str, den: str, idx: np.ndarray) -> np.ndarray:
    """Pooled ratio ``sum(num) / sum(den)`` over each row of seed indices (0 where nothing was tried)."""
    top = np.array([getattr(e, num) for e in runs], float)[idx].sum(axis=1)
    bottom = np.array([getattr(e, den) for e in runs], float)[idx].sum(axis=1)
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


def _per_completion(runs: list[EpisodeResult], num: str, den: str, idx: np.ndarray) -> np.ndarray:
    """Mean of ``num / den`` over the completed runs of each row of seed indices (paper 2's protocol; 0
    where no run of the row completed)."""
    done = np.array([e.picked == e.impurities and getattr(e, den) > 0 for e in runs])
    top = np.array([getattr(e, num) for e in runs], float)
    bottom = np.array([getattr(e, den) for e in runs], float)
    score = np.divide(top, bottom, out=np.zeros_like(top), where=done)
    counted = done[idx].sum(axis=1)
    total = score[idx].sum(axis=1)
    return np.divide(total, counted, out=np.zeros_like(total), where=counted > 0)


def leads_table(found: list[Lead]) -> str:
    """One row per rival and case: both differences with their intervals, and the verdict."""
    pct = f"{100 * INTERVAL:.0f} %"
    lines = [f"| Against | Case | Grasp success difference ({pct} interval) | Action efficiency difference "
             f"({pct} interval) | Verdict |", "|---|---|---|---|---|"]
    for lead in found:
        grasp = _signed(lead.grasp_success, lead.grasp_success_interval)
        efficiency = _signed(lead.action_efficiency, lead.action_efficiency_interval)
        lines.append(f"| {lead.rival} | {lead.case} | {grasp} | {efficiency} | {lead.verdict} |")
    return "\n".join(lines)


def _signed(value: float, interval: tuple[float, float]) -> str:
    return f"{value:+.3f} ({interval[0]:+.3f} to {interval[1]:+.3f})"


def recipe_model(recipe) -> Path | None:
    """The weights a TCDD recipe points to (``policy.model``, resolved), or None."""
    if recipe.policy.kind == "tcdd" and recipe.policy.model:
        return recipe.resolve(recipe.policy.model)
    return None


class Contender:
    """A method ready to run: its policy, whether it reads attention, and whether it stops on 'clean'."""

    def __init__(self, name: str, policy, uses_attention: bool, stops_when_clean: bool):
        self.name, self.policy = name, policy
        self.uses_attention, self.stops_when_clean = uses_attention, stops_when_clean


def contender(name: str, recipe, models: Path, ours_model: Path | None = None) -> Contender:
    """Build a benchmark method; learned ones load their weights from ``models``.

    Methods on the ``ours`` weights (ours, no-oi) load ``ours_model``, else the recipe's own
    ``policy.model``, else ``models/tcdd-ours.safetensors``: a product recipe is benchmarked on the
    model it ships with unless told otherwise, whoever calls this.
    """
    if name == "heuristic":
        from sorter.policy.heuristic import HeuristicPolicy

        return Contender(name, HeuristicPolicy(recipe), True, True)
    from sorter.policy.agent import load_agent, method

    m = method(name)
    ours_model = ours_model if ours_model is not None else recipe_model(recipe)
    path = ours_model if (m.model == "ours" and ours_model is not None) else models / MODEL_PATTERN.format(
        model=m.model)
    if not Path(path).is_file():
        raise ModelFileError(f"method '{name}' needs {path}; train it with `sorter train --method {m.model} "
                             f"--out DIR` and copy DIR/model.safetensors there, or leave '{name}' out")
    agent = load_agent(recipe, name, Path(path))
    uses_attention = not m.whole_scene or m.restrict_to_mask
    return Contender(name, agent, uses_attention, not m.whole_scene)


def run_episode(cell, attender, who: Contender, case: str, seed: int, budget: int) -> EpisodeResult:
    """One run of one method on the scene ``(case, seed)``; see the module docstring for its end."""
    from sorter.cell.safety import SafetyEnvelope
    from sorter.perception.heightmap import compute_heightmaps
    from sorter.policy.rewards import picked

    envelope = SafetyEnvelope.from_recipe(cell.recipe)
    grid = envelope.grid
    cell.reset(case, seed)
    rng = np.random.default_rng(seed)
    total = cell.truth.impurities_remaining()
    actions = grasps = hits = 0
    ended = "budget"
    while actions < budget:
        if cell.truth.impurities_remaining() == 0:
            ended = "no impurity left"
            break
        hm = compute_heightmaps(cell.camera.read(), cell.camera_pose, grid)
        att = attender.attend(hm) if who.uses_attention else None
        if att is not None and att.mode == "clean" and who.stops_when_clean:
            ended = "declared clean"
            break
        decision = who.policy.decide(att, hm, rng)
        before = cell.truth.objects()
        verdict = envelope.check(decision.action, hm.height)
        if verdict.allowed:
            cell.robot.execute(verdict.action)
        actions += 1
        if decision.kind is ActionKind.GRASP:
            grasps += 1
            hits += any(o.is_impurity for o in picked(before, cell.truth.objects()))
    if cell.truth.impurities_remaining() == 0:
        ended = "no impurity left" if ended == "budget" else ended
    binned = [o for o in cell.truth.objects() if o.in_bin]
    impurities = sum(o.is_impurity for o in binned)
    return EpisodeResult(who.name, case, seed, total, impurities, actions, grasps, hits, ended,
                         false_picks=len(binned) - impurities)


def bench_impurity(recipe, methods: list[str], runs: int, seed: int, models: Path,
                   ours_model: Path | None = None, cases: tuple[str, ...] = CASES,
                   progress=None) -> tuple[list[CaseResult], list[EpisodeResult]]:
    """Every method on every case with the same ``runs`` odd seeds starting at ``seed``."""
    from sorter.cell.sim.cell import SimCell
    from sorter.perception.attention import load_attender

    if seed % 2 == 0:
        raise SorterError(f"evaluation seed {seed} is even; even seeds are for training, use an odd one")
    contenders = [contender(name, recipe, models, ours_model) for name in methods]
    cell, attender = SimCell(recipe), load_attender(recipe)
    budget = recipe.loop.max_actions_per_batch
    results, episodes = [], []
    for case in cases:
        seeds = buildable_seeds(cell, case, seed, runs)
        for who in contenders:
            runs_here = [run_episode(cell, attender, who, case, s, budget) for s in seeds]
            episodes += runs_here
            results.append(summarize(runs_here))
            if progress is not None:
                progress(results[-1])
    return results, episodes


def buildable_seeds(cell, case: str, first: int, runs: int) -> list[int]:
    """The first ``runs`` odd seeds from ``first`` whose scene the simulator can build.

    A scenario may fail to build for a seed (an impurity that cannot be hidden); such seeds are skipped
    for every method alike, so all methods still meet the same scenes.
    """
    from sorter.cell.sim.scenarios import SceneError

    seeds, s = [], first
    while len(seeds) < runs:
        if s > first + 2 * 10 * runs:
            raise SorterError(f"scenario '{case}' could not be built for most seeds from {first}; check "
                              "the recipe's sim.scenarios")
        try:
            cell.reset(case, s)
            seeds.append(s)
        except SceneError:
            pass
        s += 2
    return seeds


def markdown_table(results: list[CaseResult], figures: str = "pooled") -> str:
    """Grasp success and action efficiency per method (rows) and case (columns), like paper 2's Table I;
    ``figures`` picks pooled or per-completion ones (see the module docstring)."""
    suffix = "" if _counted(figures) == "pooled" else "_per_completion"
    cases = list(dict.fromkeys(r.case for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    by = {(r.method, r.case): r for r in results}
    head = ["Method"] + [f"Grasp success {c}" for c in cases] + [f"Action efficiency {c}" for c in cases]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        row = [m]
        for name in ("grasp_success", "action_efficiency"):
            row += [f"{getattr(by[(m, c)], name + suffix):.3f}" if (m, c) in by else "-" for c in cases]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def results_json(results: list[CaseResult], episodes: list[EpisodeResult], meta: dict,
                 found: list[Lead] | None = None) -> str:
    doc = {"results": [asdict(r) for r in results], "episodes": [asdict(e) for e in episodes], **meta}
    if found:
        doc["leads"] = [{**asdict(lead), "verdict": lead.verdict} for lead in found]
    return json.dumps(doc, indent=2) + "\n"


def write_card(card: Path, model: Path, recipe_name: str, table: str, command: str) -> None:
    """Create or update a model card: a header from the model file, one benchmark section per recipe.

    Re-running the benchmark for a recipe replaces that recipe's section and keeps the others, and the
    header's hand-written facts (a ``- Lineage:`` line, say) stay below the ones read from the model file.
    """
    from sorter.policy.agent import load_model

    _, meta, sha = load_model(model)
    header = _card_header(model, meta, sha)
    sections: dict[str, str] = {}
    if card.exists():
        text = card.read_text(encoding="utf-8")
        header += _kept_facts(text.split("\n## Benchmark: ")[0], header)
        for chunk in text.split("\n## Benchmark: ")[1:]:
            name, _, body = chunk.partition("\n")
            sections[name.strip()] = body.strip("\n")
    sections[recipe_name] = f"`{command}`\n\n{table}"
    body = "".join(f"\n## Benchmark: {name}\n\n{text}\n" for name, text in sections.items())
    card.write_text(header + body, encoding="utf-8")


def _kept_facts(old_header: str, header: str) -> str:
    """The ``- Key: ...`` lines of an existing card's header whose key the generated header lacks."""
    keys = {line.split(":", 1)[0] for line in header.splitlines() if line.startswith("- ")}
    kept = [line for line in old_header.splitlines()
            if line.startswith("- ") and ":" in line and line.split(":", 1)[0] not in keys]
    return "".join(line + "\n" for line in kept)


def _card_header(model: Path, meta: dict[str, str], sha: str) -> str:
    settings = meta.get("settings", "{}")
    wall = float(meta.get("wall_s", "nan"))
    return (f"# Model card: {model.name}\n\n"
            f"- Method: `{meta.get('method')}` (paper 2 push-grasp DQN; see sorter/policy/agent.py METHODS)\n"
            f"- File: `{model.name}`, {model.stat().st_size / 1024:.0f} KiB, format `{meta.get('format')}`\n"
            f"- sha256: `{sha}`\n"
            f"- Trained on recipe(s): {meta.get('recipes', meta.get('recipe', '?'))}\n"
            f"- Iterations: {meta.get('iterations', '?')}; training wall time {wall / 60:.0f} min on the "
            "shared 2-core development machine (one torch thread, CPU contended by other users)\n"
            f"- Seed: {meta.get('seed', '?')} (training seeds even; benchmark seeds odd)\n"
            f"- Settings: `{settings}`\n")


def forward_speed(repeats: int = 30, threads: int | None = None) -> dict[str, float]:
    """Milliseconds for all 16 rotations of both heads on the 112-cell crop and on the whole scene."""
    import torch

    from sorter.geometry import CROP_CELLS, WorkspaceGrid
    from sorter.policy.network import IN_CHANNELS, QNetwork, Region, q_region

    if threads:
        torch.set_num_threads(threads)
    grid = WorkspaceGrid(0.0, 0.0)
    net = QNetwork().eval()
    side = grid.cells // 2
    scene = torch.randn(1, IN_CHANNELS, side, side, generator=torch.Generator().manual_seed(1))
    out = {"threads": float(torch.get_num_threads())}
    for label, region in (("crop", Region(56, 56, CROP_CELLS)), ("whole", Region.whole(grid))):
        times = []
        with torch.inference_mode():
            for k in range(repeats + 3):
                t = time.perf_counter()
                q_region(net, scene, region, grid)
                if k >= 3:
                    times.append(time.perf_counter() - t)
        out[f"{label}_median_ms"] = 1e3 * float(np.median(times))
        out[f"{label}_p90_ms"] = 1e3 * float(np.percentile(times, 90))
    return out
