"""The troubleshooting page's local messages are the lines the commands print: each is made here with
the code that prints it, and must begin as the page says."""

from __future__ import annotations

import re
from pathlib import Path

from genfab.api import parse_resource
from genfab.api.reasons import LOCAL_MESSAGES, troubleshooting_page
from genfab.inventory.model_identity import MISSING
from genfab.local.input_listing import list_input
from genfab.local.lease import LeaseDoc, gone_message, in_use_message
from genfab.local.ownership import Owner, refusal
from genfab.planner import plan
from genfab.sequencing import cuda_message
from genfab.sequencing.preflight import model_refusal
from genfab.storage import open_storage

LEASE = LeaseDoc(holder="ann@box", host="box", pid=7, run_id="r", resource="DatasetJob/a", acquired_at=1.0,
                 expires_at=61.0)


def _relighting(uri: str) -> dict[str, object]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "DatasetJob", "metadata": {"name": "r"},
            "spec": {"type": "relighting", "output": "file:///tmp/out", "relighting": {"input": {"uri": uri}}}}


def printed(tmp_path: Path) -> list[str]:
    """Every local message, made by its own code."""
    missing = list_input(plan(parse_resource(_relighting(f"file://{tmp_path}/none"))), open_storage, {}).problem
    no_credentials = list_input(plan(parse_resource(_relighting("s3://lab-in/portraits"))), open_storage,
                                {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}).note
    segment = {"segmentation": {"backends": ["sam3"]}, "degradation": {"softShading": {"normals": "classical"}}}
    doc = _relighting("file:///in")
    doc["spec"]["relighting"].update(segment)  # type: ignore[index]
    models = model_refusal(plan(parse_resource(doc), models={"facebook/sam3": MISSING}), "file://./genfab-models")
    assert models is not None
    return [in_use_message("file://./out", LEASE), refusal(Owner("DatasetJob", "b"), Owner("DatasetJob", "a"),
                                                           "file://./out") or "",
            missing, no_credentials, cuda_message("worldexplorer", ["gaussians"], []), models[1], gone_message(LEASE)]


def test_each_local_message_begins_as_the_page_says(tmp_path: Path) -> None:
    lines = printed(tmp_path)
    assert len(lines) == len(LOCAL_MESSAGES)
    for message, line in zip(LOCAL_MESSAGES, lines, strict=True):
        pattern = ".*".join(re.escape(part) for part in message.begins.split("…"))
        assert re.match(pattern, line), (message.begins, line)
        assert "\n" not in line


def test_the_page_has_them_under_their_heading() -> None:
    page = troubleshooting_page()
    section = page.split("## Local runs (`genfab run`)", 1)[1]
    assert all(f"`{m.begins}`" in section for m in LOCAL_MESSAGES)
