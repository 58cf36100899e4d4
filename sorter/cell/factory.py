"""Open the cell a recipe names: the simulated MuJoCo cell, or the real camera and robot.

Hardware adapters are imported only when a recipe asks for hardware, so the simulated cell runs where the
vendor SDKs are not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sorter.cell.base import Camera, Robot
from sorter.errors import SorterError
from sorter.geometry import Pose


@dataclass
class Cell:
    """A connected camera and robot, the camera's pose in the robot base frame, and the sim if simulated."""

    camera: Camera
    robot: Robot
    camera_pose: Pose
    sim: Any = None  # sorter.cell.sim.SimCell on the simulated cell

    @property
    def simulated(self) -> bool:
        return self.sim is not None

    def next_sim_batch(self, rng) -> None:
        """The simulated line: the finished batch is conveyed away (the table cleared), the feeder drops
        the next one. The sim's own feeder keeps what lies on the table, so it is cleared here first."""
        self.sim.load([])
        self.sim.drop_batch(rng)

    def close(self) -> None:
        """Disconnect camera and robot; safe to call twice."""
        try:
            self.camera.disconnect()
        finally:
            self.robot.disconnect()

    def __enter__(self) -> Cell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cell(recipe, seed: int = 1, *, dry_run: bool = False, camera_devices=None) -> Cell:
    """Connect the recipe's cell; the simulated one is seeded with ``seed``.

    ``dry_run`` connects a real robot read-only (status, never motion). ``camera_devices`` returns the
    pyrealsense2 devices to choose from (default: the SDK's); a software device or a recording can stand in.
    """
    sim_camera, sim_robot = recipe.camera.kind == "sim", recipe.robot.kind == "sim"
    if sim_camera != sim_robot:
        raise SorterError(f"the recipe mixes a {recipe.camera.kind} camera with a {recipe.robot.kind} robot; "
                          "use 'sim' for both (rehearsal) or real devices for both")
    if sim_camera:
        return _open_sim(recipe, seed)
    return _open_hardware(recipe, dry_run, camera_devices)


def _open_sim(recipe, seed: int) -> Cell:
    from sorter.cell.sim.cell import SimCell

    sim = SimCell(recipe)
    sim.reset("clean", seed)
    cell = Cell(sim.camera, sim.robot, sim.camera_pose, sim)
    _connect(cell)
    return cell


def _open_hardware(recipe, dry_run: bool, camera_devices) -> Cell:
    from sorter.cell.hand_eye_store import load_camera_pose
    from sorter.cell.realsense import RealSenseCamera
    from sorter.cell.ur import URRobot

    pose = load_camera_pose(recipe)
    camera = RealSenseCamera(recipe.camera, devices=camera_devices)
    cell = Cell(camera, URRobot(recipe, motion_enabled=not dry_run), pose, None)
    _connect(cell)
    return cell


def _connect(cell: Cell) -> None:
    cell.camera.connect()
    try:
        cell.robot.connect()
    except BaseException:
        cell.camera.disconnect()
        raise
