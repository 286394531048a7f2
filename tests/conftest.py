"""Shared pytest configuration.

Tests run against the *installed* package (the test command copies tests/
to a temporary directory first), never against the source tree: in the source
tree ``init/`` and ``ops/`` are not yet ``hakurei.init`` and ``hakurei.ops``.
pytest puts this directory on sys.path, so helpers import as top-level
modules: ``from fakekernel import FakeKernel, call``.
"""

from hypothesis import settings

# The test tree is a read-only copy: keep hypothesis's example database in memory.
settings.register_profile("hakurei", database=None)
settings.load_profile("hakurei")
