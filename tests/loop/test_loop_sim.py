"""The pick loop on the simulated cell: state machine, commands, faults injected through the sim, picking."""

from __future__ import annotations

import numpy as np
import pytest

from sorter.cell.base import Action, ActionKind
from sorter.loop import (
    AlarmCode,
    AlarmRaised,
    CycleDone,
    FrameOverlay,
    LoopError,
    LoopOptions,
    LoopState,
    RunLimits,
    StateChanged,
    Subscription,
)
from sorter.metrics import summarize
from sorter.policy.base import Decision, Policy
from tests.loop.conftest import make_loop, wait_for

S = LoopState


def state_is(state):
    return lambda e: isinstance(e, StateChanged) and e.new == state


def transitions(events):
    return [(e.old, e.new) for e in events if isinstance(e, StateChanged)]


def test_pause_resume_and_stop_go_through_the_documented_states(toy_recipe, cell, attender, runlog):
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits())
    events, seen = loop.subscribe(), []
    loop.start()
    wait_for(events, lambda e: isinstance(e, CycleDone), seen)
    loop.pause()
    wait_for(events, state_is(S.PAUSED), seen)
    cycles_when_paused = loop.progress().cycles
    loop.pause()
    loop.resume()
    wait_for(events, state_is(S.RUNNING), seen)
    wait_for(events, lambda e: isinstance(e, CycleDone) and e.record.number > cycles_when_paused, seen)
    loop.stop("test stop")
    assert loop.join(timeout=120)
    seen.extend(events.drain())
    assert transitions(seen) == [(S.IDLE, S.RUNNING), (S.RUNNING, S.PAUSED), (S.PAUSED, S.RUNNING),
                                 (S.RUNNING, S.STOPPING), (S.STOPPING, S.STOPPED)]
    assert loop.state is S.STOPPED
    info = runlog.run(loop.run_id)
    assert info.end_reason == "test stop" and info.finished
    assert [c.number for c in runlog.cycles(loop.run_id)] == list(range(1, loop.progress().cycles + 1))
    with pytest.raises(LoopError):
        loop.start()


def test_a_stop_while_paused_ends_the_run_without_another_cycle(toy_recipe, cell, attender, runlog):
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits())
    events = loop.subscribe()
    loop.pause()
    loop.start()
    wait_for(events, state_is(S.PAUSED))
    loop.stop("closed while paused")
    assert loop.join(timeout=120)
    assert loop.result.metrics.cycles == 0 and loop.result.end_reason == "closed while paused"


def test_observers_never_block_the_loop_and_frames_drop_oldest():
    sub = Subscription(max_frames=2, max_events=3)
    frames = [FrameOverlay(i, *([None] * 11)) for i in range(5)]
    for f in frames:
        sub.put(f)
    for i in range(5):
        sub.put(StateChanged(S.IDLE, S.RUNNING, str(i)))
    kept = sub.drain()
    assert [e.cycle for e in kept if isinstance(e, FrameOverlay)] == [3, 4]
    assert [e.reason for e in kept if isinstance(e, StateChanged)] == ["2", "3", "4"]
    assert sub.dropped == 5 and sub.get(timeout=0) is None


def test_camera_dropouts_within_the_retries_are_absorbed(toy_recipe, cell, attender, runlog):
    cell.sim.faults.camera_dropouts = toy_recipe.camera.retries
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(max_cycles=1),
                     options=LoopOptions(unattended=True, frames=False))
    result = loop.run()
    assert result.end_reason == "max cycles reached (1)" and runlog.alarms(loop.run_id) == []
    assert cell.sim.faults.camera_dropouts == 0


def test_a_camera_that_keeps_timing_out_faults_until_acknowledged(toy_recipe, cell, attender, runlog):
    cell.sim.faults.camera_dropouts = toy_recipe.camera.retries + 1
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(max_cycles=1))
    events, seen = loop.subscribe(), []
    loop.start()
    alarm = wait_for(events, lambda e: isinstance(e, AlarmRaised), seen).alarm
    wait_for(events, state_is(S.FAULTED), seen)
    assert alarm.code == AlarmCode.CAMERA_TIMEOUT and alarm.needs_ack
    assert "camera" in alarm.message
    loop.resume()
    loop.acknowledge(alarm.id)
    back = wait_for(events, state_is(S.RUNNING), seen)
    assert "acknowledged" in back.reason
    assert loop.join(timeout=120)
    assert loop.result.metrics.cycles == 1
    (stored,) = runlog.alarms(loop.run_id)
    assert stored.acknowledged_at is not None and stored.acknowledged_at >= stored.raised_at


def test_unattended_camera_fault_ends_the_run_with_the_alarm(toy_recipe, cell, attender, runlog):
    cell.sim.faults.camera_dropouts = 100
    loop = make_loop(toy_recipe, cell, attender, runlog,
                     options=LoopOptions(unattended=True, frames=False))
    result = loop.run()
    assert result.state is S.STOPPED and result.fault.code == AlarmCode.CAMERA_TIMEOUT
    assert result.end_reason.startswith("camera timeout")
    assert runlog.run(loop.run_id).end_reason == result.end_reason


def test_a_protective_stop_pauses_until_acknowledged_and_the_robot_is_ready(toy_recipe, cell, attender,
                                                                            runlog):
    cell.sim.faults.protective_stop_next_action = True
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(max_cycles=3))
    events, seen = loop.subscribe(), []
    loop.start()
    alarm = wait_for(events, lambda e: isinstance(e, AlarmRaised), seen).alarm
    wait_for(events, state_is(S.PAUSED), seen)
    assert alarm.code == AlarmCode.PROTECTIVE_STOP
    loop.resume()
    loop.acknowledge(alarm.id)
    back = wait_for(events, state_is(S.RUNNING), seen)
    assert back.reason == "protective stop acknowledged"
    assert loop.join(timeout=180)
    records = runlog.cycles(loop.run_id)
    assert records[0].outcome == "robot stop" and "protective stop" in records[0].error
    assert any(r.executed for r in records[1:])
    (stored,) = runlog.alarms(loop.run_id)
    assert stored.acknowledged_at is not None
    assert cell.robot.status() == "ready"


def test_a_slipping_item_is_recorded_as_lost(toy_recipe, cell, attender, runlog):
    cell.sim.faults.slip_next_grasp = True
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(max_cycles=12),
                     options=LoopOptions(unattended=True, frames=False))
    result = loop.run()
    lost = [c for c in runlog.cycles(loop.run_id) if c.outcome == "lost"]
    assert len(lost) == 1 and lost[0].grasp_held and not lost[0].delivered
    assert result.metrics.lost_items == 1
    assert [a.code for a in runlog.alarms(loop.run_id)].count(str(AlarmCode.ITEM_LOST)) == 1


class GraspAtEmptyTable(Policy):
    """A policy that always grasps the same empty spot: every grasp there must miss."""

    name = "empty-spot"

    def __init__(self, recipe):
        self.grid = recipe.workspace.grid()
        self.spot = None

    def decide(self, attention, heightmaps, rng):
        if self.spot is None:
            self.spot = self._emptiest(heightmaps.height)
        x, y = self.spot
        return Decision(Action(ActionKind.GRASP, x, y, 0.01, 0.0), 0.0, 1.0, (0, 0, 0))

    def _emptiest(self, height):
        """The candidate point farthest from anything taller than 5 mm."""
        rows, cols = np.nonzero(height > 0.005)
        ox, oy = self.grid.center_of(rows, cols)
        best, best_d = None, -1.0
        for x in np.linspace(self.grid.x_min + 0.07, self.grid.x_max - 0.07, 9):
            for y in np.linspace(self.grid.y_min + 0.07, self.grid.y_max - 0.07, 9):
                d = float(np.hypot(ox - x, oy - y).min()) if rows.size else 1.0
                if d > best_d:
                    best, best_d = (float(x), float(y)), d
        return best


def test_the_same_spot_failing_k_times_is_pushed_then_masked(toy_recipe, cell, attender, runlog):
    k = toy_recipe.loop.max_consecutive_failures
    loop = make_loop(toy_recipe, cell, attender, runlog, policy=GraspAtEmptyTable(toy_recipe),
                     limits=RunLimits(max_cycles=2 * k + 2),
                     options=LoopOptions(unattended=True, frames=False))
    loop.run()
    acted = [c for c in runlog.cycles(loop.run_id) if c.action_kind]
    assert [c.action_kind for c in acted] == ["grasp"] * k + ["push"] + ["grasp"] * k + ["push"]
    assert all(c.outcome == "missed" for c in acted if c.action_kind == "grasp")
    assert acted[k].override == "push after repeated failures"
    assert acted[-1].override == "push at a masked spot"
    codes = [a.code for a in runlog.alarms(loop.run_id)]
    assert codes.count(str(AlarmCode.REPEATED_FAILURE)) == 2


def test_a_short_run_picks_the_impurities(toy_recipe, cell, attender, runlog):
    """Seeded: 5 deliveries within 30 cycles, every one an impurity, every clean batch really clean."""
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(max_picks=5, max_cycles=30),
                     options=LoopOptions(unattended=True, frames=False, seed=1))
    result = loop.run()
    m = summarize(runlog.cycles(loop.run_id), runlog.batches(loop.run_id))
    assert result.end_reason == "max picks reached (5)"
    assert m.picks == 5 and m.false_picks == 0
    assert m.grasp_success >= 0.7 and m.action_efficiency >= 0.5
    assert m.clean_batches >= 1 and m.purity >= 0.9
    assert m.picks_per_hour > 100
    assert result.metrics == m


def test_a_robot_that_cannot_start_ends_the_run_with_its_message(toy_recipe, cell, attender, runlog):
    cell.robot.disconnect()
    loop = make_loop(toy_recipe, cell, attender, runlog)
    loop.start()
    assert loop.join(timeout=60)
    assert loop.state is S.STOPPED
    assert "disconnected" in str(loop.error)
    info = runlog.run(loop.run_id)
    assert info.finished and "disconnected" in info.end_reason


def test_a_duration_limit_counts_simulated_seconds(toy_recipe, cell, attender, runlog):
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(duration_s=15.0, max_cycles=40),
                     options=LoopOptions(unattended=True, frames=False))
    start = cell.sim.time
    result = loop.run()
    assert result.end_reason == "duration reached (15 s of simulated time)"
    records = runlog.cycles(loop.run_id)
    assert cell.sim.time - start >= 15.0
    assert records[-2].cell_time - start < 15.0 + 1e-9


def test_an_operator_pause_during_a_fault_holds_after_the_acknowledge(toy_recipe, cell, attender, runlog):
    cell.sim.faults.camera_dropouts = toy_recipe.camera.retries + 1
    loop = make_loop(toy_recipe, cell, attender, runlog, limits=RunLimits(max_cycles=1))
    events, seen = loop.subscribe(), []
    loop.start()
    alarm = wait_for(events, lambda e: isinstance(e, AlarmRaised), seen).alarm
    wait_for(events, state_is(S.FAULTED), seen)
    loop.pause()
    loop.acknowledge(alarm.id)
    held = wait_for(events, state_is(S.PAUSED), seen)
    assert held.old == S.FAULTED and "paused by operator" in held.reason
    loop.resume()
    wait_for(events, state_is(S.RUNNING), seen)
    assert loop.join(timeout=120) and loop.result.metrics.cycles == 1
