#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`make test`, `.ci/run`).
#
# hakurei only works INSTALLED (init/ and ops/ become hakurei.init and
# hakurei.ops), and its point is the unprivileged path, so this script:
#   0. installs the Debian packages it needs (scripts/setup-system.sh);
#   1. builds, in a fresh temp dir, a venv from Debian's /usr/bin/python3 (a
#      pyenv under /root is not executable by an ordinary user), installs the
#      package non-editable from a copy of the repo (the clone itself may be
#      unreadable to that user), byte-compiles it, and copies tests/ beside it;
#   2. lints: ruff check, ruff format --check, mypy --strict -p hakurei;
#   3. runs every test not marked `root` as an ordinary user (hakurei-test,
#      created if missing, when run as root; else the current user), then the
#      integration tests again with library starts cold (HAKUREI_FORKSERVER=0);
#   4. runs the tests marked `root` as root, if there are any.
# Every phase runs even if an earlier one failed; the exit status is non-zero
# if any failed.  pytest's exit 5 (no tests ran) is a failure in phase 3.
#
# Environment:
#   PYTEST_ARGS  extra pytest arguments, as shell words (e.g. PYTEST_ARGS="-k wire -x")
#   HK_VENV      reuse this venv instead of building one (the package is still
#                reinstalled into it); it must be usable by the test user
#   HK_KEEP=1    keep the temp dir for inspection
#   HK_PHASE_TIMEOUT  seconds a pytest phase may take before it is killed (900)
#   HK_COLD_PHASE=0   skip the cold-start rerun of the integration tests
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$REPO/scripts/lib.sh"
TEST_USER_NAME=hakurei-test
PHASE_TIMEOUT=${HK_PHASE_TIMEOUT:-900}

log() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'test.sh: %s\n' "$*" >&2
	exit 1
}

extra_args=()
eval "extra_args=(${PYTEST_ARGS:-})" || die "cannot parse PYTEST_ARGS"

bash "$REPO/scripts/setup-system.sh"

# --- who runs the unprivileged phase ------------------------------------------
if ((EUID == 0)); then
	TEST_USER=$TEST_USER_NAME
	ensure_user "$TEST_USER"
	as_user() { runuser -u "$TEST_USER" -- "$@"; }
else
	TEST_USER=$(id -un)
	as_user() { "$@"; }
fi
TEST_UID=$(id -u "$TEST_USER")
TEST_GID=$(id -g "$TEST_USER")
((TEST_UID != 0)) || die "the unprivileged phase would run as root"

# --- the temp dir -------------------------------------------------------------
WORK=$(mktemp -d "${HK_TEST_TMP:-/tmp}/hakurei-test.XXXXXX")
chmod 0755 "$WORK"
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
	if [[ ${HK_KEEP:-} == 1 ]]; then
		echo "test.sh: kept $WORK" >&2
		return
	fi
	# A test may leave a directory without write permission behind.
	chmod -R u+rwX "$WORK" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

SRC=$WORK/src     # copy of the repo the package is built from and linted
SUITE=$WORK/suite # pyproject.toml (pytest config) + tests/: the only rootdir pytest sees
LINT=$WORK/lint   # empty cwd for mypy, which puts its cwd on the search path
RESULTS=$WORK/results
USER_HOME=$WORK/home-user
USER_TMP=$WORK/tmp-user
ROOT_HOME=$WORK/home-root
ROOT_TMP=$WORK/tmp-root
mkdir -p "$SRC" "$SUITE" "$LINT" "$RESULTS" "$USER_HOME" "$USER_TMP" "$ROOT_HOME" "$ROOT_TMP"

log "copying $REPO"
# Never copy build/ or *.egg-info: setuptools would install stale modules from them.
tar -C "$REPO" \
	--exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
	--anchored --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
	--exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.pytest_cache \
	--exclude=./.hypothesis \
	-cf - . | tar -C "$SRC" --no-same-owner -xf -
chmod 0755 "$SRC"
[[ -d $SRC/tests ]] || die "no tests/ directory in $REPO"
cp -r "$SRC/tests" "$SUITE/tests"
cp "$SRC/pyproject.toml" "$SUITE/pyproject.toml"
chmod -R a+rX "$SRC" "$SUITE"
if ((EUID == 0)); then
	chown "$TEST_UID:$TEST_GID" "$RESULTS" "$USER_HOME" "$USER_TMP"
fi
chmod 0700 "$USER_HOME" "$USER_TMP" "$ROOT_HOME" "$ROOT_TMP"
chmod 0755 "$RESULTS"

# --- the venv -----------------------------------------------------------------
if [[ -n ${HK_VENV:-} ]]; then
	VENV=$(cd "$HK_VENV" && pwd)
	[[ -x $VENV/bin/python ]] || die "HK_VENV=$HK_VENV is not a venv"
	log "reusing venv $VENV"
else
	VENV=$WORK/venv
	log "building venv $VENV from /usr/bin/python3"
	/usr/bin/python3 -m venv "$VENV"
	# Debian's bundled setuptools is too old to build from pyproject.toml.
	"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi
PY=$VENV/bin/python

log "installing hakurei[test] (non-editable)"
# A local directory is always rebuilt and reinstalled, even at the same version.
"$PY" -m pip install -q "${SRC}[test]"
# setuptools builds in the source dir: drop that so ruff sees only the repo.
rm -rf "$SRC/build" "$SRC"/*.egg-info
PKG_DIR=$(cd "$LINT" && "$PY" -I -c 'import hakurei, os; print(os.path.dirname(hakurei.__file__))')
# An unprivileged caller cannot write __pycache__ into a root-owned install.
"$PY" -m compileall -q "$PKG_DIR"

# Per-run HOME and XDG_CACHE_HOME, both inside $WORK: no test can pass because
# of a file (e.g. a cached seccomp program) that an earlier run left behind.
user_env=(env -i
	PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin"
	HOME="$USER_HOME" TMPDIR="$USER_TMP" USER="$TEST_USER" LOGNAME="$TEST_USER"
	XDG_CACHE_HOME="$USER_HOME/.cache"
	LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
	HYPOTHESIS_STORAGE_DIRECTORY="$USER_HOME/.hypothesis")
root_env=(env -i
	PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	HOME="$ROOT_HOME" TMPDIR="$ROOT_TMP" USER=root LOGNAME=root HAKUREI_TEST_USER="$TEST_USER"
	XDG_CACHE_HOME="$ROOT_HOME/.cache"
	LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
	HYPOTHESIS_STORAGE_DIRECTORY="$ROOT_HOME/.hypothesis")
for var in CI PYTEST_ADDOPTS; do
	if [[ -n ${!var+set} ]]; then
		user_env+=("$var=${!var}")
		root_env+=("$var=${!var}")
	fi
done

where=$(cd "$SUITE" && as_user "${user_env[@]}" python -I -c 'import hakurei.ops, hakurei.init; print(hakurei.__file__)') ||
	die "user $TEST_USER cannot import hakurei from $VENV (is the venv readable by it?)"
echo "testing $where as $TEST_USER (uid $TEST_UID)"

# Through the venv's python, not the pytest script: a copied venv's scripts may
# point at another interpreter.  -P keeps the cwd (the suite dir) off sys.path.
pytest_cmd=("$PY" -P -m pytest)
pytest_common=(-p no:cacheprovider -ra)

# --- phases -------------------------------------------------------------------
summary=()
failed=0
record() { # name status
	summary+=("$(printf '%-28s %s' "$1" "$2")")
	[[ $2 == ok* || $2 == skipped* ]] || failed=1
}
run_step() { # name cmd...: run, record ok/FAILED with duration
	local name=$1 start=$SECONDS rc=0
	shift
	"$@" || rc=$?
	if ((rc == 0)); then
		record "$name" "ok ($((SECONDS - start))s)"
	else
		record "$name" "FAILED (exit $rc, $((SECONDS - start))s)"
	fi
	return 0
}
pytest_status() { # rc start -> text
	case $1 in
	0) echo "ok ($((SECONDS - $2))s)" ;;
	1) echo "FAILED (tests failed, $((SECONDS - $2))s)" ;;
	5) echo "FAILED (no tests collected)" ;;
	124 | 137) echo "FAILED (timed out after ${PHASE_TIMEOUT}s)" ;;
	*) echo "FAILED (pytest exit $1)" ;;
	esac
}

log "lint: ruff check"
run_step "ruff check" "$VENV/bin/ruff" check --no-cache "$SRC"
log "lint: ruff format --check"
run_step "ruff format --check" "$VENV/bin/ruff" format --check --no-cache "$SRC"
log "lint: mypy --strict -p hakurei (installed package)"
# shellcheck disable=SC2317  # invoked through run_step
mypy_installed() {
	(cd "$LINT" && "$PY" -m mypy --strict --config-file "$SRC/pyproject.toml" \
		--cache-dir "$WORK/.mypy_cache" -p hakurei)
}
run_step "mypy --strict" mypy_installed

log "pytest as $TEST_USER: tests not marked root"
start=$SECONDS
rc=0
(cd "$SUITE" && as_user timeout -k 30 "$PHASE_TIMEOUT" "${user_env[@]}" \
	"${pytest_cmd[@]}" "${pytest_common[@]}" -m "not root" --junitxml="$RESULTS/user.xml" \
	"${extra_args[@]}") || rc=$?
record "pytest as $TEST_USER" "$(pytest_status "$rc" "$start")"

# The library starts containers through a per-process fork server by default;
# the cold spawn is its fallback and opt-out.  Every integration test must
# pass both ways, so the integration tests run again with the server off.
if [[ ${HK_COLD_PHASE:-1} == 1 ]]; then
	log "pytest as $TEST_USER: integration tests with cold starts (HAKUREI_FORKSERVER=0)"
	cold_args=("${extra_args[@]}")
	named=0
	for a in "${extra_args[@]}"; do [[ $a == tests* ]] && named=1; done
	((named)) || cold_args+=(tests/integration)
	start=$SECONDS
	rc=0
	(cd "$SUITE" && as_user timeout -k 30 "$PHASE_TIMEOUT" "${user_env[@]}" HAKUREI_FORKSERVER=0 \
		"${pytest_cmd[@]}" "${pytest_common[@]}" -m "not root" --junitxml="$RESULTS/cold.xml" \
		"${cold_args[@]}") || rc=$?
	record "pytest, cold starts" "$(pytest_status "$rc" "$start")"
fi

log "pytest as root: tests marked root"
if ((EUID == 0)); then
	as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	as_root=(sudo -n)
else
	as_root=(none)
fi
rc=0
(cd "$SUITE" && "${root_env[@]}" "${pytest_cmd[@]}" "${pytest_common[@]}" --collect-only -q -m root \
	"${extra_args[@]}" >"$WORK/root-collect.txt" 2>&1) || rc=$?
if ((rc == 5)); then
	echo "no tests marked root: phase skipped"
	record "pytest as root" "skipped (no tests marked root)"
elif ((rc != 0)); then
	cat "$WORK/root-collect.txt"
	record "pytest as root" "FAILED (collection, pytest exit $rc)"
elif [[ ${as_root[0]:-} == none ]]; then
	echo "test.sh: tests marked root exist but this is not root and sudo -n is unavailable" >&2
	record "pytest as root" "skipped (NOT RUN: needs root)"
else
	start=$SECONDS
	rc=0
	(cd "$SUITE" && "${as_root[@]}" timeout -k 30 "$PHASE_TIMEOUT" "${root_env[@]}" \
		"${pytest_cmd[@]}" "${pytest_common[@]}" -m root --junitxml="$RESULTS/root.xml" \
		"${extra_args[@]}") || rc=$?
	record "pytest as root" "$(pytest_status "$rc" "$start")"
fi

# --- summary ------------------------------------------------------------------
IFS= read -r -d '' count_py <<'EOF' || true
import sys
import xml.etree.ElementTree as ET

n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for suite in root.iter("testsuite"):
        for k in n:
            n[k] += int(suite.get(k, 0))
passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
failed = n["failures"] + n["errors"]
print(f"{passed} passed, {failed} failed" + (f", {n['skipped']} skipped" if n["skipped"] else ""))
EOF
counts=$(/usr/bin/python3 -I -c "$count_py" "$RESULTS"/*.xml 2>/dev/null || true)

printf '\n==================== hakurei test summary ====================\n'
printf '%s\n' "${summary[@]}"
if ((failed)); then
	echo "result: FAILED"
else
	echo "result: OK"
fi
[[ -n $counts ]] && echo "tests: $counts"
exit "$failed"
