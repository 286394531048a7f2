#!/usr/bin/env bash
# Run bench/bench_start.py (or the bench_*.py named as the first argument, e.g.
# `bench/run.sh bench_server.py`) as an ordinary user against an INSTALLED hakurei.
#
# The venv is $HK_VENV, else the repository's .venv (`make demo` builds it);
# the benchmark spawns that venv's `hakurei` console script, the path users
# run.  Started as root, it runs as $HK_USER, else $SUDO_USER, else the
# ordinary user hakurei-test (created if missing, as scripts/test.sh does):
# containers are measured unprivileged, which is the point of hakurei.
#
# The environment is reset to PATH, HOME, LANG and TERM so nothing from the
# caller (PYTHONPATH, a pyenv shim) changes what is measured.  When the
# user's home is not writable, XDG_CACHE_HOME points to a private temp dir so
# the CLI can keep its compiled seccomp program between runs, as it would for
# a real user.  Arguments go to the script (e.g. -n 50, --no-profile).
#
# bench_server.py started as root runs as root with --user: it keeps a root
# process that only reads /proc/PID/smaps_rollup (init is not dumpable, so its
# own user cannot) and runs every measurement as that user.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
VENV=${HK_VENV:-$REPO/.venv}
SCRIPT=bench_start.py
if [[ ${1:-} == bench_*.py ]]; then
	SCRIPT=$1
	shift
fi

die() {
	printf 'bench/run.sh: %s\n' "$*" >&2
	exit 1
}

[[ -f $REPO/bench/$SCRIPT ]] || die "no bench/$SCRIPT"
[[ -x $VENV/bin/python ]] || die "no venv at $VENV (run 'make demo' or set HK_VENV)"
[[ -x $VENV/bin/hakurei ]] || die "$VENV has no hakurei console script: install the package there"
[[ -x /usr/bin/bwrap ]] || die "bubblewrap is not installed (apt-get install bubblewrap)"

if ((EUID == 0)); then
	if [[ -n ${HK_USER:-} ]]; then
		BENCH_USER=$HK_USER
	elif [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]]; then
		BENCH_USER=$SUDO_USER
	else
		BENCH_USER=hakurei-test
		ensure_user "$BENCH_USER"
	fi
	(($(id -u "$BENCH_USER") != 0)) || die "the benchmark must run as an ordinary user, not $BENCH_USER"
	as_user() { runuser -u "$BENCH_USER" -- "$@"; }
else
	BENCH_USER=$(id -un)
	as_user() { "$@"; }
fi

# The checkout may be unreadable to that user: run a copy of the script (and of
# the C sources a script builds, bench_wayland.py's null_relay.c).
WORK=$(mktemp -d /tmp/hakurei-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp "$REPO/bench/$SCRIPT" "$REPO"/bench/*.c "$WORK/"
chmod 0755 "$WORK"
chmod 0644 "$WORK/$SCRIPT" "$WORK"/*.c

as_user "$VENV/bin/python" -c pass 2>/dev/null ||
	die "$BENCH_USER cannot run $VENV/bin/python (a venv under a 0700 home? set HK_VENV)"

USER_HOME=$(getent passwd "$BENCH_USER" | cut -d: -f6)
envs=(PATH=/usr/local/bin:/usr/bin:/bin HOME="$USER_HOME" LANG="${LANG:-C.UTF-8}")
[[ -n ${TERM:-} ]] && envs+=(TERM="$TERM")
if ! as_user test -w "$USER_HOME"; then
	mkdir "$WORK/cache"
	((EUID != 0)) || chown "$BENCH_USER" "$WORK/cache"
	envs+=(XDG_CACHE_HOME="$WORK/cache")
fi

cd "$WORK"
if [[ $SCRIPT == bench_server.py ]] && ((EUID == 0)); then
	env -i "${envs[@]}" "$VENV/bin/python" "$WORK/$SCRIPT" --user "$BENCH_USER" "$@"
else
	as_user env -i "${envs[@]}" "$VENV/bin/python" "$WORK/$SCRIPT" "$@"
fi
