"""A cluster's shared worker Pod as the operator makes it, run as a real process: `python -m genfab.stages digest`
with the Job's contract (its mounted config, `GENFAB_WORKERS`, `GENFAB_HOSTED`) and the hosted stage's config
where the operator writes it (`hosted.json`). The one process sets up both stages once, takes each stage's
shards from its own cursor, and leaves each stage's outputs and reports as Jobs of their own would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emulator.harness import free_port
from tests.toy_pipeline.jobs import ENV, files, toy_job

pytestmark = pytest.mark.storage

MAKE = """
import json, sys, yaml
from genfab.api import parse_resource
from genfab.contract.hosted import HostedMember, HostedStage, members_json
from genfab.contract.names import hosted_key
from genfab.planner import plan, stage_config
from genfab.storage import open_storage
doc = yaml.safe_load(open(sys.argv[1]))
p = plan(parse_resource(doc))
digest, upper = p.stage("digest"), p.stage("upper")
open(sys.argv[2], "w").write(stage_config(p, digest).to_json())
hosted = HostedStage(config=stage_config(p, upper, 3), shards=3)
open_storage(p.output_uri).write_bytes(hosted_key("upper", upper.config_hash), hosted.model_dump_json().encode())
print(json.dumps({"hosted": members_json([HostedMember(stage="upper", config_hash=upper.config_hash)]),
                  "hashes": [digest.config_hash, upper.config_hash]}))
"""


def test_a_shared_worker_pod_runs_its_own_and_its_hosted_stages_shards_in_one_process(tmp_path: Path) -> None:
    job = toy_job(tmp_path, "checksum-shared", files([b"%d\n" % i for i in range(6)]))
    config = tmp_path / "digest.json"
    made = subprocess.run([sys.executable, "-c", MAKE, str(job), str(config)], env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    contract = json.loads(made.stdout)
    setups = tmp_path / "setups.txt"
    pod_env = {**ENV, "GENFAB_STAGE_CONFIG": str(config), "JOB_COMPLETION_INDEX": "0", "GENFAB_SHARD_COUNT": "3",
               "GENFAB_WORKERS": "1", "GENFAB_SHARD_RETRIES": "0", "GENFAB_HOSTED": contract["hosted"],
               "GENFAB_WAITING_FILE": str(tmp_path / "waiting"), "GENFAB_TEST_SETUPS": str(setups),
               "GENFAB_METRICS_PORT": str(free_port())}  # both stages' metrics served on the Pod's one port
    done = subprocess.run([sys.executable, "-m", "genfab.stages", "digest"], env=pod_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    loads = [line for line in setups.read_text().splitlines() if line]
    assert len(loads) == 2 and len({line.split()[-1] for line in loads}) == 1  # each stage set up once, one process
    out = tmp_path / "out"
    for i in range(6):
        digest = (out / "digests" / f"f{i:03d}.txt").read_text()
        assert (out / "uppers" / f"f{i:03d}.txt").read_text() == digest.upper()
    for stage, config_hash in zip(("digest", "upper"), contract["hashes"], strict=True):
        for index in range(3):
            report = json.loads((out / "_genfab" / "progress" / stage / config_hash[:10] /
                                 f"shard-{index:05d}.json").read_text())
            assert report["state"] == "succeeded" and len(report["succeeded"]) == 2
    assert not (tmp_path / "waiting").exists()  # it waited for digest's shards, and said it no more once done
