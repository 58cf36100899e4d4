"""`sorter devices`: list connected RealSense cameras (serial, firmware, USB) and check a recipe's camera."""

from __future__ import annotations

import argparse

NONE_FOUND = ("no RealSense camera found: check the USB cable (use a USB 3 port and cable), that the "
              "camera's udev rules are installed (installer/install.sh), then plug it in again")
USB2_WARNING = "  (USB 2: use a USB 3 port and cable for depth and colour at 30 fps)"


def register(groups: dict) -> None:
    devices = groups[""].add_parser("devices", help="list connected RealSense cameras (serial, firmware)")
    devices.add_argument("--recipe", metavar="FILE", help="also check that this recipe's camera is connected")
    devices.set_defaults(handler=list_cameras)


def list_cameras(args: argparse.Namespace) -> int:
    """Print one line per camera; exit 1 when none is found or the recipe's camera is missing."""
    from sorter.cell.realsense import list_devices

    cameras = list_devices()
    if not cameras:
        print(NONE_FOUND)
        return 1
    for cam in cameras:
        usb = f"USB {cam.usb}" if cam.usb else "USB unknown"
        warning = USB2_WARNING if cam.on_usb2 else ""
        print(f"{cam.name}  serial {cam.serial}  firmware {cam.firmware}  {usb}{warning}")
    return _check_recipe(args.recipe, [c.serial for c in cameras]) if args.recipe else 0


def _check_recipe(path: str, serials: list[str]) -> int:
    from sorter.recipe import load_recipe

    recipe = load_recipe(path)
    camera = recipe.camera
    if camera.kind != "realsense":
        print(f"{path}: uses the simulated camera; nothing to check")
        return 0
    if camera.serial is None:
        ok = len(serials) == 1
        print(f"{path}: camera.serial is not set; " + ("the one connected camera will be used" if ok else
              f"set it to one of {', '.join(serials)}"))
        return 0 if ok else 1
    if camera.serial in serials:
        print(f"{path}: camera {camera.serial} is connected")
        return 0
    print(f"{path}: camera {camera.serial} is NOT connected; connected: {', '.join(serials)}")
    return 1
