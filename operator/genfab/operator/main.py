"""`python -m genfab.operator` / `genfab operator`: run the kopf operator."""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import replace
from typing import NoReturn

import click
from prometheus_client import REGISTRY, start_http_server

from genfab.operator.metrics import OperatorMetrics
from genfab.operator.settings import OperatorSettings
from genfab.operator.sharding import Shard

EXIT_CANNOT_START = 2


def cannot_start(message: str) -> NoReturn:
    click.echo(f"genfab operator: {message}", err=True)
    sys.exit(EXIT_CANNOT_START)


@click.command("operator", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Watch only this namespace (repeatable). Default: cluster-wide.")
@click.option("--metrics-port", type=int, default=None, help="Prometheus metrics port (0 = off; default 8080).")
@click.option("--liveness", default=None, help="Liveness endpoint URL (default http://0.0.0.0:8081/healthz).")
@click.option("--leader-election", "lease", default=None, metavar="LEASE",
              help="Elect one active replica on this Lease in the operator's namespace (HA: run several).")
@click.option("--shard", default=None, metavar="I/N",
              help="Reconcile only shard I of N (resources split by UID; run N processes, I = 0..N-1).")
@click.option("--workers", type=int, default=None, help="Reconcile worker threads (default 8).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator(namespaces: tuple[str, ...], metrics_port: int | None, liveness: str | None, lease: str | None,
             shard: str | None, workers: int | None, verbose: bool) -> None:
    """Run the genfab operator: reconcile SceneJob, DatasetJob and TuningRun into stage Jobs.

    Kubernetes access comes from the in-cluster service account, else KUBECONFIG.
    """
    try:  # the `operator` extra: imported here, so that `--help` works without it
        from genfab.operator.connection import NoConnection, hide_client, load_connection

        hide_client()  # before kopf, which imports the kubernetes client whenever it can
        import kopf
    except ImportError as exc:
        cannot_start(f"needs the `operator` extra ({exc.name} is missing): pip install 'genfab[operator]'")
    try:
        settings = OperatorSettings()
    except ValueError as exc:  # a bad chart value in the environment: the variable and the field
        cannot_start(f"bad setting: {exc}")
    try:
        sharded = Shard.parse(shard) if shard is not None else settings.shard
    except ValueError as exc:
        cannot_start(f"--{exc}")
    if sharded is not None and (lease or settings.leader_election):
        cannot_start("--shard and --leader-election do not mix: every shard's process is the only one for its "
                     "resources (run one replica per shard)")
    try:  # kopf would retry a missing login every 60 s forever: say it once instead
        connection = load_connection()
    except (NoConnection, OSError, ValueError) as exc:  # ValueError: inline data that is not base64
        cannot_start(f"no Kubernetes access: not running in a cluster and no usable kubeconfig "
                     f"({' '.join(str(exc).split())}); set KUBECONFIG or create ~/.kube/config")
    settings = replace(settings, namespaces=namespaces or settings.namespaces,
                       metrics_port=settings.metrics_port if metrics_port is None else metrics_port,
                       liveness_endpoint=liveness or settings.liveness_endpoint,
                       leader_election=lease or settings.leader_election, workers=workers or settings.workers,
                       shard=sharded)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not verbose:  # kopf logs every handler call at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics = OperatorMetrics(REGISTRY)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    import genfab.operator.handlers  # noqa: F401  (registers the kopf handlers)

    settle_garbage_collector()
    kopf.run(
        clusterwide=not settings.namespaces, namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint or None,
        standalone=True,  # no kopf peering: it pauses every replica of equal priority (genfab.operator.leader)
        memo=kopf.Memo(settings=settings, metrics=metrics, connection=connection),
    )


GC_THRESHOLDS = (50_000, 20, 10)
"""Python's defaults are (700, 10, 10): a young-generation pass every 700 allocations. The operator
allocates a few hundred objects per watch event and per reconcile, so at 1,000 SceneJobs in a burst
those passes, and the older-generation passes they trigger over every cached object, were about a
quarter of its CPU (benchmarks/results/operator.md)."""


def settle_garbage_collector() -> None:
    """Everything loaded so far (modules, pydantic schemas, kopf's registry) lives as long as the
    process: freeze it out of every future collection, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main() -> None:
    operator(prog_name="python -m genfab.operator")
