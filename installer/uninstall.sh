#!/usr/bin/env bash
# Reverse installer/install.sh: remove the files it recorded in the venv's manifest (desktop entry, command
# links, udev rules), then the virtual environment. System packages stay installed (other software may use
# them); the script lists them. Run with --help for the options.
set -euo pipefail

RULES_NAME="70-sorter-realsense.rules"
MANIFEST_NAME="sorter-install.manifest"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=""
VENV="${SORTER_VENV:-}"
DRY_RUN=0
KEEP_VENV=0
DONE=()

usage() {
  cat <<EOF
usage: installer/uninstall.sh [options]

  --venv DIR     the virtual environment install.sh created (default: \$SORTER_VENV,
                 else ~/.local/share/sorter/venv, or PREFIX/venv)
  --prefix DIR   the --prefix given to install.sh
  --keep-venv    remove the desktop entry, links and rules but keep the virtual environment
  --dry-run      print what would be removed and change nothing
  -h, --help     this help
EOF
}

die() { echo "uninstall.sh: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV="${2:?--venv needs a directory}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --keep-venv) KEEP_VENV=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

if [[ -n "$PREFIX" ]]; then
  PREFIX="$(realpath -m "$PREFIX")"
  VENV="${VENV:-$PREFIX/venv}"
  DEFAULTS=("$PREFIX/share/applications/sorter-gui.desktop" "$PREFIX/bin/sorter" "$PREFIX/bin/sorter-gui"
            "$PREFIX/etc/udev/rules.d/$RULES_NAME")
else
  VENV="${VENV:-$HOME/.local/share/sorter/venv}"
  DEFAULTS=("${XDG_DATA_HOME:-$HOME/.local/share}/applications/sorter-gui.desktop" "$HOME/.local/bin/sorter"
            "$HOME/.local/bin/sorter-gui" "/etc/udev/rules.d/$RULES_NAME")
fi
VENV="$(realpath -m "$VENV")"
if [[ $(id -u) == 0 ]]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi

run() {
  echo "+ $*"
  [[ $DRY_RUN == 1 ]] || "$@"
}

installed_files() {
  if [[ -f "$VENV/$MANIFEST_NAME" ]]; then
    cat "$VENV/$MANIFEST_NAME"
  else
    echo "No install manifest in $VENV; looking in the default places." >&2
    printf '%s\n' "${DEFAULTS[@]}"
  fi
}

remove_file() {
  local path="$1"
  [[ -e "$path" || -L "$path" ]] || return 0
  if [[ -w "$(dirname "$path")" ]]; then
    run rm -f "$path"
  elif [[ "$SUDO" != "none" ]]; then
    run ${SUDO:+$SUDO} rm -f "$path"
  else
    DONE+=("NOT removed (needs root): $path")
    return 0
  fi
  DONE+=("removed $path")
  if [[ "$path" == /etc/udev/* ]]; then
    run ${SUDO:+$SUDO} udevadm control --reload-rules
  fi
}

remove_empty_prefix_dirs() {
  [[ -n "$PREFIX" && $DRY_RUN == 0 ]] || return 0
  for dir in "$PREFIX/etc/udev/rules.d" "$PREFIX/etc/udev" "$PREFIX/etc" "$PREFIX/share/applications" \
             "$PREFIX/share" "$PREFIX/bin"; do
    rmdir "$dir" 2>/dev/null || true
  done
}

mapfile -t FILES < <(installed_files)
for path in "${FILES[@]}"; do
  [[ -n "$path" ]] && remove_file "$path"
done

if [[ $KEEP_VENV == 1 ]]; then
  DONE+=("kept the virtual environment $VENV")
elif [[ -d "$VENV" ]]; then
  [[ -x "$VENV/bin/python" ]] || die "$VENV does not look like a virtual environment; not removing it"
  run rm -rf "$VENV"
  DONE+=("removed the virtual environment $VENV")
fi
remove_empty_prefix_dirs

echo
if [[ $DRY_RUN == 1 ]]; then echo "Dry run: nothing was changed. The plan:"; else echo "sorter is uninstalled:"; fi
if [[ ${#DONE[@]} -eq 0 ]]; then echo "  - nothing to remove"; else printf '  - %s\n' "${DONE[@]}"; fi
echo "System packages (libusb-1.0-0, the Qt xcb libraries) were left installed; remove them with apt if unused."
