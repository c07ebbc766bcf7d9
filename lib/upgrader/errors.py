"""The error types of the upgrader package.

Every failure the package reports on purpose is an :class:`UpgraderError`; its message is
written for an operator (it names the input and, where there is one, the accepted form). The
charm turns these into action failures and statuses, the CLI into a one-line error.
"""

from __future__ import annotations


class UpgraderError(Exception):
    """A failure with a message fit to show an operator."""


class InvalidInputError(UpgraderError, ValueError):
    """A value given by a person (action parameter, config option, CLI argument) is malformed."""


class SelectionError(UpgraderError):
    """No upgrade target can be chosen; the message uses Juju's own wording where it has one."""


class StreamError(UpgraderError):
    """A simplestreams source could not be read or holds a malformed document."""


class NotFoundError(StreamError):
    """The requested document does not exist at the source (HTTP 404/401, missing file)."""


class TransientError(StreamError):
    """A network failure that may go away on its own (timeout, connection reset, HTTP 5xx)."""


class SignatureError(StreamError):
    """Signed metadata failed verification, or signed metadata was required and not found."""
