#!/usr/bin/env bash
# `make demo`: install hakurei into a venv and start four containers as an
# ordinary user: one from the CLI, one from a trio program, one from
# bubblewrap's command line (`hakurei bwrap` through a symlink named bwrap),
# and one X11 app through the launcher (`hakurei run -X`) under a private Xvfb.
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

# --- bubblewrap's command line: `hakurei bwrap` through a symlink named bwrap ---
mkdir -p "$WORK/bwrap-bin"
ln -sf "$VENV/bin/hakurei" "$WORK/bwrap-bin/bwrap"
chmod 0755 "$WORK/bwrap-bin"
bw_probe='echo "pid $$ as $(id -un); network: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"'
printf '\n[%s]$ bwrap --ro-bind / / --proc /proc --dev /dev --unshare-all -- /bin/sh -c %s\n' \
	"$DEMO_USER" "'...'   (bwrap: a symlink to hakurei)"
as_user "${user_env[@]}" "$WORK/bwrap-bin/bwrap" --ro-bind / / --proc /proc --dev /dev \
	--unshare-all --die-with-parent -- /bin/sh -c "$bw_probe" || status=$?

# --- one confined X11 app under a private Xvfb ---------------------------------
# The launcher's part: the demo user starts its own Xvfb with a cookie of its
# own, `hakurei run -X` gives one app that display with a fresh *untrusted*
# cookie, and the app reports what it sees.  Afterwards the server is stopped
# and `hakurei ps` must be empty: the launcher revoked the cookie and removed
# its instance on the way out.
X=$WORK/home/x
as_user mkdir -m 0700 "$X"
xvfb_pid=
stop_xvfb() {
	[[ -n $xvfb_pid ]] || return 0
	# SIGTERM: Xvfb removes its socket and lock file on the way out.
	kill -TERM "$xvfb_pid" 2>/dev/null || true
	wait "$xvfb_job" 2>/dev/null || true
	xvfb_pid=
}
trap 'stop_xvfb; rm -rf "$WORK"' EXIT
if [[ ! -d /tmp/.X11-unix ]] && ((EUID == 0)); then
	install -d -m 1777 /tmp/.X11-unix # what x11-common's boot script makes
fi
cookie=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# Both cookie files exist (0600) before xauth writes them, so it has nothing to complain about.
as_user /bin/sh -c 'umask 077; : >>"$1/server.xauth"; : >>"$2/.Xauthority"' sh "$X" "$WORK/home"
as_user "${user_env[@]}" xauth -q -f "$X/server.xauth" add :0 . "$cookie"
# -displayfd writes the display number once the server accepts connections,
# so that (not a sleep) is the readiness signal.  The inner shell records
# Xvfb's own pid: runuser in between is not the process to stop.
as_user "${user_env[@]}" /bin/sh -c 'echo $$ >"$1/pid"; exec Xvfb -displayfd 3 -noreset \
	-nolisten tcp -auth "$1/server.xauth" -screen 0 640x480x24 3>"$1/display" \
	>"$1/log" 2>&1' sh "$X" &
xvfb_job=$!
display=
for _ in $(seq 100); do # 10 s
	if [[ -s $X/display ]] && [[ $(<"$X/display") =~ ^[0-9]+$ ]] && [[ -s $X/pid ]]; then
		display=$(<"$X/display")
		xvfb_pid=$(<"$X/pid")
		break
	fi
	kill -0 "$xvfb_job" 2>/dev/null || break
	sleep 0.1
done
if [[ -z $display ]]; then
	[[ -s $X/pid ]] && xvfb_pid=$(<"$X/pid")
	tail -n 5 "$X/log" >&2 || true
	echo "demo: Xvfb did not start" >&2
	status=1
else
	# The demo user's own cookie, where its X clients look for it (~/.Xauthority).
	as_user "${user_env[@]}" xauth -q add ":$display" . "$cookie"
	x_env=("${user_env[@]}" DISPLAY=":$display")
	outside=$(as_user "${x_env[@]}" xdpyinfo | sed -n 's/^number of extensions: *//p')
	# shellcheck disable=SC2016 # expanded inside the container
	probe='echo "display:       $DISPLAY"; echo "uid inside:    $(id -u)"
n=$(xdpyinfo | sed -n "s/^number of extensions: *//p"); echo "X extensions:  $n"'
	printf '\n[%s]$ hakurei run -X -- /bin/sh -c '\''...'\''   (under Xvfb :%s)\n' \
		"$DEMO_USER" "$display"
	run_status=0
	as_user "${x_env[@]}" hakurei run -X -- /bin/sh -c "$probe" >"$X/seen" || run_status=$?
	sed 's/^/  /' "$X/seen"
	if ((run_status)); then
		status=$run_status
	else
		echo "  (uid outside: $(id -u "$DEMO_USER"); an ordinary client outside sees $outside" \
			"extensions: the app's cookie is untrusted)"
	fi
	left=$(as_user "${user_env[@]}" hakurei ps --short)
	stop_xvfb
	if [[ -n $left ]]; then
		echo "demo: instances left behind: $left" >&2
		status=1
	elif [[ -e /tmp/.X11-unix/X$display ]]; then
		echo "demo: Xvfb left /tmp/.X11-unix/X$display behind" >&2
		status=1
	else
		echo "  Xvfb stopped; hakurei ps: no instances left"
	fi
fi

if ((status)); then
	echo "demo: FAILED (exit $status)" >&2
else
	echo "demo: OK"
fi
exit "$status"
