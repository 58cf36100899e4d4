"""The root of errors a user can act on; the CLI prints their message instead of a traceback."""


class SorterError(Exception):
    """An error whose message names what is wrong and what to do about it."""


class ModelFileError(SorterError):
    """A model file is missing, unreadable or does not match what the recipe expects."""
