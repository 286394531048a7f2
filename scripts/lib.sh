# shellcheck shell=bash
# Shared by scripts/test.sh, scripts/demo.sh and bench/run.sh (sourced, not run).

# ensure_user NAME: make NAME an ordinary user (no home, no login shell) whose
# uid differs from its primary gid.  The suite, the demo and the benchmark all
# exercise the unprivileged path, so when started as root they run as such a
# user.  uid != gid makes an id-map mix-up (a uid written where a gid belongs)
# visible to the tests; a user left with uid == gid by an earlier version of
# this function gets its group renumbered.
ensure_user() {
	if ! id -u "$1" >/dev/null 2>&1; then
		echo "creating ordinary user $1" >&2
		useradd --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "hakurei unprivileged tests" "$1"
	fi
	local uid gid group new
	uid=$(id -u "$1")
	gid=$(id -g "$1")
	((uid != gid)) && return 0
	group=$(id -gn "$1")
	# The first gid >= 2000 that no group and no user id uses.
	new=2000
	while getent group "$new" >/dev/null || getent passwd "$new" >/dev/null; do
		new=$((new + 1))
	done
	echo "renumbering group $group of user $1 from $gid to $new (uid $uid)" >&2
	# groupmod moves the user's primary gid along with the group.
	groupmod --gid "$new" "$group"
	(($(id -g "$1") != uid)) || {
		echo "ensure_user: $1 still has uid == gid" >&2
		return 1
	}
}
