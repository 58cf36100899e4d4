"""Self-supervised training of the push-grasp agent on the simulated cell (paper 2, section 6.2).

Each iteration runs the cycle (camera, heightmap, attention, policy, robot), scores the action from
ground truth (``rewards``), stores it in prioritized replay and makes a few gradient steps. A scene is
reset when every impurity is picked, when attention declares it clean, when the same primitive fails 3
times in a row (paper 2, 6.3) or after the episode budget. Everything needed to continue (weights,
target network, optimizer, replay, generator state, counters) goes into one safetensors checkpoint,
written atomically every ``checkpoint_every`` iterations and at the end, next to a CSV log of every
action and a PNG of grasp and push success over the last 300 attempts (paper 2, Fig. 9).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from sorter.cell.base import ActionKind, CellError
from sorter.errors import SorterError
from sorter.policy import rewards
from sorter.policy.agent import (
    GRASP,
    LEARNING_RATE,
    Exploration,
    Learner,
    PushGraspAgent,
    load_model,
    method,
    save_model,
)
from sorter.policy.network import QNetwork
from sorter.policy.replay import Observation, ReplayBuffer, Step

CHECKPOINT = "checkpoint.safetensors"
MODEL = "model.safetensors"
LOG = "log.csv"
PLOT = "progress.png"
WINDOW = 300  # attempts in the success-rate window (paper 2, 6.2)
LOG_FIELDS = ("iteration", "episode", "recipe", "scenario", "episode_seed", "mode", "kind", "rotation", "row",
              "col", "reward", "success", "explored", "epsilon", "guide", "q_push", "q_grasp", "loss",
              "impurities_left", "sim_time", "wall_s")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that shapes a training run; stored in every checkpoint."""

    method: str = "ours"
    iterations: int = 2000
    seed: int = 0  # train seeds are even; episode seeds derive from it and are even too
    lr: float = LEARNING_RATE
    batch_size: int = 8
    updates_per_step: int = 2
    replay_capacity: int = 3000
    warmup: int = 12  # transitions stored before the first gradient step
    epsilon: tuple[float, float] = (0.5, 0.05)  # exploration at the start and after ``decay`` iterations
    guide: tuple[float, float] = (0.8, 0.2)  # share of exploration aimed at the target (heuristic prior)
    decay: int = 1500
    schedule_start: int = 0  # iteration where the exploration schedule starts (fine-tuning restarts it)
    grasp_share: float = 0.6
    scenarios: tuple[tuple[str, float], ...] = (("random", 0.5), ("challenging", 0.25), ("invisible", 0.25))
    max_failures: int = 3  # paper 2, 6.3: the scene changes after 3 consecutive failures
    episode_budget: int = 30
    checkpoint_every: int = 200
    # push reward while searching (no impurity shows): "tcdd" as paper 2, or "occlusion": also 0.5 when the
    # push uncovered the hidden impurity (its occlusion rate fell by 0.1, paper 1), whichever is higher
    search_reward: str = "tcdd"
    init: str = ""  # model file whose weights a new run starts from (fine-tuning); "" starts from scratch
    init_sha256: str = ""

    def schedule(self, iteration: int) -> tuple[float, float]:
        """(epsilon, guide) at ``iteration``: linear from start to end over ``decay`` iterations."""
        f = min(1.0, max(0, iteration - self.schedule_start) / max(1, self.decay))
        return (self.epsilon[0] + f * (self.epsilon[1] - self.epsilon[0]),
                self.guide[0] + f * (self.guide[1] - self.guide[0]))


SEARCH_REWARDS = ("tcdd", "occlusion")  # see TrainSettings.search_reward


@dataclass
class _View:
    """One camera view as the method sees it."""

    heightmaps: object
    attention: object | None
    obs: Observation | None


@dataclass
class _Episode:
    index: int = 0
    scenario: str = ""
    seed: int = 0
    actions: int = 0
    fail_kind: int | None = None
    fails: int = 0


@dataclass
class TrainState:
    """Counters that survive a resume."""

    iteration: int = 0
    episodes: int = 0
    wall: float = 0.0
    grasp_hist: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    push_hist: deque = field(default_factory=lambda: deque(maxlen=WINDOW))


class _Product:
    """One recipe's simulated cell with its attention and exploration prior."""

    def __init__(self, recipe, m):
        from sorter.cell.sim.cell import SimCell

        self.recipe = recipe
        self.cell = SimCell(recipe)
        self.attender = None if m.whole_scene and not m.restrict_to_mask else _attender(recipe)
        self.prior = _prior(recipe, m)


class Trainer:
    """One training run of one method on the simulated cells of one or more recipes, into ``out``.

    With several recipes every episode draws its product at random, which trains one general model;
    the recipes must share the workspace and gripper geometry the network's actions are defined on.
    """

    def __init__(self, recipes, settings: TrainSettings, out: Path, resume: bool = False):
        if settings.seed % 2:
            raise SorterError(f"training seed {settings.seed} is odd; odd seeds are for evaluation")
        self.m = method(settings.method)
        if not self.m.trainable:
            raise SorterError(f"method '{self.m.name}' runs the '{self.m.model}' weights; train that")
        if settings.search_reward not in SEARCH_REWARDS:
            raise SorterError(f"search reward '{settings.search_reward}' is unknown; choose one of: "
                              f"{', '.join(SEARCH_REWARDS)}")
        from sorter.cell.safety import SafetyEnvelope

        recipes = list(recipes) if isinstance(recipes, (list, tuple)) else [recipes]
        self.envelope = SafetyEnvelope.from_recipe(recipes[0])
        _check_same_geometry(recipes, self.envelope)
        self.settings, self.out = settings, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.grid = self.envelope.grid
        torch.manual_seed(settings.seed)
        self.net = QNetwork()
        self.agent = PushGraspAgent(self.net, self.m, self.envelope, exploration=Exploration(
            grasp_share=settings.grasp_share))
        self.learner = Learner(self.net, self.envelope, lr=settings.lr, batch_size=settings.batch_size)
        n = self.grid.cells // 2
        self.replay = ReplayBuffer(settings.replay_capacity, (n, n))
        self.rng = np.random.default_rng(settings.seed)
        self.state = TrainState()
        self.products = [_Product(r, self.m) for r in recipes]
        self.product = self.products[0]
        self.episode = _Episode()
        self.view: _View | None = None
        self.losses: deque = deque(maxlen=50)
        if resume:
            self._resume()
        elif (self.out / CHECKPOINT).exists():
            raise SorterError(f"{self.out} already holds a checkpoint; pass --resume to continue it or "
                              "choose another --out folder")
        elif settings.init:
            self._start_from(Path(settings.init))

    def _start_from(self, model: Path) -> None:
        """Copy a trained model's weights into the online and target networks (fresh replay, counters)."""
        net, meta, _ = load_model(model)
        if meta.get("method") != self.m.name:
            raise SorterError(f"--init {model} holds '{meta.get('method')}' weights, not '{self.m.name}'")
        self.net.load_state_dict(net.state_dict())
        self.learner.sync_target()

    def run(self, progress=None) -> Path:
        """Train until ``settings.iterations``; returns the final model file."""
        progress = progress or Progress(self.settings.iterations, sys.stderr)
        log_new = not (self.out / LOG).exists() or self.state.iteration == 0
        with open(self.out / LOG, "w" if log_new else "a", newline="") as fh:
            writer = csv.DictWriter(fh, LOG_FIELDS)
            if log_new:
                writer.writeheader()
            while self.state.iteration < self.settings.iterations:
                start = time.perf_counter()
                row = self._iterate()
                self.state.wall += time.perf_counter() - start
                row["wall_s"] = f"{self.state.wall:.1f}"
                writer.writerow(row)
                fh.flush()
                progress.update(self.state.iteration, self._rates())
                if self.state.iteration % self.settings.checkpoint_every == 0:
                    self.checkpoint()
        self.checkpoint()
        progress.finish()
        return self.out / MODEL

    def _rates(self) -> tuple[float, float]:
        g, p = self.state.grasp_hist, self.state.push_hist
        return (float(np.mean(g)) if g else math.nan, float(np.mean(p)) if p else math.nan)

    def _iterate(self) -> dict:
        """One action in the simulated cell, its reward, replay storage and learning."""
        if self.view is None or self._episode_over():
            self._new_episode()
        eps, guide = self.settings.schedule(self.state.iteration)
        self.agent.exploration = replace(self.agent.exploration, epsilon=eps, guide=guide)
        view = self.view
        self.net.eval()
        allowed = self.agent.allowed(view.obs, view.attention, view.heightmaps)
        decision = self.agent.decide_on(view.obs, view.heightmaps, self.rng, allowed, view.attention)
        self.net.train()
        kind = GRASP if decision.kind is ActionKind.GRASP else 0
        reward, nxt, explored = self._execute(decision, view)
        terminal = self._is_terminal(nxt)
        self.replay.add(view.obs, Step(kind, decision.pixel[0], decision.pixel[1], decision.pixel[2],
                                       reward, terminal), self.agent.last_greedy)
        self._count(kind, reward)
        self.view = nxt
        loss = self._learn()
        self.state.iteration += 1
        mode = view.attention.mode if view.attention is not None else "scene"
        return self._row(decision, mode, kind, reward, explored, eps, guide, loss)

    def _execute(self, decision, view: _View):
        """Run the action (unless safety refuses it) and score it; returns reward, next view, explored."""
        before = self.cell.truth.objects()
        hidden = self._searched_impurity(decision, view, before)
        occluded = self.cell.occlusion(hidden) if hidden is not None else None
        verdict = self.envelope.check(decision.action, view.heightmaps.height)
        explored = self.agent.explored
        if verdict.allowed:
            try:
                self.cell.robot.execute(verdict.action)
            except CellError:
                self.cell.robot.recover()
        after = self.cell.truth.objects()
        nxt = self._look()
        if decision.kind is ActionKind.GRASP:
            reward = rewards.grasp_reward(before, after, target_agnostic=self.m.grasp_any)
        elif self.m.push_reward == "change":
            reward = rewards.change_push_reward(view.heightmaps.height, nxt.heightmaps.height,
                                                self.m.change_value)
        else:
            target = rewards.nearest_impurity(before, self._push_anchor(decision, view))
            reward = rewards.push_reward_for(before, after, target, self.recipe.gripper.max_opening)
            if occluded is not None and any(o.id == hidden for o in rewards.on_table(after)):
                reward = max(reward, rewards.occlusion_push_reward(occluded, self.cell.occlusion(hidden)))
        return reward, nxt, explored

    def _searched_impurity(self, decision, view: _View, objects) -> int | None:
        """With ``search_reward: occlusion``, the impurity a search push (no impurity showing) may
        uncover: the one nearest the searched cluster; else None."""
        att = view.attention
        if (self.settings.search_reward != "occlusion" or decision.kind is ActionKind.GRASP
                or self.m.push_reward != "tcdd" or att is None or att.mode != "cluster"):
            return None
        return rewards.nearest_impurity(objects, self._push_anchor(decision, view))

    def _push_anchor(self, decision, view: _View) -> tuple[float, float]:
        """Where the push's target is looked for: the attended target, else the push's start."""
        att = view.attention
        if not self.m.whole_scene and att is not None and att.crop_center_xy is not None:
            return att.crop_center_xy
        return decision.action.x, decision.action.y

    def _is_terminal(self, view: _View) -> bool:
        left = self.cell.truth.impurities_remaining()
        return left == 0 or (view.attention is not None and view.attention.mode == "clean")

    def _count(self, kind: int, reward: float) -> None:
        success = reward > 0
        (self.state.grasp_hist if kind == GRASP else self.state.push_hist).append(float(success))
        ep = self.episode
        ep.actions += 1
        if success:
            ep.fail_kind, ep.fails = None, 0
        elif ep.fail_kind == kind:
            ep.fails += 1
        else:
            ep.fail_kind, ep.fails = kind, 1

    def _episode_over(self) -> bool:
        ep, s = self.episode, self.settings
        if self._is_terminal(self.view) or ep.fails >= s.max_failures or ep.actions >= s.episode_budget:
            if not self._is_terminal(self.view) and self.view.obs is not None:
                self.replay.add(self.view.obs, None)
            return True
        return False

    def _learn(self) -> float:
        if len(self.replay) < self.settings.warmup:
            return math.nan
        beta = 0.5 + 0.5 * min(1.0, self.state.iteration / max(1, self.settings.iterations))
        for _ in range(self.settings.updates_per_step):
            self.losses.append(self.learner.step(self.replay, self.rng, beta))
        return float(np.mean(self.losses))

    @property
    def cell(self):
        return self.product.cell

    @property
    def recipe(self):
        return self.product.recipe

    def _new_episode(self) -> None:
        """Reset a randomly drawn product's cell to a fresh scene of a random scenario, even seed."""
        from sorter.cell.sim.scenarios import SceneError

        names = [n for n, _ in self.settings.scenarios]
        weights = np.array([w for _, w in self.settings.scenarios], float)
        for _ in range(20):
            scenario = names[int(self.rng.choice(len(names), p=weights / weights.sum()))]
            seed = 2 * int(self.rng.integers(0, 2**30))
            self.product = self.products[int(self.rng.integers(len(self.products)))]
            self.agent.exploration = replace(self.agent.exploration, prior=self.product.prior)
            self.agent.strip_searches = self.recipe.policy.search_push == "strip"  # as it will run
            try:
                self.cell.reset(scenario, seed)
            except SceneError:
                continue
            self.state.episodes += 1
            self.episode = _Episode(self.state.episodes, scenario, seed)
            self.view = self._look()
            if not self._is_terminal(self.view):
                return
        raise SorterError("20 fresh scenes in a row were clean or could not be built; check the recipe's "
                          "sim.scenarios")

    def _look(self) -> _View:
        from sorter.perception.heightmap import compute_heightmaps

        hm = compute_heightmaps(self.cell.camera.read(), self.cell.camera_pose, self.grid)
        attender = self.product.attender
        att = attender.attend(hm) if attender is not None else None
        if att is not None and att.mode == "clean":
            return _View(hm, att, None)
        return _View(hm, att, self.agent.observe(att, hm))

    def _row(self, decision, mode: str, kind: int, reward: float, explored: bool, eps: float, guide: float,
             loss: float) -> dict:
        ep = self.episode
        return {"iteration": self.state.iteration, "episode": ep.index,
                "recipe": self.recipe.product.name, "scenario": ep.scenario,
                "episode_seed": ep.seed, "mode": mode, "kind": "grasp" if kind == GRASP else "push",
                "rotation": decision.pixel[0], "row": decision.pixel[1], "col": decision.pixel[2],
                "reward": reward, "success": int(reward > 0), "explored": int(explored),
                "epsilon": f"{eps:.3f}", "guide": f"{guide:.3f}", "q_push": f"{decision.q_push:.4f}",
                "q_grasp": f"{decision.q_grasp:.4f}", "loss": f"{loss:.5f}",
                "impurities_left": self.cell.truth.impurities_remaining(),
                "sim_time": f"{self.cell.time:.1f}"}

    def checkpoint(self) -> Path:
        """Write everything needed to resume, atomically (a crash leaves the previous checkpoint)."""
        from safetensors.numpy import save_file

        arrays = {f"net.{k}": v.detach().numpy() for k, v in self.net.state_dict().items()}
        arrays |= {f"target.{k}": v.detach().numpy() for k, v in self.learner.target.state_dict().items()}
        for i, st in enumerate(self.learner.optimizer.state.values()):
            if "momentum_buffer" in st and st["momentum_buffer"] is not None:
                arrays[f"optim.{i}"] = st["momentum_buffer"].numpy()
        arrays |= self.replay.state_dict()
        arrays["history.grasp"] = np.array(self.state.grasp_hist, np.float32)
        arrays["history.push"] = np.array(self.state.push_hist, np.float32)
        meta = {"settings": json.dumps(asdict(self.settings)),
                "rng": json.dumps(self.rng.bit_generator.state),
                "iteration": str(self.state.iteration), "episodes": str(self.state.episodes),
                "wall": f"{self.state.wall:.3f}", "learner_steps": str(self.learner.steps),
                "recipes": json.dumps([p.recipe.product.name for p in self.products]),
                "recipe_sha256": json.dumps([p.recipe.sha256 for p in self.products])}
        tmp = self.out / (CHECKPOINT + ".tmp")
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=meta)
        os.replace(tmp, self.out / CHECKPOINT)
        self.save_final()
        self._plot()
        return self.out / CHECKPOINT

    def _resume(self) -> None:
        from safetensors import safe_open

        path = self.out / CHECKPOINT
        if not path.is_file():
            raise SorterError(f"no checkpoint to resume in {self.out}; start without --resume")
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        saved = json.loads(meta["settings"])
        if saved["method"] != self.settings.method:
            raise SorterError(f"{path} trains '{saved['method']}', not '{self.settings.method}'")
        self.net.load_state_dict(_prefixed(arrays, "net."))
        self.learner.target.load_state_dict(_prefixed(arrays, "target."))
        for i, p in enumerate(self.net.parameters()):
            if f"optim.{i}" in arrays:
                self.learner.optimizer.state[p]["momentum_buffer"] = torch.from_numpy(arrays[f"optim.{i}"])
        self.replay.load_state_dict({k: v for k, v in arrays.items() if k.startswith("replay.")})
        self.rng.bit_generator.state = json.loads(meta["rng"])
        self.state.iteration, self.state.episodes = int(meta["iteration"]), int(meta["episodes"])
        self.state.wall, self.learner.steps = float(meta["wall"]), int(meta["learner_steps"])
        self.state.grasp_hist.extend(arrays["history.grasp"].tolist())
        self.state.push_hist.extend(arrays["history.push"].tolist())
        _truncate_log(self.out / LOG, self.state.iteration)

    def save_final(self) -> Path:
        """The weights so far as a plain model file ``load_agent`` reads (rewritten at every checkpoint)."""
        info = {"recipes": ",".join(p.recipe.product.name for p in self.products),
                "iterations": str(self.state.iteration),
                "wall_s": f"{self.state.wall:.0f}", "seed": str(self.settings.seed),
                "settings": json.dumps(asdict(self.settings))}
        save_model(self.out / MODEL, self.net, self.m, info)
        return self.out / MODEL

    def _plot(self) -> None:
        plot_progress(self.out / LOG, self.out / PLOT)


def checkpoint_iteration(out: Path) -> int:
    """The iteration the checkpoint in run folder ``out`` was written at (without loading its arrays)."""
    from safetensors import safe_open

    path = out / CHECKPOINT
    if not path.is_file():
        raise SorterError(f"no checkpoint to resume in {out}; start without --resume")
    with safe_open(str(path), framework="numpy") as f:
        return int(f.metadata()["iteration"])


def _truncate_log(log: Path, iteration: int) -> None:
    """Drop log rows written after the checkpoint being resumed (they will be redone)."""
    if not log.exists():
        return
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(log, "w", newline="") as fh:
        writer = csv.DictWriter(fh, LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r in rows if int(r["iteration"]) <= iteration)


def _check_same_geometry(recipes, envelope) -> None:
    from sorter.cell.safety import SafetyEnvelope

    for r in recipes[1:]:
        other = SafetyEnvelope.from_recipe(r)
        if (other.grid, other.gripper) != (envelope.grid, envelope.gripper):
            raise SorterError(f"recipe {r.path} has another workspace or gripper than {recipes[0].path}; "
                              "train one model per geometry")


def _prior(recipe, m):
    """The scripted heuristic guides exploration of methods that see the target; the others explore
    without target information, as their ablation demands."""
    if not m.use_mask:
        return None
    from sorter.policy.heuristic import HeuristicPolicy

    return HeuristicPolicy(recipe)


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix)}


def _attender(recipe):
    from sorter.perception.attention import load_attender

    return load_attender(recipe)


def plot_progress(log: Path, png: Path) -> None:
    """Grasp and push success over the last 300 attempts of each, against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not log.exists():
        return
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for kind, colour in (("grasp", "tab:blue"), ("push", "tab:pink")):
        its = [int(r["iteration"]) for r in rows if r["kind"] == kind]
        ok = np.array([int(r["success"]) for r in rows if r["kind"] == kind], float)
        if len(ok):
            c = np.cumsum(np.insert(ok, 0, 0.0))
            n = np.minimum(np.arange(1, len(ok) + 1), WINDOW)
            rate = (c[1:] - c[np.maximum(np.arange(1, len(ok) + 1) - WINDOW, 0)]) / n
            ax.plot(its, rate, color=colour, label=f"{kind} success (last {WINDOW})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


class Progress:
    """A one-line progress bar with ETA; plain lines every 10 iterations when not on a terminal."""

    def __init__(self, total: int, stream):
        self.total, self.stream = total, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.times: deque = deque(maxlen=50)
        self.last = time.perf_counter()

    def update(self, done: int, rates: tuple[float, float]) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now
        if not self.tty and done % 10 and done != self.total:
            return
        per = float(np.mean(self.times))
        eta = per * (self.total - done)
        bar = "#" * int(30 * done / max(1, self.total))
        text = (f"[{bar:<30}] {done}/{self.total} {per:.2f} s/it ETA {_hms(eta)} | "
                f"grasp {rates[0]:.2f} push {rates[1]:.2f} (last {WINDOW})")
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

