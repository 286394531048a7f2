#!/usr/bin/env bash
# `make demo`: install hakurei into a venv and start two containers as an
# ordinary user, one from the CLI and one from a trio program.
#
# The venv lives at ./.venv so a second run only reinstalls the package; it is
# built from Debian's /usr/bin/python3 because the ordinary user must be able
# to execute it (a pyenv under /root is mode 0700).  When that user cannot
# read this checkout, the venv goes to /tmp instead.
#
# Who runs the containers: the current user; as root, the user who called sudo
# ($SUDO_USER), else the ordinary user hakurei-test (created if missing).
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"

die() {
	printf 'demo.sh: %s\n' "$*" >&2
	exit 1
}

bash "$REPO/scripts/setup-system.sh"

if ((EUID == 0)); then
	if [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]] && id -u "$SUDO_USER" >/dev/null 2>&1; then
		DEMO_USER=$SUDO_USER
	else
		DEMO_USER=hakurei-test
		ensure_user "$DEMO_USER"
	fi
	as_user() { runuser -u "$DEMO_USER" -- "$@"; }
else
	DEMO_USER=$(id -un)
	as_user() { "$@"; }
fi
(($(id -u "$DEMO_USER") != 0)) || die "the demo must run as an ordinary user"

# --- where the venv goes ------------------------------------------------------
repo_readable=0
if as_user test -x "$REPO" -a -r "$REPO/examples/hello_trio.py"; then
	repo_readable=1
fi
VENV=$REPO/.venv
if ((!repo_readable)) || { [[ -e $VENV ]] && [[ ! -w $VENV ]]; }; then
	VENV=/tmp/hakurei-demo-venv-$(id -u)
	# /tmp is shared: only reuse a venv that is ours and not a planted link.
	if [[ -L $VENV ]] || { [[ -e $VENV ]] && [[ ! -O $VENV ]]; }; then
		die "$VENV exists but is not ours; remove it"
	fi
fi

if [[ -x $VENV/bin/python ]] && grep -qx 'home = /usr/bin' "$VENV/pyvenv.cfg" 2>/dev/null &&
	as_user "$VENV/bin/python" -c pass 2>/dev/null; then
	echo "demo: reusing venv $VENV"
else
	echo "demo: building venv $VENV from /usr/bin/python3"
	rm -rf "$VENV"
	/usr/bin/python3 -m venv "$VENV"
	# Debian's bundled setuptools is too old to build from pyproject.toml.
	"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
chmod 0755 "$VENV"

# --- install from a copy ------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hakurei-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"
mkdir "$WORK/src" "$WORK/home"
# Building in a copy keeps build/ and *.egg-info out of the checkout, and a
# stale build/ can never leak deleted modules into the install.
tar -C "$REPO" \
	--exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
	--anchored --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
	--exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.pytest_cache \
	--exclude=./.hypothesis \
	-cf - . | tar -C "$WORK/src" --no-same-owner -xf -
echo "demo: installing hakurei into $VENV"
"$VENV/bin/python" -m pip install -q "$WORK/src"
PKG_DIR=$(cd "$WORK/home" && "$VENV/bin/python" -I -c 'import hakurei, os; print(os.path.dirname(hakurei.__file__))')
# An unprivileged caller cannot write __pycache__ into a root-owned install.
"$VENV/bin/python" -m compileall -q "$PKG_DIR"
if ((EUID == 0)); then
	chown "$(id -u "$DEMO_USER"):$(id -g "$DEMO_USER")" "$WORK/home"
fi
chmod 0700 "$WORK/home"

user_env=(env -i PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" HOME="$WORK/home"
	TMPDIR="$WORK/home" USER="$DEMO_USER" LOGNAME="$DEMO_USER" LANG=C.UTF-8)
[[ -n ${TERM:-} ]] && user_env+=(TERM="$TERM")

# --- the demo -----------------------------------------------------------------
cd /
status=0
printf '\n[%s]$ hakurei exec -- /bin/sh -c '\''id; hostname; ls /'\''\n' "$DEMO_USER"
as_user "${user_env[@]}" hakurei exec -- /bin/sh -c 'id; hostname; ls /' || status=$?

printf '\n[%s]$ python examples/hello_trio.py\n' "$DEMO_USER"
if ((repo_readable)); then
	as_user "${user_env[@]}" python "$REPO/examples/hello_trio.py" || status=$?
else
	# The checkout is private to us: hand the program over on stdin.
	as_user "${user_env[@]}" python - <"$REPO/examples/hello_trio.py" || status=$?
fi

if ((status)); then
	echo "demo: FAILED (exit $status)" >&2
else
	echo "demo: OK"
fi
exit "$status"
