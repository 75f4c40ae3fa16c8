"""Entry point of `pulumi up` / `pulumi preview` (Pulumi.yaml: `main: stacks/`)."""

import sys
from pathlib import Path

# Pulumi runs this file with `stacks/` first on sys.path; the program's packages (stacks,
# components) live one level up.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from stacks.program import main  # noqa: E402

main()
