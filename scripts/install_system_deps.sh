#!/usr/bin/env bash
# System libraries for off-screen rendering (python -m mjx_qvpo.render, train's render_every_eval):
# EGL (MUJOCO_GL=egl, the default) through Mesa's software or GPU drivers, and OSMesa
# (MUJOCO_GL=osmesa) as the fallback. Idempotent and quiet: does nothing when everything is
# installed; runs `apt-get update` only when an install fails on a missing or stale package list.
# On a machine without apt-get (not Debian/Ubuntu) it only prints what to install.
set -euo pipefail

PACKAGES=(libegl1 libegl-mesa0 libgl1 libopengl0 libgl1-mesa-dri libglx-mesa0 libosmesa6)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_deps.sh: no apt-get here; for off-screen rendering install the EGL or" \
         "OSMesa OpenGL libraries (Debian names: ${missing[*]})" >&2
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install_system_deps.sh: not root; rendering needs: apt-get install ${missing[*]}" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
install() {
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
if ! install 2>/dev/null; then
    "${SUDO[@]}" apt-get update -qq >/dev/null
    install
fi
echo "install_system_deps.sh: installed ${missing[*]}"
