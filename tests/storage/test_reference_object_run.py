"""reference-object end to end with `genfab run` on file:// and S3 (moto; the reruns on S3 alone): the Qwen
Image Edit steps are a stand-in custom stage (tests/fixtures/stand_in_edit_stage.py: not Qwen), the prompts come from
a real `transformers serve` with a tiny random chat model, annotation runs over the stand-ins of
segment-anything and sam2 (tests/fakes/packages), and CV augmentation is the built-in stage. Checks
the seed's layout, the fan-out counts, `pipeline_state.json`, `retryFailed` and `startFromStep`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from genfab.storage import Storage
from tests.helpers import genfab_run
from tests.reference_object_job import FAKES, job


def ledger(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().split("\n") if path.exists() else []
    return [tuple(line.split()) for line in lines if line]  # type: ignore[misc]


def keys(out: Storage, folder: str, suffix: str) -> list[str]:
    return sorted(o.key for o in out.list(folder) if o.key.endswith(suffix) and "_genfab" not in o.key)


def test_reference_object_runs_end_to_end_and_retries_only_what_failed(
        tmp_path: Path, target: tuple[str, dict[str, str], Storage], chat_server: tuple[str, str]) -> None:
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
    from genfab.stages.reference_object.units import scene_seed

    failing = f"perspective_1_prompt_1_seed_{scene_seed(12345, 1, 1, 0)}"
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
    # the lab's schema, as its --retry_failed reads it: the failed image and what makes it again
    (entry,) = state["failed_images"]
    assert entry["filename"] == f"{failing}.png" and entry["iteration"] == 0 and entry["prompt"] in json.loads(
        out.read_bytes("mug/03_prompts/prompts.json"))["prompts"]
    assert state["object_name"] == "mug" and state["input_image"].endswith(".png")
    assert len(state["generated_images"]) == 3 and len(state["perspective_view_info"]) == 2
    paths = [entry["perspective_path"], state["white_bg_image"], *state["generated_images"],
             f"{state['yolo_dataset_path']}/dataset.yaml"]
    root = str(getattr(out, "root", ""))
    if root:  # a local output: the paths the lab's tools open (object storage: the objects' URIs)
        assert all(Path(p).is_file() for p in paths), paths
    else:
        assert all(p.startswith(uri.rstrip("/")) for p in paths), paths
    assert "report:  " in result.stdout and out.exists("mug/_genfab/report/index.html"), result.stdout
    page = out.read_bytes("mug/_genfab/report/index.html").decode()  # the run's report: what a person checks
    assert "Reference-object dataset" in page and "The reference and its perspectives" in page
    pictured = re.findall(r'data-sample="((?:train|val)/[^"]+)"', page)  # each image once, its polygons:
    assert len(set(pictured)) == 6 and len(pictured) == 6  # 6 images need no worst-first gallery per figure,
    assert "Figures of each sample: annotation" in page  # a table of their figures says it all
    assert out.exists("mug/_genfab/report/plots/class-counts.png") and "mug" in page
    if root:  # what follows reads and writes through the same storage calls on either backend: run once, on S3
        return

    # retryFailed: only the failed image of step 4 is made again; steps 5-7 add what follows from it
    # (the rest of their samples are reused), so the dataset matches 04_dataset.
    fail.unlink()
    book.unlink()
    retry = job(tmp_path, uri, endpoint, model, models, retry={"retryFailed": True})
    result = genfab_run(tmp_path, retry, env=env, extra_paths=(FAKES,), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ledger(book) == [("scenes", failing), ("qwen-augmentation", f"{failing}_aug_0")]
    assert len(keys(out, "mug/04_dataset/", ".png")) == 4
    assert dataset_sizes(out) == (4, 8, 16)

    # startFromStep 7 with more CV copies: only step 7 runs.
    book.unlink()
    later = job(tmp_path, uri, endpoint, model, models, startFromStep=7, cvAugmentation={"count": 2})
    result = genfab_run(tmp_path, later, env=env, extra_paths=(FAKES,), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ledger(book) == []  # no edit step ran
    cv_labels = [k for k in keys(out, "mug/07_cv_augmented_dataset/", ".txt") if "/labels/" in k]
    assert len(cv_labels) == 16 and any(k.endswith("_cv_1.txt") for k in cv_labels)

    # startFromStep 3 with one prompt instead of two: the scenes of prompt 2 and everything made from
    # them leave every numbered folder; what is left is what the new settings make.
    fewer = job(tmp_path, uri, endpoint, model, models, startFromStep=3, cvAugmentation={"count": 2},
                scenes={"numPrompts": 1, "numIterations": 1, "llmEndpoint": endpoint, "llmModel": model,
                        "llmTemperature": 1.0})
    result = genfab_run(tmp_path, fewer, env=env, extra_paths=(FAKES,), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(keys(out, "mug/04_dataset/", ".png")) == 2
    assert dataset_sizes(out) == (2, 4, 12)
    made = [o.key for o in out.list("mug/") if "_genfab" not in o.key and "/0" in o.key]
    assert not [k for k in made if "prompt_2" in k]
    state = json.loads(out.read_bytes("mug/pipeline_state.json"))
    assert len(state["generated_images"]) == 2 and state["completed_steps"] == [1, 2, 3, 4, 5, 6, 7]


def dataset_sizes(out: Storage) -> tuple[int, int, int]:
    """(Qwen-augmented images, YOLO labels, CV-combined labels) of the execution `mug`."""
    return (len(keys(out, "mug/05_qwen_augmented_images/", ".png")),
            len([k for k in keys(out, "mug/06_yolo_dataset/", ".txt") if "/labels/" in k]),
            len([k for k in keys(out, "mug/07_cv_combined_dataset/", ".txt") if "/labels/" in k]))


def test_execution_modes_with_genfab_run(tmp_path: Path, chat_server: tuple[str, str]) -> None:
    """`new` (the default) chooses a timestamped execution at the first run and the next runs continue
    it; `--new-execution` chooses again; `last` takes the newest execution; `last` with none is one line."""
    import re

    endpoint, model = chat_server
    out = tmp_path / "out"
    steps = {"qwenAugmentation": {"enabled": False}, "annotation": {"enabled": False},
             "cvAugmentation": {"enabled": False}}
    doc = job(tmp_path, f"file://{out}", endpoint, model, tmp_path / "models", execution_name=None, **steps)

    def executions() -> list[str]:
        return sorted(p.name for p in out.iterdir() if re.fullmatch(r"\d{8}_\d{6}(_\d+)?", p.name))

    first = genfab_run(tmp_path, doc, extra_paths=(FAKES,), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    (chosen,) = executions()
    assert f"execution {chosen}: chosen now (executionMode new)" in " ".join(first.stdout.split())
    assert (out / chosen / "04_dataset").is_dir() and (out / chosen / "pipeline_state.json").is_file()
    status = json.loads((out / chosen / "_genfab" / "status.json").read_text())["status"]
    assert status["execution"] == chosen

    again = genfab_run(tmp_path, doc, extra_paths=(FAKES,), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"execution {chosen}: kept from this resource's first run" in " ".join(again.stdout.split())
    assert executions() == [chosen]

    fresh = genfab_run(tmp_path, doc, "--new-execution", extra_paths=(FAKES,), timeout=300)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert len(executions()) == 2
    newest = next(e for e in executions() if e != chosen)

    other = job(tmp_path, f"file://{out}", endpoint, model, tmp_path / "models", execution_name=None,
                executionMode="last", **steps)
    other["metadata"]["name"] = "mug-again"
    last = genfab_run(tmp_path, other, extra_paths=(FAKES,), timeout=300)
    assert last.returncode == 0, last.stdout + last.stderr
    assert f"execution {newest}: chosen now (executionMode last)" in " ".join(last.stdout.split())
    # another resource's execution, continued because executionMode last says so: its record is kept
    assert "took over the output from DatasetJob/mug: its record is kept in _genfab/taken-over/" in last.stdout
    assert len(executions()) == 2

    other["spec"]["output"] = f"file://{tmp_path}/empty"
    none = genfab_run(tmp_path, other, extra_paths=(FAKES,), timeout=300)
    assert none.returncode == 2
    assert none.stderr.strip().splitlines() == [
        f"genfab run: referenceObject.executionMode last: no execution under file://{tmp_path}/empty to continue "
        "(set executionMode new, or executionName with byName)"]
