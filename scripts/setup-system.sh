#!/usr/bin/env bash
# Install the Debian packages that building the venv and running hakurei need.
#
# The venv must come from Debian's /usr/bin/python3 (python3-venv), not from a
# pyenv under /root that an ordinary user cannot execute; python3-dev and gcc
# build any dependency that comes without a wheel; bubblewrap is the comparison
# point for tests and benchmarks; make, gcc, xterm and xvfb are the everyday
# tools tests/integration/test_everyday_tools.py runs under the default filter;
# the rest are the real desktop components the launcher tests start (Xvfb,
# PulseAudio, dbus-daemon + xdg-dbus-proxy, weston and sway headless).
# Quick and silent when everything is there, so `make test` and `make demo`
# can call it on every run.
set -euo pipefail

PACKAGES=(python3-venv python3-dev gcc make bubblewrap xterm xvfb git python3-pip
	xauth x11-utils x11-apps imagemagick pulseaudio pulseaudio-utils xdg-dbus-proxy dbus dbus-tests
	weston sway foot wayland-utils grim)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID == 0)); then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	echo "setup-system: missing Debian packages: ${missing[*]}" >&2
	echo "setup-system: installing them needs root, and sudo is not available;" >&2
	echo "setup-system: run this as root: apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi

echo "setup-system: installing ${missing[*]}" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
