"""The one exception type users see: a clear sentence, shown by the CLI without a traceback."""

import errno


class SemantoksError(Exception):
    """A problem with the user's input or setup; the message names the file and the fix."""


class SkipRun(SemantoksError):
    """A run that cannot be used; the workflow records the reason in the manifest and goes on."""


# a full disk or a folder that cannot be written is the user's to fix, not a bug: one line, no traceback
_OS_FIXES = {
    errno.ENOSPC: "free space on that disk or write elsewhere",
    errno.EDQUOT: "free space in your quota or write elsewhere",
    errno.EACCES: "choose a folder you can write to, or fix its permissions",
    errno.EPERM: "choose a folder you can write to, or fix its permissions",
    errno.EROFS: "choose a folder on a writable disk",
    errno.ENOTDIR: "a part of that path is a file, not a folder; choose another path",
    errno.EEXIST: "a part of that path is a file, not a folder; choose another path",
}


def os_error_line(error):
    """One line naming the file and the fix for an OSError the user can fix; None for other errors."""
    fix = _OS_FIXES.get(getattr(error, "errno", None))
    if fix is None:
        return None
    return f"{error.filename or 'a file'}: {error.strerror}; {fix}."
