"""Code that runs inside the new namespaces: the shim and PID-1 init.

Installed as ``hakurei.init``.  Everything here is on the start-up path of
every container, so it imports nothing slow (no trio, pyseccomp, subprocess,
signal, typing, dataclasses or json).
"""
