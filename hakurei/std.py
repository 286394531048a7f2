"""The constants a user, an op or the CLI needs, in a module that costs nothing to import.

Mount flags for ``Ops().remount(target, MS_RDONLY)``, the bind flags, the
namespace flags, the seccomp preset and export bits, and the exit statuses
hakurei gives.  They used to live where they are used (``hakurei.init.kernel``,
``hakurei.seccomp``, ``hakurei.errors``); reaching them there loaded ctypes and
python-prctl's C extension (the kernel seam) or the whole filter compiler into a
program that only builds a list of ops.  This is a leaf: it imports nothing,
not even ``os``, so init, the CLI and a trio program can all import it for free,
and the modules above keep re-exporting the names they always had.

The values are the kernel's (``<linux/mount.h>``, ``<linux/sched.h>``) and Go
hakurei's (``bits.FilterPreset``, ``seccomp.ExportFlag``); a unit test pins
each against the module that uses it.
"""

# -- mount(2) flags ---------------------------------------------------------------------
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_RELATIME = 0x200000
#: umount2(2): detach now, let the kernel finish when the mount is no longer busy
MNT_DETACH = 2

# -- mount_setattr(2) attributes: what the ops give a mount (Linux 5.12) --------------------
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

# -- namespace flags (clone(2), unshare(2)) ------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# -- Bind op flags (``Ops().bind(source, target, flags)``) -----------------------------------
#: a missing host source skips the op instead of failing it
BIND_OPTIONAL = 1
#: leave the bind writable
BIND_WRITABLE = 2
#: keep device nodes usable (no nodev)
BIND_DEVICE = 4
#: create the host source as a directory (0700) if it is missing
BIND_ENSURE = 8

# -- seccomp presets (Go ``bits.FilterPreset``): ``seccomp_presets=`` -----------------------
EXT = 1
DENY_NS = 2
DENY_TTY = 4
DENY_DEVEL = 8
LINUX32 = 16
STRICT = EXT | DENY_NS | DENY_TTY | DENY_DEVEL
#: hakurei's own, not in Go: leave out the ns-ext group (set*id, setgroups,
#: chown), which ``EXT | DENY_NS`` would add.  No effect without both.
ALLOW_ID_CALLS = 32
#: The CLI's default (``hakurei exec``, ``hakurei seccomp``, the desktop
#: launcher): every rule of ``STRICT`` but the id-change calls, which only
#: ever set ids to what they are in a container with single-id maps.
EVERYDAY = STRICT | ALLOW_ID_CALLS

# -- seccomp export flags (Go ``seccomp.ExportFlag``): ``seccomp_flags=`` -------------------
ALLOW_MULTIARCH = 1
ALLOW_CAN = 2
ALLOW_BLUETOOTH = 4
#: hakurei's own: keep io_uring (not refused by the appended rules).  Not in Go.
ALLOW_IO_URING = 8

# -- exit statuses shared by init, the shim, the library and the CLI -----------------------
#: the container could not be set up, or the command line was bad (one line on stderr)
EXIT_SETUP = 125
#: the program was found but could not be executed
EXIT_NOEXEC = 126
#: the program was not found
EXIT_NOTFOUND = 127
