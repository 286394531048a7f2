"""The desktop launcher (issue 7): confine X11, PulseAudio and D-Bus apps as one user.

Only its config layer exists so far (:mod:`hakurei.app.config`): hakurei's
JSON app config, typed and validated before anything touches the host.
Nothing here is imported by ``hakurei exec`` or the container's init: the CLI
loads this package only for the launcher's own subcommands.
"""
