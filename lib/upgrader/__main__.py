"""``python -m upgrader``: the same as the ``juju-upgrader`` command."""

from upgrader.cli import main

raise SystemExit(main())
