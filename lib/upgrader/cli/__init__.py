"""``juju-upgrader``, the client tool, also run by Juju as a plugin (``juju upgrader ...``).

One module per command (:mod:`.plan`, :mod:`.sync`, :mod:`.bundle`), the parser and error
handling in :mod:`.main`, shared options and output in :mod:`.options`, :mod:`.console` and
:mod:`.stream`.
"""

from upgrader.cli.main import main

__all__ = ["main"]
