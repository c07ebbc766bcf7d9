"""Juju agent upgrade planning and agent-binary mirroring, free of any ops dependency.

The charm (``src/charm.py``) and the ``juju-upgrader`` client tool are thin layers over this
package.
"""
