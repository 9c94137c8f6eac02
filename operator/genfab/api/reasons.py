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
    Reason("StorageUnavailable", "condition Stalled",
           "The operator could not read or list the resource's storage (output or inputs): endpoint, "
           "credentials, bucket or network. It retries with backoff.",
           "Check `spec.storage` (endpoint, region, addressing style) and the Secret named by "
           "`secretRef`; the message carries the storage's own error."),
    Reason("StorageLimit", "condition Stalled",
           "Reading the resource's storage would pass one of the operator's bounds per reconcile (time, "
           "requests, objects listed, bytes read; chart value operator.readBounds): a folder of very many "
           "objects, a very large file, or a store that answers slowly. The operator spent no more than the "
           "bound and tries again with backoff; other resources are not held up.",
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
           "no running replacement yet.",
           "Nothing, unless someone or something keeps deleting Pods in the namespace."),
    Reason("Queued", ON_STAGE,
           "The stage's Job waits for admission by Kueue in `spec.queueName`.",
           "Nothing: Kueue admits it when the queue has quota; `kubectl get workloads` shows the queue."),
    Reason("FailedIndexes", ON_STAGE,
           "Kubernetes' reason for a Job whose shards ran out of retries (`spec.retries` per shard).",
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

BY_NAME = {r.name: r for r in REASONS}


def troubleshooting_page() -> str:
    """The troubleshooting page: one section per reason, in the order a user meets them."""
    lines = ["<!-- Generated by `genfab docs` from genfab.api.reasons. Do not edit. -->\n", "# Troubleshooting", "",
             "What a reason on a genfab resource means and what to do about it. Reasons appear on the resource's "
             "conditions (`kubectl get scenejob NAME -o yaml`, `status.conditions`) and on each stage "
             "(`status.stages[].reason` and `message`); `kubectl describe` shows both.", ""]
    for r in REASONS:
        lines += [f"## {r.name}", "", f"*Shown on*: {r.where}.", "", f"**What it means.** {r.means}", "",
                  f"**What to do.** {r.fix}", ""]
    return "\n".join(lines).rstrip() + "\n"
