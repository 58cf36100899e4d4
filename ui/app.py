"""`sorter-gui`: the operator application. Opens on the simulated cell with a recipe chooser; a recipe that
names hardware drives the real cell.

    sorter-gui [--recipe FILE] [--recipes DIR] [--db PATH]
    sorter-gui --set-pin                  set the engineer PIN (the installer pipes it on stdin)
    sorter-gui --measure-latency SECONDS  run a simulated run and print the GUI's event-loop latency
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from sorter.errors import SorterError

LATENCY_TARGET_MS = 50.0  # issue 6: the GUI stays responsive during a run


def default_recipes_dir() -> Path:
    """The recipes shipped beside the package (a source checkout or an install), else ./recipes."""
    shipped = Path(__file__).resolve().parents[1] / "recipes"
    return shipped if shipped.is_dir() else Path.cwd() / "recipes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sorter-gui", description="Sorting cell operator application.")
    parser.add_argument("--recipe", type=Path, help="recipe to select at start")
    parser.add_argument("--recipes", type=Path, default=None, help="folder of recipes for the chooser")
    parser.add_argument("--db", type=Path, default=None, help="run log (default: the user's data folder)")
    parser.add_argument("--set-pin", action="store_true",
                        help="set the engineer PIN (asked twice, or one line on stdin) and exit")
    parser.add_argument("--measure-latency", type=float, metavar="SECONDS",
                        help="run the chosen recipe on the simulated cell for SECONDS, print the event-loop "
                             "latency and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.set_pin:
            return set_pin_command()
        return run_app(args)
    except SorterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def set_pin_command() -> int:
    """Ask for the new PIN (twice on a terminal; one line on stdin for the installer) and store its hash."""
    from ui.roles import PinError, set_pin

    if sys.stdin.isatty():
        pin = getpass.getpass("New engineer PIN: ")
        if getpass.getpass("Repeat the PIN: ") != pin:
            raise PinError("the two PINs differ; nothing was changed")
    else:
        pin = sys.stdin.readline().strip()
    path = set_pin(pin)
    print(f"engineer PIN stored (salted scrypt hash) in {path}")
    return 0


def run_app(args: argparse.Namespace) -> int:
    from PyQt6.QtWidgets import QApplication

    from sorter.runlog import default_db_path
    from ui.main_window import MainWindow
    from ui.wiring import preload

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("sorter-gui")
    preload()
    window = MainWindow(args.recipes or default_recipes_dir(), args.db or default_db_path(),
                        recipe=args.recipe)
    window.show()
    if args.measure_latency is not None:
        return measure_latency(app, window, args.measure_latency)
    return app.exec()


def measure_latency(app, window, seconds: float) -> int:
    """Run the selected recipe, probe the event loop while it runs, print the figures; 0 if on target."""
    from PyQt6.QtCore import QTimer

    from ui.latency import LatencyProbe

    if window.run_view.recipe is None or not window.run_view.recipe.is_simulated:
        raise SorterError("--measure-latency needs a valid simulated recipe (choose one with --recipe)")
    window.confirm_close = False
    probe = LatencyProbe()
    cycles = []
    session = window.run_view.start()
    session.cycle_done.connect(cycles.append)

    def on_state(ev) -> None:
        if str(ev.new) == "running" and not probe.late_ms and not probe.running:
            probe.start()
            QTimer.singleShot(int(seconds * 1000), lambda: window.run_view.stop("latency measurement done"))

    session.state_changed.connect(on_state)
    session.finished.connect(app.quit)
    app.exec()
    probe.stop()
    report = probe.report()
    print(f"{len(cycles)} cycles during the measurement; {report}")
    if session.error:
        print(f"run error: {session.error}", file=sys.stderr)
        return 1
    ok = report.max_ms <= LATENCY_TARGET_MS
    print(f"target <= {LATENCY_TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'} (max)")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
