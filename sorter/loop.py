"""The continuous pick loop: batch after batch of capture, attention, decide, safety check, execute, verify,
record; a small state machine with a thread-safe command API and non-blocking observers.

States: Idle -> Running <-> Paused, Running/Paused -> Faulted -> Running (after acknowledge; Paused if
the operator also paused), any live state -> Stopping -> Stopped. State changes happen only in the thread
that runs the loop, at cycle boundaries; the commands below only queue requests, so they are safe to call
from any thread.

Use from a GUI (the loop runs in its own worker thread)::

    loop = PickLoop(recipe, cell, policy, attender, runlog, rng)
    events = loop.subscribe()          # a Subscription: events.get(timeout) never blocks the loop
    loop.start()                       # worker thread; or loop.run() to run in the calling thread
    loop.pause(); loop.resume()        # take effect between cycles
    loop.acknowledge(alarm_id)         # clears an alarm; a protective stop calls robot.recover()
    loop.next_batch()                  # the operator's next-batch button (recipe loop.next_batch.signal)
    loop.stop("operator")              # finishes the cycle in flight, then Stopped
    loop.join()

Events are ``StateChanged``, ``BatchStarted``, ``BatchEnded``, ``CycleDone``, ``FrameOverlay``,
``AlarmRaised``, ``AlarmAcknowledged`` and ``RunEnded``. Each subscriber has its own queue; frame overlays
drop the oldest when the subscriber falls behind, other events are kept (up to a large bound).

Faults: a camera that gives no frame after the recipe's retries faults the loop; a protective or emergency
stop pauses it until the operator acknowledges and the robot reports ready; the same spot failing
``loop.max_consecutive_failures`` grasps in a row gets a push through it, and after another such series it
is masked for the rest of the batch; a held item that does not reach the bin is recorded as lost. With
``LoopOptions.unattended`` (the command line), an alarm that needs an operator ends the run instead.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sorter.cell.base import (
    Action,
    ActionKind,
    CameraError,
    CameraTimeout,
    EmergencyStop,
    Outcome,
    ProtectiveStop,
    RGBDFrame,
    RobotError,
    RobotStatus,
)
from sorter.cell.safety import SafetyEnvelope, SafetyVerdict
from sorter.errors import SorterError
from sorter.geometry import N_ROTATIONS, PUSH_LENGTH, rotation_angle
from sorter.metrics import RunMetrics, summarize
from sorter.runlog import AlarmRecord, BatchRecord, CycleRecord, RunInfo, RunLog

log = logging.getLogger(__name__)

RECENT_CYCLES = 500  # cycle records kept in memory for observers; the run log keeps every one


class LoopState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAULTED = "faulted"


TRANSITIONS: dict[LoopState, frozenset[LoopState]] = {
    LoopState.IDLE: frozenset({LoopState.RUNNING, LoopState.STOPPING}),
    LoopState.RUNNING: frozenset({LoopState.PAUSED, LoopState.FAULTED, LoopState.STOPPING}),
    LoopState.PAUSED: frozenset({LoopState.RUNNING, LoopState.FAULTED, LoopState.STOPPING}),
    LoopState.FAULTED: frozenset({LoopState.RUNNING, LoopState.PAUSED, LoopState.STOPPING}),
    LoopState.STOPPING: frozenset({LoopState.STOPPED}),
    LoopState.STOPPED: frozenset(),
}


class LoopError(SorterError):
    """A command the loop cannot accept in its current state, or an illegal state change."""


class AlarmCode(enum.StrEnum):
    CAMERA_TIMEOUT = "camera timeout"
    CAMERA_ERROR = "camera error"
    PROTECTIVE_STOP = "protective stop"
    EMERGENCY_STOP = "emergency stop"
    ROBOT_ERROR = "robot error"
    ROBOT_NOT_READY = "robot not ready"
    PERCEPTION_ERROR = "perception error"
    POLICY_ERROR = "policy error"
    INTERNAL_ERROR = "internal error"
    ITEM_LOST = "item lost"
    REPEATED_FAILURE = "repeated grasp failure"
    SAFETY_REFUSAL = "safety refusal"
    BATCH_ACTION_LIMIT = "batch action limit"


PAUSING_ALARMS = frozenset({AlarmCode.PROTECTIVE_STOP, AlarmCode.EMERGENCY_STOP, AlarmCode.ROBOT_NOT_READY})
WARNING_ALARMS = frozenset({AlarmCode.ITEM_LOST, AlarmCode.REPEATED_FAILURE, AlarmCode.SAFETY_REFUSAL,
                            AlarmCode.BATCH_ACTION_LIMIT})


@dataclass(frozen=True)
class RunLimits:
    """When a run ends by itself: picks delivered, seconds of cell time (simulated on the sim), cycles."""

    max_picks: int | None = None
    duration_s: float | None = None
    max_cycles: int | None = None


@dataclass(frozen=True)
class LoopOptions:
    """How a run behaves: dry run (decide, never move), unattended (alarms end the run), who runs it."""

    dry_run: bool = False
    unattended: bool = False
    operator: str = ""
    seed: int | None = None
    model_sha256: str = ""
    frames: bool = True  # publish FrameOverlay events (the GUI's live view)


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class StateChanged:
    old: LoopState
    new: LoopState
    reason: str


@dataclass(frozen=True)
class BatchStarted:
    batch: BatchRecord


@dataclass(frozen=True)
class BatchEnded:
    batch: BatchRecord


@dataclass(frozen=True)
class Progress:
    """Running totals for status lines and counters."""

    state: LoopState
    batch: int
    cycles: int
    actions: int
    picks: int
    grasp_success: float | None
    picks_per_hour: float | None
    cell_time: float


@dataclass(frozen=True)
class CycleDone:
    record: CycleRecord
    progress: Progress


@dataclass(frozen=True)
class FrameOverlay:
    """What the live view draws over the camera image: maps are on the workspace grid (row = y, col = x)."""

    cycle: int
    image: np.ndarray
    color: np.ndarray
    height: np.ndarray
    attention_mode: str
    saliency: np.ndarray | None
    target_mask: np.ndarray | None
    regions: tuple
    cluster: object
    q_map: np.ndarray | None
    action: Action | None
    verdict: SafetyVerdict | None
    sighting: np.ndarray | None = None  # cluster search: what a guard saw unlike the product


@dataclass(frozen=True)
class AlarmRaised:
    alarm: AlarmRecord


@dataclass(frozen=True)
class AlarmAcknowledged:
    alarm_id: int
    acknowledged_at: float


@dataclass(frozen=True)
class RunEnded:
    run_id: int
    reason: str
    metrics: RunMetrics


Event = (StateChanged | BatchStarted | BatchEnded | CycleDone | FrameOverlay | AlarmRaised
         | AlarmAcknowledged | RunEnded)


class Subscription:
    """One observer's queue. ``put`` never blocks: old frames are dropped first, then the oldest events."""

    def __init__(self, max_frames: int = 2, max_events: int = 10_000):
        self._items: collections.deque = collections.deque()
        self._frames = 0
        self._max_frames = max_frames
        self._max_events = max_events
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, event: Event) -> None:
        with self._cond:
            if isinstance(event, FrameOverlay):
                if self._frames >= self._max_frames:
                    self._drop_oldest_frame()
                self._frames += 1
            elif len(self._items) - self._frames >= self._max_events:
                self._drop_oldest_event()
            self._items.append(event)
            self._cond.notify_all()

    def _drop_oldest_frame(self) -> None:
        for i, item in enumerate(self._items):
            if isinstance(item, FrameOverlay):
                del self._items[i]
                self._frames -= 1
                self.dropped += 1
                return

    def _drop_oldest_event(self) -> None:
        for i, item in enumerate(self._items):
            if not isinstance(item, FrameOverlay):
                del self._items[i]
                self.dropped += 1
                return

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever); None when none came."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            item = self._items.popleft()
            if isinstance(item, FrameOverlay):
                self._frames -= 1
            return item

    def drain(self) -> list[Event]:
        """Every queued event, without waiting."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._frames = 0
            return items


# ------------------------------------------------------------------------------------ failure memory


@dataclass
class _Spot:
    x: float
    y: float
    failures: int = 0
    pushes: int = 0
    masked: bool = False


class FailureMemory:
    """Grasp failures per spot in the current batch (paper 2, 6.3: the same action failing 3 times).

    After K failures in a row at a spot the next grasp there becomes a push through it; after K more the
    spot is masked: attention hides it from the policy, and any grasp still aimed at it becomes a push.
    """

    def __init__(self, limit: int, radius: float):
        self.limit = limit
        self.radius = radius
        self.spots: list[_Spot] = []

    def clear(self) -> None:
        self.spots.clear()

    def spot_at(self, x: float, y: float) -> _Spot | None:
        for spot in self.spots:
            if math.hypot(spot.x - x, spot.y - y) <= self.radius:
                return spot
        return None

    def note(self, action: Action, success: bool) -> bool:
        """Count a failed grasp (or refusal) at the action's spot; True when this masks the spot."""
        spot = self.spot_at(action.x, action.y)
        if success:
            if spot is not None:
                spot.failures = 0
            return False
        if spot is None:
            spot = _Spot(action.x, action.y)
            self.spots.append(spot)
        spot.failures += 1
        if spot.failures >= self.limit and spot.pushes > 0 and not spot.masked:
            spot.masked = True
            return True
        return False

    def push_due(self, action: Action) -> _Spot | None:
        """The spot a grasp aims at when it must become a push: K failures not yet pushed, or masked."""
        spot = self.spot_at(action.x, action.y)
        if spot is None or action.kind is not ActionKind.GRASP:
            return None
        return spot if spot.masked or (spot.failures >= self.limit and spot.pushes == 0) else None

    def masked(self) -> list[_Spot]:
        return [s for s in self.spots if s.masked]

    def pushed(self, spot: _Spot) -> None:
        spot.pushes += 1
        spot.failures = 0


def push_through(spot_x: float, spot_y: float, preferred: float, envelope: SafetyEnvelope,
                 z: float) -> Action | None:
    """A push whose stroke passes through the spot's centre, trying directions from ``preferred`` on."""
    for k in range(N_ROTATIONS):
        angle = preferred + rotation_angle(k)
        half = PUSH_LENGTH / 2
        start = Action(ActionKind.PUSH, spot_x - half * math.cos(angle), spot_y - half * math.sin(angle),
                       z, angle)
        if envelope.contains(start):
            return start
    return None


# ---------------------------------------------------------------------------------------------- loop


class _Fault(Exception):
    """Raised inside a cycle to stop it with an alarm."""

    def __init__(self, code: AlarmCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Counters:
    cycles: int = 0
    actions: int = 0
    grasps: int = 0
    held: int = 0
    picks: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its id in the run log, why, the final state, the metrics and any fault alarm."""

    run_id: int
    end_reason: str
    state: LoopState
    metrics: RunMetrics
    fault: AlarmRecord | None = None


@dataclass
class _Batch:
    record: BatchRecord
    actions: int = 0
    clean_streak: int = 0


@dataclass
class _Timer:
    marks: dict[str, float] = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = (now - self._t) * 1000.0
        self._t = now


class PickLoop:
    """Runs sorting cycles on a cell until a limit, an operator stop or an alarm ends the run."""

    def __init__(self, recipe, cell, policy, attender, runlog: RunLog, rng: np.random.Generator,
                 limits: RunLimits = RunLimits(), options: LoopOptions = LoopOptions(),
                 heightmapper: Callable | None = None):
        if heightmapper is None:
            from sorter.perception.heightmap import compute_heightmaps as heightmapper
        self.recipe = recipe
        self.cell = cell
        self.policy = policy
        self.attender = attender
        self.runlog = runlog
        self.rng = rng
        self.limits = limits
        self.options = options
        self.envelope = SafetyEnvelope.from_recipe(recipe)
        self._heightmapper = heightmapper
        self._grid = recipe.workspace.grid()
        self._state = LoopState.IDLE
        self._lock = threading.Lock()
        self._commands: queue.Queue = queue.Queue()
        self._subscribers: list[Subscription] = []
        self._thread: threading.Thread | None = None
        self._recent: collections.deque[CycleRecord] = collections.deque(maxlen=RECENT_CYCLES)
        self._batch_count = 0
        self._alarms: dict[int, AlarmRecord] = {}
        self._blocking: AlarmRecord | None = None
        self._operator_pause = False
        self._next_batch_pressed = False
        self._stop_reason = ""
        self._counters = _Counters()
        self._batch: _Batch | None = None
        self._failures = FailureMemory(recipe.loop.max_consecutive_failures, recipe.gripper.max_opening / 2)
        self._t0 = 0.0
        self.run_id: int | None = None
        self.result: RunResult | None = None
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ thread-safe command API

    @property
    def state(self) -> LoopState:
        with self._lock:
            return self._state

    def subscribe(self, max_frames: int = 2, max_events: int = 10_000) -> Subscription:
        """A new observer queue that receives every event from now on."""
        sub = Subscription(max_frames, max_events)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def start(self) -> threading.Thread:
        """Run the loop in a worker thread; returns it. Raises LoopError unless the loop is Idle."""
        with self._lock:
            if self._state is not LoopState.IDLE or self._thread is not None:
                raise LoopError(f"the loop can start only once, from idle (it is {self._state})")
            self._thread = threading.Thread(target=self._run_guarded, name="pick-loop", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread; True when it has finished."""
        if self._thread is None:
            return self.state is LoopState.STOPPED
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def pause(self) -> None:
        self._commands.put(("pause", None))

    def resume(self) -> None:
        self._commands.put(("resume", None))

    def stop(self, reason: str = "stopped by operator") -> None:
        self._commands.put(("stop", reason))

    def acknowledge(self, alarm_id: int) -> None:
        self._commands.put(("ack", alarm_id))

    def next_batch(self) -> None:
        self._commands.put(("next", None))

    @property
    def alarms(self) -> list[AlarmRecord]:
        with self._lock:
            return list(self._alarms.values())

    @property
    def recent_cycles(self) -> list[CycleRecord]:
        """The last cycles of this run (the run log holds them all)."""
        with self._lock:
            return list(self._recent)

    # ------------------------------------------------------------------ running

    def _run_guarded(self) -> None:
        """The worker thread's body: an error that ends the run is kept in ``error`` for the caller."""
        try:
            self.run()
        except SorterError as exc:
            self.error = exc
        except Exception as exc:
            log.exception("the pick loop ended with an unexpected error")
            self.error = exc

    def run(self) -> RunResult:
        """Run in the calling thread until the run ends; returns how it ended."""
        with self._lock:
            if self._state is not LoopState.IDLE:
                raise LoopError(f"the loop can run only once, from idle (it is {self._state})")
        try:
            self._begin()
            reason = self._main()
        except BaseException as exc:
            self._finish(_ended_by(exc))
            raise
        self._finish(reason)
        return self.result

    def _begin(self) -> None:
        r = self.recipe
        if (self.cell.sim is None and r.loop.next_batch.signal == "digital-input"
                and not hasattr(self.cell.robot, "digital_input")):
            raise LoopError("the recipe waits for a digital input between batches (loop.next_batch.signal) "
                            "but this robot adapter cannot read inputs; use 'operator' or 'timer'")
        info = RunInfo(
            recipe_name=r.product.name, recipe_path=str(r.path or ""), recipe_sha256=r.sha256,
            policy=getattr(self.policy, "name", type(self.policy).__name__),
            model_sha256=self.options.model_sha256, cell="sim" if self.cell.sim is not None else "hardware",
            operator=self.options.operator, seed=self.options.seed, dry_run=self.options.dry_run,
            started_at=time.time())
        self.run_id = self.runlog.start_run(info)
        self._t0 = self._cell_clock()
        self._transition(LoopState.RUNNING, "run started")
        if not self.options.dry_run:
            self.cell.robot.home()

    def _main(self) -> str:
        while True:
            reason = self._between_cycles()
            if reason:
                return reason
            if self._batch is None:
                reason = self._guarded(self._start_batch)
                if reason:
                    return reason
                continue
            self._guarded(self._cycle)

    def _between_cycles(self) -> str:
        """Apply queued commands, hold while paused or faulted, check the limits; a reason ends the run."""
        self._apply_commands(block=False)
        while self.state in (LoopState.PAUSED, LoopState.FAULTED) and not self._stop_reason:
            if self.options.unattended and self._blocking is not None:
                return f"{self._blocking.code}: {self._blocking.message}"
            self._apply_commands(block=True)
        if self._stop_reason:
            return self._stop_reason
        return self._limit_reached()

    def _limit_reached(self) -> str:
        lim, c = self.limits, self._counters
        if lim.max_picks is not None and c.picks >= lim.max_picks:
            return f"max picks reached ({c.picks})"
        if lim.max_cycles is not None and c.cycles >= lim.max_cycles:
            return f"max cycles reached ({c.cycles})"
        if lim.duration_s is not None and self._cell_clock() - self._t0 >= lim.duration_s:
            return f"duration reached ({lim.duration_s:g} s of {self._clock_name()} time)"
        return ""

    def _apply_commands(self, block: bool) -> None:
        """Handle queued commands; with ``block`` wait (briefly) for one first."""
        try:
            cmd = self._commands.get(timeout=0.1) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(*cmd)
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return

    def _apply(self, name: str, arg: object) -> None:
        state = self.state
        if name == "stop" and not self._stop_reason:
            self._stop_reason = str(arg)
        elif name == "pause" and state in (LoopState.RUNNING, LoopState.PAUSED, LoopState.FAULTED):
            self._operator_pause = True
            if state is LoopState.RUNNING:
                self._transition(LoopState.PAUSED, "paused by operator")
        elif name == "resume" and state is LoopState.PAUSED:
            self._operator_pause = False
            if self._blocking is None:
                self._transition(LoopState.RUNNING, "resumed by operator")
        elif name == "ack":
            self._acknowledge(int(arg))
        elif name == "next":
            self._next_batch_pressed = True

    def _acknowledge(self, alarm_id: int) -> None:
        alarm = self._alarms.get(alarm_id)
        if alarm is None or alarm.acknowledged_at is not None:
            return
        now = time.time()
        self.runlog.acknowledge_alarm(alarm_id, now)
        with self._lock:
            self._alarms[alarm_id] = dataclasses.replace(alarm, acknowledged_at=now)
        self._publish(AlarmAcknowledged(alarm_id, now))
        if self._blocking is not None and self._blocking.id == alarm_id:
            self._clear_blocking(alarm)

    def _clear_blocking(self, alarm: AlarmRecord) -> None:
        """After the operator acknowledged the alarm that holds the loop: recover the robot, then resume."""
        self._blocking = None
        if alarm.code in PAUSING_ALARMS:
            problem = self._recover_robot()
            if problem:
                self._alarm(AlarmCode.ROBOT_NOT_READY, problem)
                return
        if self._operator_pause:
            if self.state is LoopState.FAULTED:
                self._transition(LoopState.PAUSED, f"{alarm.code} acknowledged; paused by operator")
            return
        self._transition(LoopState.RUNNING, f"{alarm.code} acknowledged")

    def _recover_robot(self) -> str:
        robot = self.cell.robot
        try:
            robot.recover()
            status = robot.status()
        except SorterError as exc:
            return f"recovery failed: {exc}"
        if status is not RobotStatus.READY:
            return f"the robot reports '{status}' after recovery; clear the cause at the pendant and " \
                   "acknowledge again"
        return ""

    def _finish(self, reason: str) -> None:
        if self.run_id is None:
            with self._lock:
                self._state = LoopState.STOPPED
            return
        if self.state is not LoopState.STOPPED:
            if self.state is not LoopState.STOPPING:
                self._transition(LoopState.STOPPING, reason)
            self._end_batch("run ended")
            metrics = summarize(self.runlog.cycles(self.run_id), self.runlog.batches(self.run_id))
            self.runlog.end_run(self.run_id, reason, _summary_dict(metrics))
            self.result = RunResult(self.run_id, reason, LoopState.STOPPED, metrics, self._last_fault())
            self._transition(LoopState.STOPPED, reason)
            self._publish(RunEnded(self.run_id, reason, metrics))

    def _last_fault(self) -> AlarmRecord | None:
        faults = [a for a in self._alarms.values() if a.needs_ack]
        return faults[-1] if faults else None

    # ------------------------------------------------------------------ state and events

    def _transition(self, new: LoopState, reason: str) -> None:
        with self._lock:
            old = self._state
            if new not in TRANSITIONS[old]:
                raise LoopError(f"illegal state change {old} -> {new} ({reason})")
            self._state = new
        log.info("loop %s -> %s: %s", old, new, reason)
        self._publish(StateChanged(old, new, reason))

    def _publish(self, event: Event) -> None:
        if isinstance(event, FrameOverlay) and not self.options.frames:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(event)

    def _alarm(self, code: AlarmCode, message: str) -> AlarmRecord:
        """Record and publish an alarm; one that needs an operator pauses or faults the loop."""
        needs_ack = code not in WARNING_ALARMS
        severity = "warning" if not needs_ack else ("stop" if code in PAUSING_ALARMS else "fault")
        alarm = self.runlog.raise_alarm(self.run_id, str(code), severity, message, needs_ack)
        with self._lock:
            self._alarms[alarm.id] = alarm
        self._publish(AlarmRaised(alarm))
        log.info("alarm %s: %s", code, message)
        if needs_ack:
            self._blocking = alarm
            target = LoopState.PAUSED if code in PAUSING_ALARMS else LoopState.FAULTED
            if self.state is not target:
                self._transition(target, f"{code}: {message}")
        return alarm

    def _cell_clock(self) -> float:
        sim = self.cell.sim
        return float(sim.time) if sim is not None else time.monotonic()

    def _clock_name(self) -> str:
        return "simulated" if self.cell.sim is not None else "wall-clock"

    def progress(self) -> Progress:
        c = self._counters
        return Progress(self.state, self._batch.record.number if self._batch else self._batch_count,
                        c.cycles, c.actions, c.picks, c.held / c.grasps if c.grasps else None,
                        c.picks * 3600.0 / c.seconds if c.seconds > 0 else None,
                        self._cell_clock() - self._t0)

    # ------------------------------------------------------------------ batches

    def _start_batch(self) -> str:
        """Bring in the next batch (the feeder on the sim, the line's signal on a real cell)."""
        number = self._batch_count + 1
        if self.cell.sim is not None:
            self.cell.next_sim_batch(self.rng)
        elif number > 1:
            reason = self._wait_for_next_batch()
            if reason:
                return reason
        impurities, items = self._truth_counts()
        record = BatchRecord(number, time.time(), impurities_at_start=impurities, items_at_start=items)
        self.runlog.start_batch(self.run_id, record)
        self._batch = _Batch(record)
        self._batch_count = number
        self._failures.clear()
        self._publish(BatchStarted(record))
        return ""

    def _wait_for_next_batch(self) -> str:
        """Hold until the recipe's next-batch signal; a stop request ends the wait (and the run)."""
        spec = self.recipe.loop.next_batch
        self._next_batch_pressed = False
        deadline = time.monotonic() + spec.seconds
        while True:
            reason = self._between_cycles()
            if reason:
                return reason
            if spec.signal == "feeder":
                return ""
            if spec.signal == "timer" and time.monotonic() >= deadline:
                return ""
            if spec.signal == "operator" and self._next_batch_pressed:
                return ""
            if spec.signal == "digital-input" and self._digital_input(spec.input):
                return ""
            self._apply_commands(block=True)

    def _digital_input(self, index: int) -> bool:
        reader = getattr(self.cell.robot, "digital_input", None)
        if reader is None:
            raise _Fault(AlarmCode.ROBOT_ERROR, "the recipe waits for a digital input but this robot adapter "
                         "cannot read inputs; use next_batch signal 'operator' or 'timer'")
        return bool(reader(index))

    def _end_batch(self, reason: str) -> None:
        if self._batch is None:
            return
        left, _ = self._truth_counts()
        number = self._batch.record.number
        self.runlog.end_batch(self.run_id, number, reason, left)
        record = dataclasses.replace(self._batch.record, ended_at=time.time(), end_reason=reason,
                                     impurities_left=left)
        self._batch = None
        self._publish(BatchEnded(record))

    def _truth_counts(self) -> tuple[int | None, int | None]:
        """Impurities and items on the table from simulator ground truth; (None, None) on a real cell."""
        sim = self.cell.sim
        if sim is None:
            return None, None
        objects = [o for o in sim.truth.objects() if o.in_workspace and not o.in_bin]
        return int(sim.truth.impurities_remaining()), len(objects)

    # ------------------------------------------------------------------ one cycle

    def _guarded(self, step: Callable[[], str | None]) -> str:
        """Run a cycle or a batch change; a fault becomes an alarm instead of ending the thread."""
        try:
            return step() or ""
        except _Fault as fault:
            self._alarm(fault.code, fault.message)
        except SorterError as exc:
            self._alarm(AlarmCode.INTERNAL_ERROR, str(exc))
        except Exception as exc:
            log.exception("unexpected error in the pick loop")
            self._alarm(AlarmCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        return ""

    def _cycle(self) -> None:
        timer = _Timer()
        frame = self._capture()
        timer.lap("capture")
        heightmaps, attention = self._perceive(frame)
        timer.lap("perception")
        if attention.mode == "clean":
            self._clean_cycle(attention, timer)
            return
        self._batch.clean_streak = 0
        decision = self._decide(attention, heightmaps)
        timer.lap("decision")
        action, override = self._override(decision.action)
        verdict = self.envelope.check(action, heightmaps.height)
        timer.lap("safety")
        self._publish_frame(frame, heightmaps, attention, decision, verdict)
        ctx = _CycleContext(attention, decision, action, override, verdict, timer)
        if not verdict.allowed:
            self._refused(ctx)
        elif self.options.dry_run:
            self._record(ctx, outcome="dry-run")
        else:
            self._act(ctx)

    def _capture(self) -> RGBDFrame:
        spec = self.recipe.camera
        last: Exception | None = None
        for _ in range(spec.retries + 1):
            try:
                return self.cell.camera.read(timeout=spec.timeout)
            except CameraError as exc:
                last = exc
        code = AlarmCode.CAMERA_TIMEOUT if isinstance(last, CameraTimeout) else AlarmCode.CAMERA_ERROR
        raise _Fault(code, f"no frame from the camera after {spec.retries + 1} tries ({last}); check the "
                     "camera cable and power, then acknowledge to retry")

    def _perceive(self, frame: RGBDFrame):
        try:
            heightmaps = self._heightmapper(frame, self.cell.camera_pose, self._grid)
            attention = self.attender.attend(heightmaps, frame)
        except SorterError as exc:
            raise _Fault(AlarmCode.PERCEPTION_ERROR, str(exc)) from exc
        return heightmaps, self._mask_spots(attention)

    def _decide(self, attention, heightmaps):
        try:
            return self.policy.decide(attention, heightmaps, self.rng)
        except SorterError as exc:
            raise _Fault(AlarmCode.POLICY_ERROR, str(exc)) from exc

    def _override(self, action: Action) -> tuple[Action, str]:
        """Replace a grasp at a spot that keeps failing by a push through that spot."""
        spot = self._failures.push_due(action)
        if spot is None:
            return action, ""
        preferred = action.angle + spot.pushes * math.pi / 2
        push = push_through(spot.x, spot.y, preferred, self.envelope, self.envelope.z_min)
        if push is None:
            spot.masked = True
            return action, "no safe push through a failing spot"
        if spot.pushes == 0:
            self._alarm(AlarmCode.REPEATED_FAILURE, f"{self._failures.limit} failed grasps in a row at "
                        f"({spot.x:.3f}, {spot.y:.3f}); pushing through the spot")
        self._failures.pushed(spot)
        return push, "push at a masked spot" if spot.masked else "push after repeated failures"

    def _mask_spots(self, attention):
        """Hide masked spots from attention: the next impurity becomes the target, or the mask is cut."""
        spots = self._failures.masked()
        if not spots or attention.mode != "target":
            return attention
        regions = list(getattr(attention, "regions", []) or [])
        visible = [r for r in regions if r.accepted and not self._is_masked(r.center_xy, spots)]
        if visible and regions and visible[0] is not regions[0]:
            return self._retarget(attention, visible[0], regions)
        if visible:
            return attention
        rows, cols = np.indices(attention.target_mask.shape)
        x, y = self._grid.center_of(rows, cols)
        keep = np.ones(attention.target_mask.shape, bool)
        for s in spots:
            keep &= np.hypot(x - s.x, y - s.y) > self._failures.radius
        return dataclasses.replace(attention, target_mask=attention.target_mask & keep,
                                   reason=f"{attention.reason}; failing spot masked")

    def _is_masked(self, xy, spots) -> bool:
        return xy is not None and any(math.hypot(xy[0] - s.x, xy[1] - s.y) <= self._failures.radius
                                      for s in spots)

    def _retarget(self, attention, region, regions: list):
        """Attention aimed at another accepted region (the top one sits on a masked spot)."""
        from sorter.perception.attention import crop_around

        center = (int(round(region.center_rc[0])), int(round(region.center_rc[1])))
        ordered = [region] + [r for r in regions if r is not region]
        return dataclasses.replace(
            attention, target_mask=region.mask.copy(), crop_center_rc=center,
            crop_center_xy=region.center_xy, crop=crop_around(center, self._grid.cells), regions=ordered,
            reason=f"{attention.reason}; top impurity masked after repeated failures, next one targeted")

    def _clean_cycle(self, attention, timer: _Timer) -> None:
        """A clean verdict: count it, and end the batch after the recipe's confirmations in a row."""
        self._record(_CycleContext(attention, None, None, "", None, timer), outcome="clean")
        self._batch.clean_streak += 1
        if self._batch.clean_streak >= self.recipe.loop.clean_confirmations:
            self._end_batch("clean")

    def _refused(self, ctx: _CycleContext) -> None:
        """A refused action is recorded, never sent, and counts as a failure at its spot."""
        self._record(ctx, outcome="refused")
        self._note_failure(ctx.action, success=False)
        self._alarm(AlarmCode.SAFETY_REFUSAL, ctx.verdict.describe())
        self._count_batch_action()

    def _act(self, ctx: _CycleContext) -> None:
        """Send the allowed action, read what happened, check it against ground truth, record it."""
        action = ctx.verdict.action
        before = self._bin_contents()
        try:
            outcome = self.cell.robot.execute(action)
        except (ProtectiveStop, EmergencyStop) as exc:
            self._record(ctx, outcome="robot stop", error=str(exc))
            code = AlarmCode.EMERGENCY_STOP if isinstance(exc, EmergencyStop) else AlarmCode.PROTECTIVE_STOP
            raise _Fault(code, f"{exc}; clear the cause, then acknowledge to resume") from exc
        except RobotError as exc:
            self._record(ctx, outcome="robot error", error=str(exc))
            raise _Fault(AlarmCode.ROBOT_ERROR, f"{exc}; check the robot, then acknowledge to retry") from exc
        ctx.timer.lap("execute")
        names, impurity = self._delivered_since(before)
        label = _outcome_label(action, outcome)
        self._record(ctx, outcome=label, result=outcome, picked_names=names, picked_impurity=impurity)
        if action.kind is ActionKind.GRASP:
            self._note_failure(action, success=outcome.grasp_held)
        if label == "lost":
            self._alarm(AlarmCode.ITEM_LOST, f"an item held at ({action.x:.3f}, {action.y:.3f}) did not "
                        "reach the reject bin")
        self._count_batch_action()

    def _note_failure(self, action: Action, success: bool) -> None:
        if self._failures.note(action, success):
            self._alarm(AlarmCode.REPEATED_FAILURE, f"grasps at ({action.x:.3f}, {action.y:.3f}) still fail "
                        "after a push; the spot is masked for the rest of the batch")

    def _count_batch_action(self) -> None:
        self._batch.actions += 1
        limit = self.recipe.loop.max_actions_per_batch
        if self._batch.actions >= limit:
            self._alarm(AlarmCode.BATCH_ACTION_LIMIT, f"batch {self._batch.record.number} not clean after "
                        f"{limit} actions; moving on to the next batch")
            self._end_batch("action limit")

    def _bin_contents(self) -> set[int] | None:
        sim = self.cell.sim
        return None if sim is None else {o.id for o in sim.truth.objects() if o.in_bin}

    def _delivered_since(self, before: set[int] | None) -> tuple[str, bool | None]:
        """Names of the objects that entered the bin, and whether all of them are impurities (sim only)."""
        if before is None:
            return "", None
        new = [o for o in self.cell.sim.truth.objects() if o.in_bin and o.id not in before]
        if not new:
            return "", None
        return ",".join(o.name for o in new), all(o.is_impurity for o in new)

    def _record(self, ctx: _CycleContext, outcome: str, result: Outcome | None = None, error: str = "",
                picked_names: str = "", picked_impurity: bool | None = None) -> CycleRecord:
        c = self._counters
        c.cycles += 1
        record = _cycle_record(self._batch.record.number, c.cycles, self._cell_clock(), ctx, outcome,
                               result, error, picked_names, picked_impurity)
        self.runlog.record_cycle(self.run_id, record)
        if record.executed:
            c.actions += 1
            c.grasps += record.action_kind == ActionKind.GRASP
            c.held += record.grasp_held
            c.picks += record.delivered and record.action_kind == ActionKind.GRASP
        c.seconds += record.motion_s + (record.ms_perception + record.ms_decision) / 1000.0
        with self._lock:
            self._recent.append(record)
        self._publish(CycleDone(record, self.progress()))
        return record

    def _publish_frame(self, frame, heightmaps, attention, decision, verdict) -> None:
        if not self.options.frames:
            return
        att = attention
        self._publish(FrameOverlay(
            cycle=self._counters.cycles + 1, image=frame.color, color=heightmaps.color,
            height=heightmaps.height, attention_mode=att.mode, saliency=getattr(att, "saliency", None),
            target_mask=getattr(att, "target_mask", None), regions=tuple(getattr(att, "regions", ()) or ()),
            cluster=getattr(att, "cluster", None), q_map=decision.q_map,
            action=verdict.action or verdict.requested, verdict=verdict,
            sighting=getattr(att, "sighting", None)))


@dataclass
class _CycleContext:
    attention: object
    decision: object
    action: Action | None
    override: str
    verdict: SafetyVerdict | None
    timer: _Timer


def _outcome_label(action: Action, outcome: Outcome) -> str:
    if not outcome.executed:
        return "not executed"
    if action.kind is ActionKind.PUSH:
        return "pushed"
    if outcome.grasp_held and outcome.delivered:
        return "picked"
    return "lost" if outcome.grasp_held else "missed"


def _cycle_record(batch: int, number: int, cell_time: float, ctx: _CycleContext, outcome: str,
                  result: Outcome | None, error: str, picked_names: str,
                  picked_impurity: bool | None) -> CycleRecord:
    """Flatten one cycle's context into the run log's record."""
    marks = ctx.timer.marks
    act = ctx.verdict.action if ctx.verdict is not None and ctx.verdict.allowed else ctx.action
    dec = ctx.decision
    res = result or Outcome(executed=False)
    return CycleRecord(
        batch=batch, number=number, wall_time=time.time(), cell_time=cell_time,
        attention_mode=str(ctx.attention.mode), attention_reason=str(getattr(ctx.attention, "reason", "")),
        action_kind=str(act.kind) if act else None, x=_num(act, "x"), y=_num(act, "y"), z=_num(act, "z"),
        angle=_num(act, "angle"), q_push=_num(dec, "q_push"), q_grasp=_num(dec, "q_grasp"),
        pixel=",".join(str(int(p)) for p in dec.pixel) if dec is not None else "", override=ctx.override,
        safety=ctx.verdict.label if ctx.verdict else "", safety_detail=ctx.verdict.describe() if ctx.verdict
        else "", outcome=outcome, executed=res.executed, grasp_held=res.grasp_held, delivered=res.delivered,
        finger_width=res.finger_width, motion_s=res.duration, ms_capture=marks.get("capture", 0.0),
        ms_perception=marks.get("perception", 0.0), ms_decision=marks.get("decision", 0.0),
        ms_safety=marks.get("safety", 0.0), ms_execute=marks.get("execute", 0.0),
        picked_impurity=picked_impurity, picked_names=picked_names, error=error or (res.error or ""))


def _num(obj: object, name: str) -> float | None:
    """A float attribute for the record; non-finite values are stored as None (SQLite has no NaN)."""
    if obj is None:
        return None
    value = float(getattr(obj, name))
    return value if math.isfinite(value) else None


def _ended_by(exc: BaseException) -> str:
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"


def _summary_dict(metrics: RunMetrics) -> dict:
    return metrics.as_dict()
