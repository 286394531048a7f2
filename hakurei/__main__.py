"""``python -m hakurei``: the CLI, or with ``init`` the documented internal entry.

``python -m hakurei init`` is what a parent may exec to start a container's
shim (the setup pipe's fd in ``HAKUREI_SETUP``).  The library itself starts
the same code faster, as ``python -I -S -c`` with an explicit ``sys.path``
(see hakurei/spawn.py), because runpy and site cost 5-25 ms per container.
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "init":
    from .init.shim import main as shim_main

    shim_main()
else:
    from .cli import main

    sys.exit(main())
