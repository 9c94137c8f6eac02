"""`python -m genfab.stages <stage>`: run one shard of a registered stage (the stage images' entry)."""

from __future__ import annotations

import sys

from genfab.planner.contract import EXIT_BAD_INPUT
from genfab.stages.runtime import BadInput, main
from genfab.stages.runtime.registry import load, registered


def entry(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        names = ", ".join(registered()) or "none yet"
        print(f"usage: python -m genfab.stages STAGE\nregistered stages: {names}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        stage = load(argv[0])
    except BadInput as exc:
        print(f"genfab.stages: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return main(stage)


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
