"""`sorter devices` as a technician runs it: cameras listed, none found, SDK missing, recipe camera."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from sorter.cli import main
from tests.hardware.rs_software import SoftwareCamera, import_rs

ROOT = Path(__file__).parents[2]


class _Context:
    """pyrealsense2.context stand-in that lists the given (real SDK) device objects."""

    devices: list = []

    def query_devices(self):
        return list(self.devices)


@pytest.fixture
def connected(monkeypatch):
    rs = import_rs()
    monkeypatch.setattr(rs, "context", _Context)
    monkeypatch.setattr(_Context, "devices", [])
    return _Context


def _recipe(tmp_path: Path, serial: str | None) -> Path:
    data = yaml.safe_load((ROOT / "recipes" / "toy-blocks.yaml").read_text())
    data["camera"] = {"kind": "realsense", **({"serial": serial} if serial else {})}
    data["robot"].update(kind="ur", host="192.168.1.10")
    data["gripper"].update(kind="robotiq-2f85")
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_lists_serial_and_firmware(connected, capsys) -> None:
    connected.devices = [SoftwareCamera(serial="841612070098").device]
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "serial 841612070098" in out and "firmware 5.16.0.1" in out and "USB 3.2" in out


def test_says_plainly_when_none_is_found(connected, capsys) -> None:
    assert main(["devices"]) == 1
    assert "no RealSense camera found" in capsys.readouterr().out


def test_checks_the_recipe_camera(connected, capsys, tmp_path: Path) -> None:
    connected.devices = [SoftwareCamera(serial="111").device]
    assert main(["devices", "--recipe", str(_recipe(tmp_path, "111"))]) == 0
    assert "camera 111 is connected" in capsys.readouterr().out
    assert main(["devices", "--recipe", str(_recipe(tmp_path, "222"))]) == 1
    assert "camera 222 is NOT connected; connected: 111" in capsys.readouterr().out


def test_missing_sdk_is_one_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    assert main(["devices"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the RealSense SDK is not installed") and "Traceback" not in err
