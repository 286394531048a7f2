import os
import sys

# tests/ is imported as a package so helpers (fakekernel, helpers) resolve the
# same way from a source checkout and from CI's copied test tree.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
