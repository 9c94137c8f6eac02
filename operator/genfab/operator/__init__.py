"""The control plane: a kopf operator that reconciles SceneJob, DatasetJob and TuningRun into
Indexed Jobs, one per stage, and their observed state back into status.

Decisions are pure functions (`builders`, `observe`, `decide`); `controller` does the I/O and
`handlers` only wires kopf events to it. Never imports torch (checked by import-linter).
"""
