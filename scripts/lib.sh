# shellcheck shell=bash
# Shared by scripts/test.sh, scripts/demo.sh and bench/run.sh (sourced, not run).

# ensure_user NAME: create NAME as an ordinary user (no home, no login shell)
# if it does not exist.  The suite, the demo and the benchmark all exercise the
# unprivileged path, so when started as root they run as such a user.
ensure_user() {
	id -u "$1" >/dev/null 2>&1 && return 0
	echo "creating ordinary user $1" >&2
	useradd --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin --comment "hakurei unprivileged tests" "$1"
}
