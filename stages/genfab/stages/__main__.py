"""`python -m genfab.stages <stage>`: run one shard of a built-in stage (the stage images' entry);
`python -m genfab.stages --shared-worker`: a shared worker of `genfab run` (genfab.stages.runtime.shared);
the first stage's Pod of a cluster's shared worker Job (`GENFAB_HOSTED` set) runs its hosted stages too
(genfab.stages.runtime.group).

The mounted stage config names the pipeline; the pipeline's declaration names the implementation
and the settings model the config is validated against."""

from __future__ import annotations

import os
import sys

from genfab.contract import EXIT_BAD_INPUT
from genfab.contract.names import ENV_HOSTED
from genfab.stages.runtime import BadInput, main
from genfab.stages.runtime.context import read_config
from genfab.stages.runtime.loop import missing_package
from genfab.stages.runtime.registry import implemented, load


def entry(argv: list[str]) -> int:
    if argv == ["--shared-worker"]:  # several stages' shards in one process (genfab.stages.runtime.shared)
        from genfab.stages.runtime.shared import host

        return host()
    if os.environ.get(ENV_HOSTED) and len(argv) == 1:  # a cluster's shared worker (genfab.stages.runtime.group)
        from genfab.stages.runtime.group import host_group

        return host_group()
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        names = ", ".join(f"{s} ({', '.join(p)})" for s, p in implemented().items()) or "none yet"
        print(f"usage: python -m genfab.stages STAGE\nimplemented stages (pipelines): {names}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        cfg = read_config(os.environ)
        if cfg.stage != argv[0]:
            raise BadInput(f"asked to run stage {argv[0]!r}, but the stage config is for {cfg.stage!r}")
        stage, decl = load(cfg.pipeline, cfg.stage)
    except BadInput as exc:
        print(f"genfab.stages: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as exc:  # the implementation imports what this environment lacks
        print(f"genfab.stages: {missing_package(exc, cfg.pipeline, cfg.stage, cfg.family)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return main(stage, settings=decl.settings)


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
