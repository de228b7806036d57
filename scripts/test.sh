#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), then run the whole test suite offscreen, with a real
# Secret Service (gnome-keyring under a private D-Bus session) for the keyring tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
exec dbus-run-session -- bash -c '
  # a private keyring folder: never the login keyring of the user, whose password is unknown
  export XDG_DATA_HOME="$(mktemp -d)"
  echo -n "test-only-password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  export LLM_PLAYGROUND_REAL_KEYRING=1
  exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
' test.sh "$@"
