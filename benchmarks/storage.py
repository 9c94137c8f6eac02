"""genfab.storage vs plain boto3 on the same S3-compatible server (moto, on localhost).

Both sides talk to the same moto server (its own process), one after the other, each variant in
its own bucket:
- 1 KB x N small objects: plain boto3 in a sequential put/get loop (what a naive stage does)
  vs genfab's `write_many`/`read_many` (concurrent) and genfab's sequential `write_bytes`/`read_bytes`
  (to show the per-call overhead of the interface itself);
- one large object: boto3's `upload_file`/`download_file` with its default TransferConfig vs
  genfab's `upload_file`/`download_file` (adaptive retries, 64 MiB threshold, 16 MiB parts).

    python benchmarks/storage.py                       # 10,000 x 1 KB and 1 GiB, prints the table
    python benchmarks/storage.py --write               # also writes benchmarks/results/storage.md
    python benchmarks/storage.py --small 1000 --large-mib 128   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import boto3

from genfab.storage import S3Settings, open_storage

BUCKET = "genfab-bench"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"moto server did not start on port {port}")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000, help="number of 1 KB objects (0 skips them)")
    parser.add_argument("--large-mib", type=int, default=1024, help="size of the large object in MiB")
    parser.add_argument("--workers", type=int, default=8, help="genfab concurrency for small objects")
    parser.add_argument("--repeat", type=int, default=1, help="large transfers: runs per side, order alternating")
    parser.add_argument("--no-download", action="store_true", help="skip the large download (slow on moto)")
    parser.add_argument("--write", action="store_true", help="write the table to benchmarks/results/")
    parser.add_argument("--results", default="storage.md", help="file name under benchmarks/results/")
    args = parser.parse_args()

    port = free_port()
    # The server runs in its own process so that it does not share the client's GIL.
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    wait_for(port)
    creds = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench-secret"}
    plain = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
    # One bucket per variant: moto slows down as a bucket fills, so no variant pays for another's keys.
    for bucket in (BUCKET, f"{BUCKET}-seq", f"{BUCKET}-par"):
        plain.create_bucket(Bucket=bucket)
    settings = S3Settings(endpoint=endpoint, addressing_style="path", access_key_id="bench",
                          secret_access_key="bench-secret", max_concurrency=args.workers)
    genfab = open_storage(f"s3://{BUCKET}/genfab", settings)
    seq = open_storage(f"s3://{BUCKET}-seq/genfab", settings)
    par = open_storage(f"s3://{BUCKET}-par/genfab", settings)

    payload = os.urandom(1024)
    n = args.small
    keys = [f"small/{i:06d}.bin" for i in range(n)]
    rows: list[tuple[str, str, float, float]] = []  # (operation, variant, seconds, MB/s or obj/s)

    def plain_put() -> None:
        for k in keys:
            plain.put_object(Bucket=BUCKET, Key=k, Body=payload)

    def plain_get() -> None:
        for k in keys:
            plain.get_object(Bucket=BUCKET, Key=k)["Body"].read()

    up, down = f"1 KB x {n} upload", f"1 KB x {n} download"
    small = [
        (up, "boto3 sequential loop", plain_put),
        (up, "genfab write_bytes loop", lambda: [seq.write_bytes(k, payload) for k in keys]),
        (up, f"genfab write_many ({args.workers} threads)",
         lambda: par.write_many(((k, payload) for k in keys), workers=args.workers)),
        (down, "boto3 sequential loop", plain_get),
        (down, "genfab read_bytes loop", lambda: [seq.read_bytes(k) for k in keys]),
        (down, f"genfab read_many ({args.workers} threads)",
         lambda: par.read_many(keys, workers=args.workers)),
    ]
    for op, variant, fn in small if n else []:
        seconds = timed(fn)
        rows.append((op, variant, seconds, n / seconds))
        print(f"{op:28} {variant:34} {seconds:8.2f} s  {n / seconds:9.0f} obj/s", flush=True)

    size = args.large_mib * MiB
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "large.bin"
        with src.open("wb") as fh:
            block = os.urandom(MiB)
            for _ in range(args.large_mib):
                fh.write(block)
        upload = [
            (f"{args.large_mib} MiB upload", "boto3 upload_file (defaults)",
             lambda: plain.upload_file(str(src), BUCKET, "plain/large.bin")),
            (f"{args.large_mib} MiB upload", "genfab upload_file",
             lambda: genfab.upload_file("large.bin", src)),
        ]
        download = [
            (f"{args.large_mib} MiB download", "boto3 download_file (defaults)",
             lambda: plain.download_file(BUCKET, "plain/large.bin", str(Path(tmp) / "p.bin"))),
            (f"{args.large_mib} MiB download", "genfab download_file",
             lambda: genfab.download_file("large.bin", Path(tmp) / "g.bin")),
        ]
        # Each pair runs `--repeat` times, alternating which side goes first; the median counts.
        for pair in [upload] + ([] if args.no_download else [download]):
            times: dict[str, list[float]] = {variant: [] for _, variant, _ in pair}
            for r in range(args.repeat):
                for _, variant, fn in (pair if r % 2 == 0 else pair[::-1]):
                    times[variant].append(timed(fn))
            for op, variant, _ in pair:
                seconds = statistics.median(times[variant])
                rows.append((op, variant, seconds, size / MiB / seconds))
            print(f"{op:28} {variant:34} {seconds:8.2f} s  {size / MiB / seconds:9.1f} MiB/s", flush=True)
            for leftover in Path(tmp).glob("*.bin"):
                if leftover != src:
                    leftover.unlink()
    server.terminate()
    server.wait()

    baseline = {op: s for op, variant, s, _ in rows if variant.startswith("boto3")}
    lines = ["| operation | variant | seconds | throughput | speed vs plain boto3 |",
             "| --- | --- | ---: | ---: | ---: |"]
    for op, variant, seconds, rate in rows:
        unit = "obj/s" if "KB" in op else "MiB/s"
        ratio = baseline[op] / seconds
        lines.append(f"| {op} | {variant} | {seconds:.2f} | {rate:,.0f} {unit} | {ratio:.2f}x |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.write:
        out = Path(__file__).parent / "results" / args.results
        out.parent.mkdir(exist_ok=True)
        command = "python benchmarks/storage.py " + " ".join(sys.argv[1:])
        out.write_text(
            "# Storage throughput: genfab.storage vs plain boto3\n\n"
            f"Same moto S3 server (a separate local process), same machine, one run.\n\n"
            f"- command: `{command.strip()}`\n"
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}\n"
            f"- Python {platform.python_version()}, boto3 {version('boto3')}, botocore {version('botocore')}, "
            f"moto {version('moto')}\n"
            f"- speed ratio = plain boto3 seconds / variant seconds (>1 is faster than the baseline)\n\n"
            f"{table}\n"
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
