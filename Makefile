# Two entry points for a fresh Debian 12 machine; both install what they need
# (Debian packages via apt, Python packages into a venv).
.PHONY: demo test clean

# Install into ./.venv and start containers as an ordinary user.
demo:
	bash scripts/demo.sh

# The whole suite exactly as CI runs it: lint, then tests as an ordinary user,
# then tests marked root.  Extra pytest args: make test PYTEST_ARGS="-k wire".
test:
	bash scripts/test.sh

clean:
	rm -rf .venv build dist *.egg-info
