"""The one exception a user is meant to read."""


class TagfError(Exception):
    """Expected failure caused by the user's input; the CLI shows the message as is.

    The message names the file or value, what is wrong and, where it helps, what would fix it.
    """
