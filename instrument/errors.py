"""The one exception type that crosses into the command line as a one-line message."""


class UserError(Exception):
    """Something the user can fix (a file, a key, a port, a flag).

    The CLI prints it as one line and exits non-zero, with no traceback.
    Anything else is a bug and keeps its traceback.
    """
