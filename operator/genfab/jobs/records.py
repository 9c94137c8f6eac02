"""A run's per-sample records, written once by a Pod when a run is too big for the operator to write them.

When a resource ends, the operator writes `_genfab/summary.json` from its stages' tallies (fixed size).
The per-sample records, `_genfab/dropped_samples.csv` and a SceneJob's `batch_summary.json`, need every
shard's report read again; the operator does that itself for runs of at most `RECORDS_INLINE_SHARDS`
shards and, above that, starts a one-Pod records Job of the data plane (cv image):

    python -m genfab.jobs.records        (the request as JSON in GENFAB_RECORDS)

It reads the stages' reports (one listing and one read each), writes the two records exactly as the
operator and `genfab run` write them, then sets the summary's `droppedSamplesCsv` and drops its
`perSampleRecords` note. Exit 0 with one line; 42 when the request is unusable; 1 on a storage error
(retried by the Job).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

from pydantic import ValidationError

from genfab.api.summary import RunSummary
from genfab.contract import DROPPED_KEY, EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRYABLE, SUMMARY_KEY
from genfab.contract.documents import DocumentError, parse_document
from genfab.contract.names import ENV_RECORDS
from genfab.inventory import read_reports
from genfab.sequencing.records import RecordsRequest
from genfab.sequencing.run_records import write_sample_records
from genfab.stages.runtime.inventory import end_with_line
from genfab.storage import Storage, StorageError, open_storage


def write_records(run: Storage, request: RecordsRequest) -> int:
    """Read every stage's reports, write `dropped_samples.csv` (and a SceneJob's `batch_summary.json`), then
    point the summary at them. Returns the dropped samples' count."""
    reports = {s.name: read_reports(run, s.name, s.config_hash) for s in request.stages if s.run}
    dropped = write_sample_records(run, request, reports, request.phase, request.finished_at)
    try:
        summary = RunSummary.model_validate(parse_document(run.read_at_most(SUMMARY_KEY, 16 << 20, SUMMARY_KEY),
                                                           SUMMARY_KEY))
    except (StorageError, DocumentError, ValidationError):
        summary = None  # none (yet) or not genfab's: the records stand on their own
    if summary is not None and summary.name == request.name:
        run.write_bytes(SUMMARY_KEY, summary.model_copy(update={
            "dropped_samples_csv": f"{request.output_uri}/{DROPPED_KEY}", "per_sample_records": None}).to_json())
    return dropped


def main(env: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    started = time.monotonic()
    try:
        request = RecordsRequest.model_validate_json(env.get(ENV_RECORDS) or "")
    except ValidationError as exc:
        return end_with_line(env, EXIT_BAD_INPUT, f"genfab records: bad request in {ENV_RECORDS}: "
                             f"{exc.errors()[0]['msg'] if exc.errors() else exc}")
    try:
        dropped = write_records(open_storage(request.output_uri), request)
    except StorageError as exc:
        return end_with_line(env, EXIT_RETRYABLE, f"genfab records: storage: {exc}")
    return end_with_line(env, EXIT_OK, f"genfab records: {request.kind}/{request.name}: {dropped} dropped sample(s) "
                                       f"recorded in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
