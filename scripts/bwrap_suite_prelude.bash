# shellcheck shell=bash
# Sourced by scripts/bwrap_suite.py into a temporary copy of bubblewrap's tests/test-run.sh,
# on the line that closes its done_testing() definition (so line numbers stay those of the
# original), before the first case runs.
#
# Why: test-run.sh runs under `set -e`, so its first failing case ends the run and hides every
# case after it.  Here a failure ends only the current case:
#   * errexit is off; an ERR trap (inherited by functions: set -E) records the first failure
#     of the case.  The ERR trap fires exactly where errexit would have exited (not in `if`
#     conditions, `!` pipelines or the left side of && and ||), so what counts as a failure is
#     unchanged;
#   * fatal/assert_not_reached record the failure instead of exiting;
#   * once the case has failed, a DEBUG trap (extdebug: a non-zero return skips the command)
#     skips every command up to the case's ok/ok_skip, as an exit would have, so a failed case
#     does not go on to do things its author never meant to run after a failure;
#   * ok/ok_skip print `ok N name`, `not ok N name # why` or `ok N # SKIP why`, and append
#     `N<TAB>ok|FAIL|SKIP<TAB>name<TAB>why` to results.tsv beside this file for the harness.
# Only the main shell records and skips: subshells and command substitutions behave as they
# do under `set -e` (which they do not inherit), their status reaching the main shell as usual.

{ __hk_xtrace=$-; set +x; } 2>/dev/null
__hk_results="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/results.tsv"
__hk_main=$BASHPID
__hk_failed=  # why the current case failed; empty while it has not
__hk_verdict= # the failure handed to ok(), once the DEBUG trap let the ok call through

# __hk_err STATUS: the ERR trap.  Records the first failure of the case, with the line of
# test-run.sh it happened on (the outermost frame, so a failing assert_* reports its caller).
__hk_err() {
	[[ $BASHPID == "$__hk_main" && -z $__hk_failed ]] || return 0
	local line=${BASH_LINENO[${#BASH_LINENO[@]} - 2]} cmd=${BASH_COMMAND//$'\n'/ }
	__hk_failed="line $line: exit $1: ${cmd:0:160}"
}

# __hk_debug: the DEBUG trap.  Non-zero skips the command about to run (extdebug).
__hk_debug() {
	[[ $BASHPID == "$__hk_main" && -n $__hk_failed ]] || return 0
	case $BASH_COMMAND in
	ok | "ok "* | ok_skip | "ok_skip "* | done_testing*)
		__hk_verdict=$__hk_failed
		__hk_failed=
		return 0
		;;
	esac
	return 1
}

# __hk_kill_tree PID: SIGKILL PID and its descendants (stopped first, so a loop such as the
# die-with-parent case's `while true; do $RUN ...; done` cannot start another child meanwhile).
__hk_kill_tree() {
	local child
	kill -STOP "$1" 2>/dev/null || return 0
	# shellcheck disable=SC2013  # the children file is one line of space-separated pids
	for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		__hk_kill_tree "$child"
	done
	kill -KILL "$1" 2>/dev/null || true
}

fatal() {
	{ local -; set +x; } 2>/dev/null
	local message=$*
	echo "$message" >&2
	if [[ $BASHPID == "$__hk_main" && -z $__hk_failed ]]; then
		local line=${BASH_LINENO[${#BASH_LINENO[@]} - 2]}
		__hk_failed="line $line: ${message:0:200}"
	fi
	return 1
}

ok() {
	{ local -; set +x; } 2>/dev/null
	local verdict=ok tap=$* name=$* why=$__hk_verdict job
	test_count=$((test_count + 1))
	if [[ ${1:-} == "# SKIP" ]]; then
		verdict=SKIP
		shift
		name=$*
		why=$*
	fi
	if [[ -n $__hk_verdict ]]; then
		verdict=FAIL
		echo "not ok $test_count $name # $__hk_verdict"
		# A case that failed half-way may leave a background job behind (the die-with-parent
		# case kills its own only when it gets that far): end it, so it cannot disturb the
		# cases after this one.
		for job in $(jobs -p); do
			__hk_kill_tree "$job"
		done
	else
		echo "ok $test_count $tap"
	fi
	printf '%s\t%s\t%s\t%s\n' "$test_count" "$verdict" "${name//$'\t'/ }" "${why//$'\t'/ }" \
		>>"$__hk_results"
	__hk_verdict=
}

ok_skip() {
	ok "# SKIP" "$@"
}

set +e -E
shopt -s extdebug
trap '{ __hk_err "$?"; } 2>/dev/null' ERR
trap '{ __hk_debug; } 2>/dev/null' DEBUG
[[ $__hk_xtrace != *x* ]] || set -x
