#!/usr/bin/env bash
# Run bubblewrap's own test suite against a bwrap, with a verdict for every case:
#
#   scripts/bwrap-suite.sh [--bwrap PATH] [--user USER] [--markdown FILE] [--json FILE]
#                          [--compare JSON]... [--label TEXT] BUBBLEWRAP_SRC
#
# BUBBLEWRAP_SRC is a bubblewrap source tree (git clone --branch v0.11.1
# https://github.com/containers/bubblewrap); it is only read: the scripts run from a temporary
# copy.  This wrapper prepares the machine, then hands over to scripts/bwrap_suite.py (see there,
# and `--help`, for everything else):
#   * as root, installs the programs the suite calls when they are missing (strace for fault
#     injection, getpcaps/capsh, findmnt/unshare, python3-seccomp and gcc for test-seccomp.py,
#     bubblewrap as the reference), with apt-get as scripts/setup-system.sh does;
#   * as root, creates the default test user hakurei-test the way scripts/test.sh does (another
#     --user must exist already).  Run as an ordinary user, the suite runs as that user.
# The exit status is 0 whatever the cases did (this is a report, not a gate); 2 when the
# harness itself could not run.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"

PACKAGES=(bash coreutils util-linux strace libcap2-bin python3 python3-seccomp gcc libc6-dev
	bubblewrap)

user=hakurei-test
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	--user) user=${args[i + 1]:-} ;;
	--user=*) user=${args[i]#--user=} ;;
	esac
done

if ((EUID == 0)); then
	missing=()
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		[[ $status == "install ok installed" ]] || missing+=("$pkg")
	done
	if ((${#missing[@]})); then
		echo "bwrap-suite: installing ${missing[*]}" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" >&2
	fi
	[[ $user != hakurei-test ]] || ensure_user hakurei-test
fi

exec /usr/bin/python3 -I "$REPO/scripts/bwrap_suite.py" "$@"
