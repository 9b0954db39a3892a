"""`python -m patchq`: the CLI, with an interrupt during start-up reported like any other (exit 130)."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted: nothing was started\n")
    sys.exit(130)

main()
