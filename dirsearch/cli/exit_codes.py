"""The command line's exit codes, one meaning each across every verb."""

EXIT_OK = 0
EXIT_DIVERGED = 1
"""``train``: the loss diverged (the message says at which epoch and batch)."""
EXIT_USAGE = 2
"""Bad input a user can fix: every problem printed one line each, nothing started."""
EXIT_INTERRUPTED = 130
"""What shells report for a process stopped by Ctrl-C (128 + SIGINT); the message says how to
continue."""
