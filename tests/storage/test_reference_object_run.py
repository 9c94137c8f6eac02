"""reference-object end to end with `genfab run` on file:// and S3 (moto): the Qwen Image Edit steps
are a stand-in custom stage (tests/fixtures/stand_in_edit_stage.py: not Qwen), the prompts come from
a real `transformers serve` with a tiny random chat model, annotation runs over the stand-ins of
segment-anything and sam2 (tests/fakes/packages), and CV augmentation is the built-in stage. Checks
the seed's layout, the fan-out counts, `pipeline_state.json`, `retryFailed` and `startFromStep`."""

from __future__ import annotations

import json
from pathlib import Path

from genfab.storage import Storage
from tests.helpers import genfab_run
from tests.reference_object_job import FAKES, job
from tests.storage.test_local_runner import target  # noqa: F401  (fixture)
from tests.storage.test_reference_object_prompts import chat_server  # noqa: F401  (fixture)
from tests.storage.test_storage import s3_endpoint  # noqa: F401  (fixture)


def ledger(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().split("\n") if path.exists() else []
    return [tuple(line.split()) for line in lines if line]  # type: ignore[misc]


def keys(out: Storage, folder: str, suffix: str) -> list[str]:
    return sorted(o.key for o in out.list(folder) if o.key.endswith(suffix) and "_genfab" not in o.key)


def test_reference_object_runs_end_to_end_and_retries_only_what_failed(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage], chat_server: tuple[str, str]) -> None:  # noqa: F811
    import sys

    from scripts.tiny_models import save_reference_object_models

    sys.path.insert(0, str(FAKES))
    try:
        models = save_reference_object_models(tmp_path / "models", edit=False)
    finally:
        sys.path.remove(str(FAKES))
        for name in [m for m in sys.modules if m.split(".")[0] in ("segment_anything", "sam2")]:
            del sys.modules[name]
    uri, env, out = target
    endpoint, model = chat_server
    failing = "perspective_1_prompt_1_seed_12345"
    fail = tmp_path / "fail.txt"
    fail.write_text(failing + "\n")
    book = tmp_path / "ledger.txt"
    env = {**env, "GENFAB_TEST_FAIL_FILE": str(fail), "GENFAB_TEST_LEDGER": str(book)}

    result = genfab_run(tmp_path, job(tmp_path, uri, endpoint, model, models), env=env, extra_paths=(FAKES,),
                        timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.exists("mug/01_white_background.png")
    assert [k.rsplit("/", 1)[1] for k in keys(out, "mug/02_perspectives/", ".png")] == [
        "perspective_00_front__eye_level.png", "perspective_01_back__eye_level.png"]
    assert len(json.loads(out.read_bytes("mug/03_prompts/prompts.json"))["prompts"]) == 2
    scenes = keys(out, "mug/04_dataset/", ".png")
    assert len(scenes) == 3 and not any(failing in k for k in scenes)  # 2 views x 2 prompts, one failed
    assert len(keys(out, "mug/05_qwen_augmented_images/", ".png")) == 3
    assert len(keys(out, "mug/05_qwen_combined_images/", ".png")) == 6
    labels = keys(out, "mug/06_yolo_dataset/", ".txt")
    labels = [k for k in labels if "/labels/" in k]
    assert len(labels) == 6  # the combined folder: 3 scenes and 3 variants
    assert len([k for k in keys(out, "mug/07_cv_combined_dataset/", ".txt") if "/labels/" in k]) == 12
    state = json.loads(out.read_bytes("mug/pipeline_state.json"))
    assert {(f["step"], f.get("id")) for f in state["failed_operations"]} == {(4, failing)}
    assert state["completed_steps"] == [1, 2, 3, 4, 5, 6, 7]  # step 4 ran to its end; its failure is listed

    # retryFailed: only the failed image of step 4 is made again, nothing else runs.
    fail.unlink()
    book.unlink()
    retry = job(tmp_path, uri, endpoint, model, models, retry={"retryFailed": True})
    result = genfab_run(tmp_path, retry, env=env, extra_paths=(FAKES,), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ledger(book) == [("scenes", failing)]
    assert len(keys(out, "mug/04_dataset/", ".png")) == 4

    # startFromStep 7 with more CV copies: only step 7 runs.
    book.unlink()
    later = job(tmp_path, uri, endpoint, model, models, startFromStep=7, cvAugmentation={"count": 2})
    result = genfab_run(tmp_path, later, env=env, extra_paths=(FAKES,), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ledger(book) == []  # no edit step ran
    cv_labels = [k for k in keys(out, "mug/07_cv_augmented_dataset/", ".txt") if "/labels/" in k]
    assert len(cv_labels) == 12 and any(k.endswith("_cv_1.txt") for k in cv_labels)
