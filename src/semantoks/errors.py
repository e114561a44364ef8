"""The one exception type users see: a clear sentence, shown by the CLI without a traceback."""


class SemantoksError(Exception):
    """A problem with the user's input or setup; the message names the file and the fix."""


class SkipRun(SemantoksError):
    """A run that cannot be used; the workflow records the reason in the manifest and goes on."""
