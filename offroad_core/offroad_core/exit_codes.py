"""Exit codes shared by every command of the project (``offroad ...``, node executables).

0 done; 2 bad input or configuration (one clear line on stderr, nothing half-written);
3 the command ran and its report flags a problem (e.g. ``quantize-report``); 1 only for a bug
(an unexpected exception, with its traceback); 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_FLAGGED = 3
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """Bad input or configuration of a command: printed as one line, exit status 2."""
