"""The desktop launcher (issue 7): confine X11, PulseAudio and D-Bus apps as one user.

What exists so far: its config layer (:mod:`hakurei.app.config`: hakurei's
JSON app config, typed and validated before anything touches the host; its
records are :mod:`~hakurei.app.records`, its checks :mod:`~hakurei.app.check`) and
its crash-recovery bookkeeping (:mod:`hakurei.app.store`, the state store
whose liveness is a lock, and :mod:`hakurei.app.journal`, the undo journal
persisted before each host action).  Nothing here is imported by
``hakurei exec`` or the container's init: the CLI loads this package only
for the launcher's own subcommands.
"""
