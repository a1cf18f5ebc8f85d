"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class OpteError(Exception):
    """A failure the user can act on; its message is one line saying what happened and what to do."""
