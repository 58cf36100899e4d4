#!/usr/bin/env bash
# Install sorter on a Debian or Ubuntu machine: the system libraries the camera and the GUI need, a Python
# virtual environment with torch pinned and the project, a desktop entry for sorter-gui, command links and
# the RealSense udev rules. Prints what it did. Run with --help for the options.
set -euo pipefail

TORCH_VERSION="2.13.0"  # the torch pin of pyproject.toml and the README
PYTHON_VERSION="3.11"   # pyproject.toml: requires-python
APT_PACKAGES=(
  python3-venv                       # venv with pip on Debian/Ubuntu
  libusb-1.0-0                       # pyrealsense2
  libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0   # Qt 6 and MuJoCo
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0    # Qt 6 xcb platform plugin
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0
)
RULES_NAME="70-sorter-realsense.rules"
MANIFEST_NAME="sorter-install.manifest"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(cd "$HERE/.." && pwd)"
PREFIX=""
VENV="${SORTER_VENV:-}"
PYTHON="${PYTHON:-python3}"
SYSTEM=1
DRY_RUN=0
DEV=0
SYSTEM_SITE=0
PIP_ARGS=()
DONE=()

usage() {
  cat <<EOF
usage: installer/install.sh [options]

  --venv DIR               virtual environment to create or update
                           (default: \$SORTER_VENV, else ~/.local/share/sorter/venv, or PREFIX/venv)
  --prefix DIR             install everything under DIR (venv, bin, share/applications, etc/udev):
                           a throwaway tree for CI; system directories are not touched
  --no-system              do not install system packages or system udev rules
  --system-site-packages   let the venv see the interpreter's installed packages
  --python PATH            Python ${PYTHON_VERSION} interpreter to build the venv from (default: python3)
  --source DIR             project to install (default: the checkout holding this script)
  --pip-args "ARGS"        extra arguments for every pip install (e.g. "--no-index --find-links DIR")
  --dev                    editable install with the test tools (pytest, ruff ...): a developer checkout
  --dry-run                print the plan and change nothing
  -h, --help               this help
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV="${2:?--venv needs a directory}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --no-system) SYSTEM=0; shift ;;
    --system-site-packages) SYSTEM_SITE=1; shift ;;
    --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
    --source) SOURCE="$(cd "${2:?--source needs a directory}" && pwd)"; shift 2 ;;
    --pip-args) read -r -a PIP_ARGS <<<"${2:?--pip-args needs a value}"; shift 2 ;;
    --dev) DEV=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

if [[ -n "$PREFIX" ]]; then
  PREFIX="$(realpath -m "$PREFIX")"
  VENV="${VENV:-$PREFIX/venv}"
  BIN_DIR="$PREFIX/bin"
  APPS_DIR="$PREFIX/share/applications"
  UDEV_DIR="$PREFIX/etc/udev/rules.d"
else
  VENV="${VENV:-$HOME/.local/share/sorter/venv}"
  BIN_DIR="$HOME/.local/bin"
  APPS_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
  UDEV_DIR="/etc/udev/rules.d"
fi

VENV="$(realpath -m "$VENV")"
if [[ $(id -u) == 0 ]]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi

run() {
  echo "+ $*"
  [[ $DRY_RUN == 1 ]] || "$@"
}

check_python() {
  [[ -f "$SOURCE/pyproject.toml" ]] || die "$SOURCE has no pyproject.toml; pass --source DIR"
  if [[ -x "$VENV/bin/python" ]]; then return; fi
  command -v "$PYTHON" >/dev/null || die "no '$PYTHON' found; install Python $PYTHON_VERSION or pass --python PATH"
  local found
  found="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$found" == "$PYTHON_VERSION" ]] || die "sorter needs Python $PYTHON_VERSION, '$PYTHON' is $found; pass --python PATH"
}

install_system_packages() {
  if [[ $SYSTEM == 0 ]]; then
    DONE+=("system packages: skipped (--no-system); the camera needs libusb-1.0-0, the GUI the Qt xcb libraries")
    return
  fi
  if ! command -v apt-get >/dev/null || [[ "$SUDO" == "none" ]]; then
    echo "Cannot install system packages here (needs apt-get and root or sudo). Ask an administrator for:"
    echo "  apt-get install ${APT_PACKAGES[*]}"
    DONE+=("system packages: NOT installed; install them as printed above")
    return
  fi
  if run ${SUDO:+$SUDO} apt-get update -q && run ${SUDO:+$SUDO} env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"; then
    DONE+=("system packages: ${APT_PACKAGES[*]}")
  else
    echo "WARNING: apt-get failed; the camera and the GUI need: ${APT_PACKAGES[*]}" >&2
    DONE+=("system packages: apt-get FAILED; install them as printed above")
  fi
}

create_venv() {
  if [[ -x "$VENV/bin/python" ]]; then
    DONE+=("virtual environment: reused $VENV")
    return
  fi
  local flags=()
  [[ $SYSTEM_SITE == 1 ]] && flags+=(--system-site-packages)
  run mkdir -p "$(dirname "$VENV")"
  run "$PYTHON" -m venv "${flags[@]}" "$VENV"
  DONE+=("virtual environment: created $VENV")
}

install_project() {
  local pins=()  # the library versions the published figures were measured with
  [[ -f "$SOURCE/installer/constraints.txt" ]] && pins=(-c "$SOURCE/installer/constraints.txt")
  run "$VENV/bin/python" -m pip install "${PIP_ARGS[@]}" "${pins[@]}" "torch==$TORCH_VERSION"
  if [[ $DEV -eq 1 ]]; then
    run "$VENV/bin/python" -m pip install "${PIP_ARGS[@]}" "${pins[@]}" -e "$SOURCE[dev]"
  else
    run "$VENV/bin/python" -m pip install "${PIP_ARGS[@]}" "${pins[@]}" "$SOURCE"
  fi
  DONE+=("python packages: torch==$TORCH_VERSION, then sorter from $SOURCE (commands sorter, sorter-gui)${pins:+, library versions from installer/constraints.txt}")
}

write_file() {  # write_file PATH: stdin to PATH, or only announce it on a dry run
  echo "+ write $1"
  if [[ $DRY_RUN == 1 ]]; then cat >/dev/null; else mkdir -p "$(dirname "$1")" && cat >"$1"; fi
}

install_desktop_entry() {
  write_file "$APPS_DIR/sorter-gui.desktop" <<EOF
[Desktop Entry]
Type=Application
Name=Sorter
GenericName=Impurity sorting cell
Comment=Run, calibrate and review the impurity-sorting robot cell
Exec=$VENV/bin/sorter-gui
Terminal=false
Categories=Science;Engineering;
EOF
  INSTALLED+=("$APPS_DIR/sorter-gui.desktop")
  DONE+=("desktop entry: $APPS_DIR/sorter-gui.desktop")
}

link_commands() {
  run mkdir -p "$BIN_DIR"
  for cmd in sorter sorter-gui; do
    run ln -sfn "$VENV/bin/$cmd" "$BIN_DIR/$cmd"
    INSTALLED+=("$BIN_DIR/$cmd")
  done
  DONE+=("commands: $BIN_DIR/sorter, $BIN_DIR/sorter-gui")
  case ":$PATH:" in *":$BIN_DIR:"*) ;; *) DONE+=("note: add $BIN_DIR to PATH to run 'sorter' directly") ;; esac
}

install_udev_rules() {
  local target="$UDEV_DIR/$RULES_NAME"
  if [[ -n "$PREFIX" ]]; then
    run mkdir -p "$UDEV_DIR"
    run install -m 644 "$HERE/$RULES_NAME" "$target"
    INSTALLED+=("$target")
    DONE+=("udev rules: $target (under --prefix; not active)")
  elif [[ $SYSTEM == 0 || "$SUDO" == "none" ]]; then
    DONE+=("udev rules: NOT installed; as root: install -m 644 $HERE/$RULES_NAME $target && udevadm control --reload-rules && udevadm trigger")
  elif [[ ! -d "$UDEV_DIR" ]] || ! command -v udevadm >/dev/null; then
    DONE+=("udev rules: NOT installed; this machine runs no udev (a container?), so no camera can be attached here")
  else
    run ${SUDO:+$SUDO} install -m 644 "$HERE/$RULES_NAME" "$target"
    if ! { run ${SUDO:+$SUDO} udevadm control --reload-rules && run ${SUDO:+$SUDO} udevadm trigger; }; then
      echo "WARNING: udev did not reload its rules; re-plug the camera or reboot" >&2
    fi
    INSTALLED+=("$target")
    DONE+=("udev rules: $target (re-plug the camera)")
  fi
}

write_manifest() {
  printf '%s\n' "${INSTALLED[@]}" | write_file "$VENV/$MANIFEST_NAME"
}

INSTALLED=()
check_python
install_system_packages
create_venv
install_project
install_desktop_entry
link_commands
install_udev_rules
write_manifest

echo
if [[ $DRY_RUN == 1 ]]; then echo "Dry run: nothing was changed. The plan:"; else echo "sorter is installed:"; fi
printf '  - %s\n' "${DONE[@]}"
echo "Check the camera with: $VENV/bin/sorter devices"
echo "Remove with: $HERE/uninstall.sh${PREFIX:+ --prefix $PREFIX} --venv $VENV"
