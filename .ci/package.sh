#!/usr/bin/env bash
# Build the lite Linux bundle and .deb, install the .deb, and self-test the installed app.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo

t0=$(date +%s)
bash packaging/linux/build.sh --lite
deb=$(ls packaging/out/llm-playground-lite_*_amd64.deb | head -n 1)
echo "package: built $deb ($(du -h "$deb" | cut -f1)) in $(( $(date +%s) - t0 )) s"

# dpkg -i installs the package; on a bare Debian it stops on missing Qt/xcb libraries, which
# apt-get -f then installs (finishing the package's configuration).
if ! $sudo dpkg -i "$deb"; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -f -y -qq >/dev/null
fi
dpkg -s llm-playground-lite | grep -q "^Status: install ok installed"
trap 'DEBIAN_FRONTEND=noninteractive $sudo apt-get remove -y -qq llm-playground-lite >/dev/null || true' EXIT
echo "package: installed to /opt/llm-playground ($(du -sh /opt/llm-playground | cut -f1)); launcher $(command -v llm-playground)"

cd /tmp  # run from outside the source tree: only the installed bundle is used
QT_QPA_PLATFORM=offscreen dbus-run-session -- bash -c '
  # a private keyring folder: never the login keyring of the user, whose password is unknown
  export XDG_DATA_HOME="$(mktemp -d)"
  echo -n "ci-self-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
  llm-playground --self-test
'
