"""installer/install.sh and uninstall.sh: dry-run plan, refusals, and a real install into a throwaway prefix.

The real install reuses this environment's packages (a .pth file in a fresh venv) and runs pip with
--no-index, so it needs no network; the full networked install is a separate CI step.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
INSTALL, UNINSTALL = ROOT / "installer" / "install.sh", ROOT / "installer" / "uninstall.sh"
RECIPE = ROOT / "recipes" / "toy-blocks.yaml"


def _bash(script: Path, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=timeout)


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "cell"
    result = _bash(INSTALL, "--dry-run", "--no-system", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    pins = f"-c {ROOT}/installer/constraints.txt"  # the library versions the figures were measured with
    torch_at = out.index(f"pip install {pins} torch==2.13.0")
    assert out.index(f"pip install {pins} {ROOT}", torch_at) > torch_at  # torch first, then the project
    assert f"-m venv {prefix}/venv" in out
    assert f"{prefix}/share/applications/sorter-gui.desktop" in out
    assert f"{prefix}/etc/udev/rules.d/70-sorter-realsense.rules" in out
    assert "Dry run: nothing was changed" in out and "skipped (--no-system)" in out
    assert not prefix.exists()


def test_dry_run_names_the_system_libraries(tmp_path: Path) -> None:
    result = _bash(INSTALL, "--dry-run", "--prefix", str(tmp_path / "cell"))
    assert result.returncode == 0, result.stderr
    for package in ("libusb-1.0-0", "libxcb-cursor0", "libegl1", "libgl1", "libxkbcommon-x11-0"):
        assert package in result.stdout
    assert ("apt-get install" in result.stdout) or ("Ask an administrator" in result.stdout)


def test_wrong_python_is_refused_with_what_to_do(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\necho 3.9\n")
    fake.chmod(0o755)
    result = _bash(INSTALL, "--dry-run", "--no-system", "--prefix", str(tmp_path / "p"),
                   "--python", str(fake))
    assert result.returncode == 1
    assert "needs Python 3.11" in result.stderr and "--python" in result.stderr


def test_unknown_option_is_refused() -> None:
    result = _bash(INSTALL, "--frobnicate")
    assert result.returncode == 1 and "unknown option '--frobnicate'" in result.stderr


@pytest.mark.slow
def test_install_into_a_prefix_and_uninstall(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "sorter", "ui", "calibration", "installer"):
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, source / name)
    prefix, venv = tmp_path / "cell", tmp_path / "cell" / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "reuse-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    result = _bash(source / "installer" / "install.sh", "--prefix", str(prefix), "--no-system",
                   "--pip-args", "--no-index --no-build-isolation --no-cache-dir", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sorter is installed" in result.stdout

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import sorter; print(sorter.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv))
    check = subprocess.run([str(prefix / "bin" / "sorter"), "recipe", "check", str(RECIPE)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    desktop = (prefix / "share" / "applications" / "sorter-gui.desktop").read_text()
    assert f"Exec={venv}/bin/sorter-gui" in desktop
    rules = prefix / "etc" / "udev" / "rules.d" / "70-sorter-realsense.rules"
    assert rules.read_text() == (ROOT / "installer" / "70-sorter-realsense.rules").read_text()

    removed = _bash(source / "installer" / "uninstall.sh", "--prefix", str(prefix))
    assert removed.returncode == 0, removed.stderr
    assert not venv.exists() and not rules.exists() and not (prefix / "bin").exists()
    assert not (prefix / "share").exists()


def test_the_pinned_library_versions_satisfy_the_project_requirements() -> None:
    """installer/constraints.txt holds exact versions; each must lie inside pyproject's own range, or
    pip would refuse the install on a fresh machine."""
    import tomllib

    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "installer" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: pins must be exact"
            pins[req.name.lower()] = spec.version
    assert {"mujoco", "numpy", "opencv-contrib-python-headless", "scikit-learn", "torch"} <= set(pins)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, deps):
        pin = pins.get(dep.name.lower())
        if pin is not None:
            assert dep.specifier.contains(pin), f"{dep} excludes the pin {pin}"
