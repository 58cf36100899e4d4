"""Sorting metrics as pure functions of cycle and batch records.

The same functions score a simulated episode and a run read back from the run log. Ground-truth fields
(``picked_impurity``, batch impurity counts) are filled by the simulated cell or by an operator's flag on
a real line; where they are unknown the metrics that need them are None rather than guessed.

Cycle time is the robot's motion time (modelled from the recipe's speeds on the simulated cell, measured on
a real one) plus the perception and decision compute; camera capture is left out because the simulated
camera's ray casting says nothing about a real camera's latency.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sorter.runlog import BatchRecord, CycleRecord

GRASP = "grasp"
PUSH = "push"


def executed(cycles: Sequence[CycleRecord]) -> list[CycleRecord]:
    """Cycles whose action reached the robot and ran."""
    return [c for c in cycles if c.executed]


def grasp_attempts(cycles: Sequence[CycleRecord]) -> list[CycleRecord]:
    return [c for c in executed(cycles) if c.action_kind == GRASP]


def picks(cycles: Sequence[CycleRecord]) -> int:
    """Items delivered to the reject bin."""
    return sum(1 for c in grasp_attempts(cycles) if c.delivered)


def grasp_success(cycles: Sequence[CycleRecord]) -> float | None:
    """Share of executed grasps that held their item through the lift."""
    attempts = grasp_attempts(cycles)
    return sum(c.grasp_held for c in attempts) / len(attempts) if attempts else None


def false_picks(cycles: Sequence[CycleRecord]) -> int | None:
    """Product items delivered to the bin instead of impurities; None when no pick has a known truth."""
    delivered = [c for c in grasp_attempts(cycles) if c.delivered]
    known = [c for c in delivered if c.picked_impurity is not None]
    if delivered and not known:
        return None
    return sum(1 for c in known if c.picked_impurity is False)


def impurities_removed(cycles: Sequence[CycleRecord]) -> int:
    """Delivered items not known to be product (every delivered item counts when the truth is unknown)."""
    return sum(1 for c in grasp_attempts(cycles) if c.delivered and c.picked_impurity is not False)


def action_efficiency(cycles: Sequence[CycleRecord]) -> float | None:
    """Impurities removed per executed action (paper 2, section 6.1: N_object / N_action)."""
    actions = executed(cycles)
    return impurities_removed(cycles) / len(actions) if actions else None


def cycle_seconds(cycle: CycleRecord) -> float:
    """Motion time plus perception and decision compute of one cycle."""
    return cycle.motion_s + (cycle.ms_perception + cycle.ms_decision) / 1000.0


def picks_per_hour(cycles: Sequence[CycleRecord]) -> float | None:
    """Deliveries per hour of cycle time (motion plus perception and decision)."""
    seconds = sum(cycle_seconds(c) for c in cycles)
    return picks(cycles) * 3600.0 / seconds if seconds > 0 else None


def lost_items(cycles: Sequence[CycleRecord]) -> int:
    """Items held after the lift but not delivered to the bin."""
    return sum(1 for c in grasp_attempts(cycles) if c.grasp_held and not c.delivered)


def clean_batches(batches: Sequence[BatchRecord]) -> list[BatchRecord]:
    """Batches the loop declared clean."""
    return [b for b in batches if b.end_reason == "clean"]


def impurities_left(batches: Sequence[BatchRecord]) -> int | None:
    """Impurities still on the table when batches were declared clean (ground truth); None if unknown."""
    known = [b for b in clean_batches(batches) if b.impurities_left is not None]
    return sum(b.impurities_left for b in known) if known else None


def purity(batches: Sequence[BatchRecord]) -> float | None:
    """Share of the impurities in batches declared clean that were really removed (ground truth)."""
    known = [b for b in clean_batches(batches)
             if b.impurities_left is not None and b.impurities_at_start is not None]
    if not known:
        return None
    total = sum(b.impurities_at_start for b in known)
    left = sum(b.impurities_left for b in known)
    return 1.0 - left / total if total else 1.0


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class CycleTimeSplit:
    """Median compute per stage (ms) and mean motion time (s) over cycles that acted."""

    capture_ms: float | None
    perception_ms: float | None
    decision_ms: float | None
    motion_s: float | None
    overhead_share: float | None  # (perception + decision) / motion, medians


def cycle_time_split(cycles: Sequence[CycleRecord]) -> CycleTimeSplit:
    acted = [c for c in cycles if c.action_kind]
    perception = _median([c.ms_perception for c in cycles])
    decision = _median([c.ms_decision for c in acted])
    motion = _median([c.motion_s for c in executed(cycles)])
    share = None
    if perception is not None and decision is not None and motion:
        share = (perception + decision) / 1000.0 / motion
    return CycleTimeSplit(_median([c.ms_capture for c in cycles]), perception, decision, motion, share)


@dataclass(frozen=True)
class RunMetrics:
    """Every headline figure of a run or episode; None where the records cannot tell."""

    cycles: int
    actions: int
    grasps: int
    pushes: int
    picks: int
    grasp_success: float | None
    action_efficiency: float | None
    picks_per_hour: float | None
    false_picks: int | None
    lost_items: int
    refusals: int
    batches: int
    clean_batches: int
    purity: float | None
    impurities_left: int | None
    time: CycleTimeSplit

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(cycles: Sequence[CycleRecord], batches: Sequence[BatchRecord]) -> RunMetrics:
    """All metrics of one run from its cycle and batch records."""
    acts = executed(cycles)
    return RunMetrics(
        cycles=len(cycles),
        actions=len(acts),
        grasps=sum(1 for c in acts if c.action_kind == GRASP),
        pushes=sum(1 for c in acts if c.action_kind == PUSH),
        picks=picks(cycles),
        grasp_success=grasp_success(cycles),
        action_efficiency=action_efficiency(cycles),
        picks_per_hour=picks_per_hour(cycles),
        false_picks=false_picks(cycles),
        lost_items=lost_items(cycles),
        refusals=sum(1 for c in cycles if c.safety == "refused"),
        batches=len(batches),
        clean_batches=len(clean_batches(batches)),
        purity=purity(batches),
        impurities_left=impurities_left(batches),
        time=cycle_time_split(cycles),
    )
