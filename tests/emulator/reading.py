"""What the emulator tier's tests read of a resource while the operator works on it: a stage's or a
condition's entry of its status, its Jobs, and waits for a phase or any state of the status (the last
status seen is said when a wait times out)."""

from __future__ import annotations

from typing import Any

from tests.emulator.harness import Emulator


def stage(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in status.get("stages", []) if s["name"] == name), {})


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def jobs(emu: Emulator, doc: dict[str, Any]) -> list[dict[str, Any]]:
    return emu.objects("jobs", doc["metadata"]["namespace"], f"genfab.dev/resource={doc['metadata']['name']}")


def wait_phase(emu: Emulator, doc: dict[str, Any], *phases: str, timeout: float = 30) -> dict[str, Any]:
    kind, name, ns = doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]
    return emu.wait(f"{name} phase in {phases}", lambda: (st := emu.status(kind, name, ns)).get("phase") in phases
                    and st, timeout)


def wait_status(emu: Emulator, doc: dict[str, Any], what: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    kind, name, ns = doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]

    last: list[dict[str, Any]] = [{}]

    def probe() -> Any:
        last[0] = st = emu.status(kind, name, ns)
        return st if st and check(st) else None
    try:
        return emu.wait(what, probe, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {last[0]}") from None


def counts(st: dict[str, Any], name: str) -> tuple[str, int, int, int, int, int]:
    s = stage(st, name)
    return (s.get("phase", ""), s["samples"]["total"], s["samples"]["succeeded"], s["samples"]["failed"],
            s["shards"]["succeeded"], s["shards"]["active"])
