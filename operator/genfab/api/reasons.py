"""Every reason a user can read on a genfab resource (its conditions, its stages' `reason`), what it
means and what to do: the troubleshooting page (docs/operate/troubleshooting.md) is generated from
this table by `genfab docs`, and a test holds it to the reasons the operator's code can set, so a new
reason without an entry fails CI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str
    where: str
    """Where it shows: a condition's reason, a stage's `reason` in `status.stages`, or both."""
    means: str
    fix: str


ON_STAGE, ON_BOTH = "stage", "condition Stalled and the stage"

REASONS: tuple[Reason, ...] = (
    Reason("InvalidSpec", "condition InvalidSpec (Accepted false)",
           "The spec breaks a rule of its kind or a policy of this cluster (an image, a storage prefix, a "
           "resource limit the admins do not allow). The message names each field and what is allowed. No Job "
           "was created.",
           "Correct the fields named; `genfab validate FILE` runs the same checks before you apply."),
    Reason("NamespaceNotReady", "condition Stalled",
           "The namespace lacks what stage Pods need (their ServiceAccount, the network policy); the message "
           "lists each missing object. No Job was created.",
           "An admin creates them, or lists the namespace in the chart value `stages.tenantNamespaces` "
           "(cluster-wide mode) or `operator.watchNamespaces`; the operator looks again every progress "
           "period."),
    Reason("ModelMissing", "condition Stalled",
           "A stage the resource runs needs a model (its settings name it, and genfab's own stage has no "
           "fallback for it) that is not in the model location the operator read (`spec.models.uri`); the "
           "message names each model and stage. No Job was created: every stage Pod would fail loading it. "
           "(Without any `spec.models` the resource is refused as InvalidSpec, as `genfab run` refuses it "
           "with exit 2.)",
           "Upload each model to a folder named by its id under the location (or point `spec.models` at one "
           "that has them); the operator looks again every progress period and starts when they are there."),
    Reason("ClusterUnsupported", "condition Stalled",
           "The cluster's API server does not keep fields genfab's Jobs are built with (Indexed Jobs, per-index "
           "backoff limits, Pod failure and replacement policies, suspend, a TTL): an older Kubernetes, a "
           "feature gate switched off, or an admission webhook that removes them. Such a Job would run every "
           "Pod as the same shard. The message names each field and the release that has it. No Job was "
           "created (one whose fields were dropped at creation is deleted before its Pods run).",
           "Run genfab on Kubernetes 1.29 or newer with these features on, and exempt genfab's Jobs from the "
           "webhook; the operator asks the server again when it restarts."),
    Reason("RefusedByServer", "condition Stalled",
           "The Kubernetes API server refused a request the operator made for the resource (a child's create, "
           "a Job's patch): 403 from RBAC, a ResourceQuota, an admission plugin or webhook, or 422. The message "
           "is the server's. The operator sends it again after a minute, or at once when the spec changes; "
           "nothing is sent on every event meanwhile.",
           "Read the server's message: an admin grants the right (the chart's RBAC is what the operator "
           "needs), raises the quota or exempts genfab's objects from the webhook; or change the spec."),
    Reason("PodsRefused", ON_BOTH,
           "The API server refuses to create the stage Job's Pods (or the Pod of the inventory Job that lists a "
           "stage's samples first): a ResourceQuota, a LimitRange, Pod Security "
           "admission, a webhook or a missing ServiceAccount. The Job controller says so only in an Event on the "
           "Job (FailedCreate); the message is its words. The Job keeps trying; `startDeadlineSeconds` counts from "
           "the stage Job's creation (or resumption) while no Pod exists.",
           "Read the message: an admin raises the quota or changes the policy, or change the stage's "
           "resources in the spec."),
    Reason("IndexesUnknown", ON_STAGE,
           "The stage's Job completed without naming each of its indexes done (`status.completedIndexes`): "
           "the cluster ran it as a plain Job, so no shard is known to have made its samples. The stage "
           "failed.",
           "See ClusterUnsupported: the same cause, met by a Job created before the operator could tell."),
    Reason("StorageUnavailable", "condition Stalled",
           "The operator could not read or list the resource's storage (output or inputs): endpoint, "
           "credentials, bucket or network. It retries with backoff.",
           "Check `spec.storage` (endpoint, region, addressing style) and the Secret named by "
           "`secretRef`; the message carries the storage's own error."),
    Reason("StorageLimit", "condition Stalled",
           "Reading the resource's storage would pass one of the operator's bounds per reconcile (time, "
           "requests, objects listed, bytes read; chart value operator.readBounds): a folder of very many "
           "objects, a very large file, or a store that answers slowly. The operator spent no more than the "
           "bound and tries again with backoff; other resources are not held up. (A big stage's shard "
           "reports are not this: they are read over several reconciles, each going on from the last.)",
           "Read the message (it names the object and the bound): point the field at a smaller folder or "
           "file, or, if the data is right, ask the admins to raise operator.readBounds."),
    Reason("NameTaken", ON_STAGE,
           "An object of the name the stage's Job, ConfigMap, Service or NetworkPolicy would have exists in "
           "the namespace, and genfab did not create it (its UID is not in the resource's status and it is "
           "not what genfab makes). genfab neither uses nor deletes it.",
           "Delete or rename that object (the message names it), or rename the resource, then apply again "
           "(or change `spec.rerun.token`)."),
    Reason("WaitingForReference", ON_STAGE,
           "The stage reads the output of another resource (a `tuningRunRef`, a `datasetJobRef`) that has "
           "not succeeded yet.",
           "Nothing: it starts when that resource succeeds. If it never will, fix or re-run that resource."),
    Reason("ReferenceFailed", ON_STAGE,
           "The resource whose output this stage reads failed, so the stage cannot run.",
           "Fix and re-run the referenced resource; this one continues when it succeeds."),
    Reason("BadInput", ON_STAGE,
           "The stage's samples could not be listed (a missing input folder, an unreadable manifest, a "
           "bad sample reference): retrying cannot help.",
           "Read the message (it names the file or sample), correct the input or the spec, and apply again "
           "(or change `spec.rerun.token`)."),
    Reason("CorruptReport", ON_STAGE,
           "A shard's progress report in storage could not be read, so its samples do not count as done.",
           "Re-run the stage (`spec.rerun`); if it repeats, check the storage for partial writes."),
    Reason("DeadlineExceeded", ON_BOTH,
           "A stage's Job ran past its deadline, or none of its Pods started within the operator's start "
           "deadline after the Job was last unsuspended.",
           "Raise `spec.stages.<name>.activeDeadlineSeconds` for a long stage, or `spec.startDeadlineSeconds`; "
           "when Pods did not start, the message carries the last stall (Unschedulable, ImagePullBackOff)."),
    Reason("NoProgress", ON_BOTH,
           "A running Pod committed no sample within the stage's progress deadline; the operator stopped "
           "it (its index retries). As a stage's final reason: the retries ran out that way.",
           "Look at the Pod's logs for a hang (a model download the cluster's network blocks, a "
           "deadlock); raise `spec.progressDeadlineSeconds` for slow samples."),
    Reason("ImagePullBackOff", ON_BOTH,
           "A stage container cannot get its image (also ErrImagePull, InvalidImageName, "
           "ErrImageNeverPull).",
           "Check the image name in `spec.images` / `spec.stages.<name>.image`, the registry's "
           "credentials (an imagePullSecret on the stage ServiceAccount) and the node's network."),
    Reason("Unschedulable", ON_BOTH,
           "A stage Pod fits no node (typically no free GPU of the kind asked for); the message is the "
           "scheduler's.",
           "Wait for capacity, lower `resources.gpus`/`memory`, or queue with Kueue (`spec.queueName`)."),
    Reason("PartiallyScheduled", ON_BOTH,
           "Some Pods of a gang stage (one process group, e.g. multi-node training) are placed and others "
           "are unschedulable: the placed ones hold GPUs without training.",
           "Use Kueue for all-or-nothing admission, or ask for fewer nodes."),
    Reason("NodeLost", ON_BOTH,
           "A stage Pod's node was lost (phase Unknown, or the taint manager or Pod garbage collector "
           "removed it). Disruptions do not count against `retries`.",
           "Nothing: the index gets a new Pod. If it repeats, look at the node."),
    Reason("PodDeleted", ON_BOTH,
           "A stage Pod was deleted before it finished (not by suspend, not a disruption) and its index has "
           "no running replacement yet (a warm worker only if it held a shard: one released while it waited "
           "for input lost nothing).",
           "Nothing, unless someone or something keeps deleting Pods in the namespace."),
    Reason("Queued", ON_STAGE,
           "The stage's Job waits for admission by Kueue in `spec.queueName`.",
           "Nothing: Kueue admits it when the queue has quota; `kubectl get workloads` shows the queue."),
    Reason("FailedIndexes", ON_STAGE,
           "Kubernetes' reason for a Job whose shards ran out of retries (`spec.retries` per shard); genfab "
           "says the same of a warm worker Job that completed with shards its workers gave up (bad input, or "
           "every try ended the worker's process).",
           "Read the stage's message (the first shard error) and the failed Pods' logs; fix the cause and "
           "re-run the stage."),
    Reason("BackoffLimitExceeded", ON_STAGE,
           "Kubernetes' reason for a gang stage's Job whose Pods failed more often than its backoff limit.",
           "As for FailedIndexes: the message and the Pods' logs say why."),
    Reason("PodFailurePolicy", ON_STAGE,
           "Kubernetes' reason for a gang stage's Job stopped by its Pod failure policy: a Pod exited with "
           "the contract's bad-input code, which no retry can fix.",
           "Correct the input the Pod's message names."),
    Reason("Interrupted", "condition Failed and the stage (genfab run)",
           "`genfab run` was stopped before its end: Ctrl-C (SIGINT), SIGTERM (`timeout`, systemd, a container "
           "runtime), SIGHUP (its terminal closed) or its stdout closed (`genfab run … | head`). Every shard "
           "process was stopped, the samples committed so far are kept and the output's lease released; the "
           "stages that were running say so.",
           "Run the same command again: it continues where it stopped (committed samples are reused)."),
    Reason("StageFailed", "condition Failed",
           "The resource failed because a stage failed; the condition's message names the stage and why.",
           "Fix what the stage's reason says, then re-run (`spec.rerun` or a changed spec)."),
)
"""Ordered as a user meets them: before any Pod, while Pods run, when stages end."""

GATE = "condition AwaitingSelection (its reason is Waiting, then Chosen)"
GATE_REASONS: tuple[Reason, ...] = (
    Reason("AwaitingSelection", GATE,
           "worldexplorer with `scaffold.selection: manual`: the scaffold made candidates for some views and a "
           "person chooses one per view before the expansion starts. The condition is True (reason `Waiting`) "
           "and its message names the samples and views still to choose; the stages after it wait (no "
           "failure). `genfab run` stops with exit 3 and prints how to choose.",
           "Look at the candidates (`{variant}/index_XXXX/scaffold/candidates/`) and choose with one `genfab "
           "select OUTPUT --choose SAMPLE:VIEW=K ...` (or `--choices FILE` for many), or copy a candidate to "
           "`final/VIEW.png` by hand; the condition turns False (reason `Chosen`) and the run goes on (run "
           "the same command again locally; the operator goes on by itself)."),
)

QUALITY_OUT_OF_RANGE = "QualityOutOfRange"
"""The reason of every drop for a quality bound (`genfab.api.quality.QualityGate`), whichever stage checks it."""
DROPPED = "a dropped sample (`_genfab/dropped_samples.csv`, the stage's message, its shard report)"
FILTERED = frozenset({QUALITY_OUT_OF_RANGE})
"""Drop reasons that are the spec's own filter at work, not errors: such drops leave the stage
PartiallySucceeded without `continueOnError`, and its downstream stages run (`status.stage_phase`)."""
SAMPLE_REASONS: tuple[Reason, ...] = (
    Reason("Unreadable", DROPPED,
           "An input or upstream image cannot be decoded: not a format Pillow/OpenCV reads, truncated, or an "
           "upstream output overwritten. The message says which file.",
           "Replace or remove the file (convert it to PNG or JPEG); for an upstream output, run that stage "
           "again (`--rerun STAGE`)."),
    Reason("TooLarge", DROPPED,
           "An image above the pixel bound (100 megapixels unless `GENFAB_MAX_IMAGE_PIXELS` sets another; "
           "relighting's `input.maxSide` downscales below it, never above): dropped by its header, unread, so "
           "one huge file cannot exhaust a shard's memory.",
           "Downscale the file before the run (or raise `GENFAB_MAX_IMAGE_PIXELS` where memory allows)."),
    Reason("InvalidReason", DROPPED,
           "A custom stage dropped a sample with a reason that is not a name (letters, digits, `_.-`, at most 64): "
           "genfab keeps it, escaped, at the front of the message, so no text a stage writes can drive a terminal.",
           "Give `SampleError` a reason like `BlurryImage` in the stage's code."),
    Reason("Empty", DROPPED,
           "An image file of 0 bytes (or a header that says 0 pixels): an interrupted copy or upload.",
           "Copy the file again, or leave it out."),
    Reason("TooSmall", DROPPED,
           "relighting: an input with a side under the smallest size the stages work at.",
           "Use a larger image (or leave it out of the input folder)."),
    Reason("Grayscale", DROPPED,
           "relighting: a one-channel image, or grey stored as RGB (all channels equal): relighting pairs need "
           "colour.",
           "Use the colour original, or leave it out."),
    Reason("EmptyMask", DROPPED,
           "relighting: segmentation found nobody (the `selfie` model's person probability covers under 0.5 % "
           "of the picture; no face or upper body for the classical path; SAM found no `textPrompt`), so "
           "nothing can be relit; later stages say the same of a foreground without person "
           "pixels.",
           "Check the image shows a person; with model backends listed, `segmentation.fallbackOnEmpty: true` "
           "hands such an image to the next backend."),
    Reason(QUALITY_OUT_OF_RANGE, DROPPED,
           "relighting, difix: a sample's quality figure is outside a bound of the spec's `quality` block (or a "
           "bound the spec names was not measured); the message names the figure, its value and the bound. "
           "Checked by the last stage (relighting's `organize`, difix's `adapter`): the sample is not in the "
           "dataset, and every earlier stage's output stays.",
           "Look at the sample (the report's worst-first gallery); if it is fine, widen the bound: only the "
           "last stage runs again, nothing is generated again. A filter at work, not an error: the stage "
           "ends PartiallySucceeded even without `continueOnError`."),
    Reason("ShapeMismatch", DROPPED,
           "relighting's recombine: the degraded person, the background and the mask of a sample differ in "
           "size (outputs of different runs mixed in one folder).",
           "Run the pipeline again into a clean output (`--rerun all`)."),
    Reason("UnreadableImage", DROPPED, "The 3DGS stage: an image of the scene cannot be decoded.",
           "Replace the file in the scene folder (the message names it)."),
    Reason("ImageSizeMismatch", DROPPED,
           "The 3DGS stage: an image's size differs from its camera's in transforms.json or the COLMAP model.",
           "Export the images at the cameras' size (or fix the intrinsics)."),
    Reason("NoScene", DROPPED,
           "The 3DGS stage: the sample's folder has no transforms.json and no COLMAP model "
           "(`sparse/0/cameras.bin|txt`).",
           "Point the input at scene folders with one of them."),
    Reason("BadScene", DROPPED,
           "A scene that cannot be used as written: cameras or frames that do not parse (3DGS), or a difix "
           "scene whose camera layout or `referenceView.referenceCamId` does not fit it.",
           "Fix the scene (the message names the file and field), or the setting it names."),
    Reason("NoGaussians", DROPPED,
           "vistadream's gaussians stage: no pixel of the input and outpainting views has a confident depth "
           "off its edges, so the scene would start with no Gaussians (a depth model that trusts no pixel).",
           "Check the depth stage's `depth/depth.png` for the sample; try another `vistadream.depthBackend`."),
    Reason("BadUpstream", DROPPED,
           "An earlier stage's output for this sample is missing or malformed (frames, canvas.json).",
           "Run that stage again (`--rerun STAGE`); if it recurs, read that stage's shard log."),
    Reason("BadInput", DROPPED,
           "worldexplorer's expansion: the sample's own fields in `metadata.json` break a rule (the message "
           "names them).",
           "Correct the sample's entry in the manifest."),
    Reason("NoPrompt", DROPPED,
           "worldexplorer's scaffold: the sample has no prompt (no theme in the manifest, no prompts for it).",
           "Give the sample a theme or prompts in the manifest."),
    Reason("NoKeyFrame", DROPPED,
           "worldexplorer's scaffold (`single_image`): no key frame can be taken from the generated sweep.",
           "Raise `seva.sweepFrames`, or use `scaffold_gen`."),
    Reason("ScaffoldIncomplete", DROPPED,
           "worldexplorer's expansion: the scaffold's `final/000-007.png` (or its poses) are not all there: with "
           "`selection: manual`, not every view was chosen.",
           "Choose the remaining views (`genfab select`), then run again."),
    Reason("SevaOutput", DROPPED, "SEVA's research code wrote another number of frames than asked.",
           "Read the shard log (SEVA's own output); check `seva.image` is the pinned image."),
    Reason("WrongModel", DROPPED,
           "reference-object: the edit model folder holds another pipeline than Qwen Image Edit.",
           "Point `scenes.modelPath` at a Qwen Image Edit (2509 for the multi-camera LoRA) folder."),
    Reason("EditFailed", DROPPED,
           "reference-object: the image edit failed on every retry (the message lists each attempt's error).",
           "Read the errors; raise `retries`, or check the model and its memory."),
    Reason("MissingInput", DROPPED,
           "reference-object's scenes: a unit's prompt or perspective is not there (an earlier step changed).",
           "Run the earlier steps again (`startFromStep`, `--rerun`)."),
    Reason("UnknownView", DROPPED, "reference-object's perspectives: a unit that is not one of the config's views.",
           "Run the stage again (the committed outputs are from another config)."),
    Reason("UnknownUnit", DROPPED, "reference-object's augmentation: a unit name not of the form `<scene>_aug_<k>`.",
           "Run the stage again."),
    Reason("MissingImage", DROPPED,
           "reference-object's annotation: an augmented image is listed but step 5 did not run.",
           "Enable `qwenAugmentation` or run from step 5."),
    Reason("NoMask", DROPPED,
           "reference-object's annotation: PerSAM/SAM 2 found no mask of `objectName` (or none with an outline).",
           "Check the reference mask (`inputMask`) shows the object; the image may not contain it."),
    Reason("MissingAnnotation", DROPPED, "reference-object's CV augmentation: the image's YOLO label is missing.",
           "Run the annotation step again."),
    Reason("EncodeFailed", DROPPED, "reference-object's CV augmentation: OpenCV could not encode an augmented image.",
           "Read the shard log; keep the image format PNG or JPEG."),
    Reason("MissingExport", DROPPED, "difix's split: the export's scene index or a scene is missing.",
           "Run the export again (`--rerun export`)."),
    Reason("NoSamples", DROPPED, "difix's split: the export kept no sample (the message counts the drops).",
           "Fix what dropped them (their reasons are in the export's rows of dropped_samples.csv)."),
    Reason("MissingSplit", DROPPED, "difix's adapter: the split manifests cannot be read.",
           "Run the split again (`--rerun split`)."),
    Reason("(an exception's name)", DROPPED,
           "Anything else a stage's code raised for one sample (`ValueError`, `OSError`, ...): a bug or an "
           "input nothing above describes. The message is the error's own.",
           "Read the shard log (`genfab logs OUTPUT STAGE`); report it with the sample if it is genfab's."),
)
"""Why a single sample was dropped: the rest of its stage goes on (`continueOnError` decides whether the
stage then counts as PartiallySucceeded or Failed)."""

BY_NAME = {r.name: r for r in REASONS}
SAMPLE_BY_NAME = {r.name: r for r in SAMPLE_REASONS}


@dataclass(frozen=True)
class LocalMessage:
    """A line `genfab run` (or another command on a laptop) prints instead of running: how it begins,
    what it means and what to do. tests/unit/test_troubleshooting_local.py makes each message with the
    code that prints it and checks it begins this way."""

    begins: str
    means: str
    fix: str


LOCAL_MESSAGES: tuple[LocalMessage, ...] = (
    LocalMessage("output … is in use by",
                 "Another `genfab run` holds the output's lease (`_genfab/lease.json`): two runs never write one "
                 "output at once. The line names the resource, user, host and pid, and when the lease expires.",
                 "Wait for that run to end. A run that was killed on this machine frees the output at once; one "
                 "on another machine, once its lease expires (60 s without renewal)."),
    LocalMessage("… holds the record of …",
                 "The output's `_genfab/status.json` belongs to another resource (another kind or name): a run "
                 "here would replace that resource's status, summary and report.",
                 "Give this run its own output (`--out`, or `spec.output`); or take that output over with "
                 "`--force`, which keeps the old record in `_genfab/taken-over/`."),
    LocalMessage("input of stage …: … no such folder",
                 "The input folder does not exist (also: `the folder is empty`, `no file directly in the folder`, "
                 "`none of its N file(s) has a suffix that is read`). `validate`, `plan` and `run` list the "
                 "input first, so nothing has been written (exit 1).",
                 "Point the input at the folder of images (the files directly in it, with a suffix the line "
                 "names)."),
    LocalMessage("input s3://… not listed: it is in S3 and this environment has no S3 credentials",
                 "The input is in S3 and this machine has no credentials for it: a cluster's resource run on a "
                 "laptop (exit 2, before anything is written).",
                 "Set `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (or `AWS_PROFILE`), or put the spec's "
                 "`storage.secretRef` secret in the local secrets folder (`--secrets`), or copy the input and "
                 "point the spec at a `file://` folder."),
    LocalMessage("stage … of pipeline … needs a CUDA GPU (gsplat) and this machine has none",
                 "A selected stage needs a CUDA GPU (3DGS, the expansion) and this machine has none: refused "
                 "before anything starts (exit 2).",
                 "Run it on a GPU machine, or run only the other stages (`--only`, `onlyStages`) as the line "
                 "says."),
    LocalMessage("model… not in the model location",
                 "A model-backed stage's weights are not in `spec.models` (exit 2, before anything starts).",
                 "Put each model in a folder named by its id there (`hf download ID --local-dir DIR`), or, to "
                 "try a pipeline, write tiny random stand-ins with `python scripts/tiny_models.py`."),
    LocalMessage("Stopped: the run of … is gone",
                 "`genfab status` on an output whose run was killed (`kill -9`, a closed laptop) before it wrote "
                 "its end: the status still said Running.",
                 "Run the same `genfab run` again: committed samples are reused, the rest is made."),
)


def troubleshooting_page() -> str:
    """The troubleshooting page: one section per reason, in the order a user meets them."""
    lines = ["<!-- Generated by `genfab docs` from genfab.api.reasons. Do not edit. -->\n", "# Troubleshooting", "",
             "What a reason on a genfab resource means and what to do about it. Reasons appear on the resource's "
             "conditions (`kubectl get scenejob NAME -o yaml`, `status.conditions`) and on each stage "
             "(`status.stages[].reason` and `message`); `kubectl describe` shows both.", ""]
    for r in (*REASONS, *GATE_REASONS):
        lines += [f"## {r.name}", "", f"*Shown on*: {r.where}.", "", f"**What it means.** {r.means}", "",
                  f"**What to do.** {r.fix}", ""]
    lines += ["## Dropped samples", "",
              "A sample a stage cannot make is dropped, the others go on: `genfab run` lists the drops by reason "
              "at the end, `genfab status OUTPUT` shows them, and `{output}/_genfab/dropped_samples.csv` "
              "(`stage,sample_id,reason,message`) has every one (the operator writes it when the resource ends). "
              "With `continueOnError: true` the stage is then PartiallySucceeded and what consumes it runs on "
              "the rest; without it, it is Failed.", "",
              "| reason | what it means | what to do |", "| --- | --- | --- |"]
    lines += [f"| `{r.name}` | {r.means} | {r.fix} |" for r in SAMPLE_REASONS]
    lines += ["", "## Local runs (`genfab run`)", "",
              "What a command on your machine prints instead of running, and what to do. Each is one line on "
              "stderr; nothing the run made before is lost.", "",
              "| the line begins | what it means | what to do |", "| --- | --- | --- |"]
    lines += [f"| `{m.begins}` | {m.means} | {m.fix} |" for m in LOCAL_MESSAGES]
    return "\n".join(lines).rstrip() + "\n"
