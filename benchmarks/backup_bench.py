"""The backup benchmark: davsync (both encryption modes) against rclone and restic.

One SeaweedFS (`weed mini`, loopback) receives the same 1 GiB of generated files from every
contender, each in its own bucket: 20 "videos" of 40 MiB and 2 000 "photos" of 100 KiB, random
(incompressible) bytes. Each contender runs twice: the first run measures throughput, the
second (nothing changed) the no-change time. Peak RSS is the child's own `ru_maxrss` (wait4).

References (Debian packages): `rclone copy` to a plain S3 remote and to a crypt remote,
`restic backup`. Targets: davsync at least 1.0x rclone plain's throughput in either mode, its
no-change run at most half of restic's, and peak RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from davsync.devtools.seaweed_local import LocalS3, start_local_s3

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PASSPHRASE = "Bench-passphrase-1"
MiB = 1 << 20


@dataclass
class Result:
    name: str
    seconds: float
    nochange_seconds: float
    peak_rss_mb: float
    mib_per_s: float


def make_data(base: Path, videos: int, video_mib: int, photos: int, photo_kib: int) -> Path:
    """The data set, generated once per size and reused (a folder per size, built under a
    temporary name and renamed, so concurrent runs never see half of one)."""
    root = base / f"v{videos}x{video_mib}m-p{photos}x{photo_kib}k"
    if root.is_dir():
        return root
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".building-"))
    for i in range(videos):
        path = tmp / "Videos" / f"video-{i:03}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            for _ in range(video_mib):
                fh.write(os.urandom(MiB))
    for i in range(photos):
        path = tmp / "Pictures" / f"{i // 100:02}" / f"photo-{i:05}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(photo_kib * 1024))
    try:
        tmp.rename(root)
    except OSError:   # another run finished the same data set first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def data_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process; raises if it fails."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    with proc.stdout:
        output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args[0]} failed:\n{output.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def davsync_run(s3: LocalS3, work: Path, data: Path, mode: str) -> tuple[float, float]:
    config = work / f"davsync-{mode}.toml"
    config.write_text(f"""
[server]
url = "http://127.0.0.1:9/"
username = "bench"
[state]
dir = "{work / ('state-' + mode)}"
[backup]
endpoint = "{s3.endpoint}"
bucket = "davsync-{mode}"
access_key = "{s3.access_key}"
secret_key = "{s3.secret_key}"
encryption = "{mode}"
passphrase = "{PASSPHRASE}"
images = ["{data / 'Pictures'}"]
videos = ["{data / 'Videos'}"]
""", encoding="utf-8")
    davsync = str(Path(sys.executable).parent / "davsync")
    return measured([davsync, "--config", str(config), "backup", "-q"])


def rclone_env(s3: LocalS3, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    obscured = subprocess.run(["rclone", "obscure", PASSPHRASE], capture_output=True, text=True,
                              check=True).stdout.strip()
    env.update({
        "RCLONE_CONFIG": str(work / "rclone.conf"),
        "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": s3.endpoint,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3.access_key,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3.secret_key,
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
        "RCLONE_CONFIG_CRYPT_TYPE": "crypt", "RCLONE_CONFIG_CRYPT_REMOTE": "bench:rclone-crypt",
        "RCLONE_CONFIG_CRYPT_PASSWORD": obscured,
    })
    (work / "rclone.conf").touch()
    return env


def restic_env(s3: LocalS3) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update({"RESTIC_REPOSITORY": f"s3:{s3.endpoint}/restic", "RESTIC_PASSWORD": PASSPHRASE,
                "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                "RESTIC_CACHE_DIR": "", "XDG_CACHE_HOME": str(Path(tempfile.gettempdir()))})
    return env


def contenders(s3: LocalS3, work: Path, data: Path, with_refs: bool) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [
        ("davsync client", lambda: davsync_run(s3, work, data, "client")),
        ("davsync sse-c", lambda: davsync_run(s3, work, data, "sse-c")),
    ]
    if not with_refs:
        return out
    renv = rclone_env(s3, work)
    out.append(("rclone plain", lambda: measured(
        ["rclone", "copy", "--transfers", "8", str(data), "bench:rclone-plain/data"], renv)))
    out.append(("rclone crypt", lambda: measured(
        ["rclone", "copy", "--transfers", "8", str(data), "crypt:data"], renv)))
    env = restic_env(s3)
    out.append(("restic", lambda: measured(["restic", "backup", "--quiet", str(data)], env)))
    return out


def prepare_refs(s3: LocalS3) -> None:
    env = restic_env(s3)
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1",
                          aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
    for bucket in ("rclone-plain", "rclone-crypt", "restic"):
        client.create_bucket(Bucket=bucket)
    client.close()
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --only backup")
    parser.add_argument("--quick", action="store_true", help="a 1/8 size data set")
    parser.add_argument("--no-refs", action="store_true", help="davsync only")
    parser.add_argument("--repeat", type=int, default=3, help="no-change runs per contender")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) /
                        "davsync-backup-bench-data", help="where the generated data sets live")
    args, unknown = parser.parse_known_args(list(argv))
    if unknown:
        print(f"(backup benchmark ignores {' '.join(unknown)})")
    missing = [tool for tool in ("rclone", "restic") if shutil.which(tool) is None]
    if missing and not args.no_refs:
        print(f"missing {', '.join(missing)}: apt-get install -y rclone restic "
              "(or pass --no-refs to measure davsync alone)")
        return 1
    scale = 8 if args.quick else 1
    data = make_data(args.data, max(1, 20 // scale), 40, 2000 // scale, 100)
    total = data_size(data)
    print(f"data: {total / MiB:.0f} MiB in {data}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (other work on the machine skews every number)", flush=True)
    with tempfile.TemporaryDirectory(prefix="davsync-backup-bench-") as tmp:
        work = Path(tmp)
        s3 = start_local_s3(work / "s3")
        try:
            if not args.no_refs:
                prepare_refs(s3)
            results = []
            for name, fn in contenders(s3, work, data, not args.no_refs):
                seconds, rss = fn()  # type: ignore[operator]
                again = [fn() for _ in range(args.repeat)]  # type: ignore[operator]
                nochange = statistics.median(a[0] for a in again)
                peak = max([rss] + [a[1] for a in again])
                results.append(Result(name, seconds, nochange, peak, total / MiB / seconds))
                print(f"{name:16} {total / MiB / seconds:7.1f} MiB/s  first {seconds:6.2f} s  "
                      f"no-change {nochange:5.2f} s (median of {args.repeat})  "
                      f"peak RSS {peak:5.0f} MB", flush=True)
        finally:
            s3.stop()
    return report(results)


def report(results: list[Result]) -> int:
    by = {r.name: r for r in results}
    ok = True
    print()
    for mode in ("davsync client", "davsync sse-c"):
        r = by[mode]
        rss_ok = r.peak_rss_mb < 150
        ok &= rss_ok
        print(f"{mode}: peak RSS {r.peak_rss_mb:.0f} MB (target < 150) "
              f"{'ok' if rss_ok else 'MISSED'}")
        if "rclone plain" in by:
            ratio = r.mib_per_s / by["rclone plain"].mib_per_s
            ok &= ratio >= 1.0
            print(f"{mode}: throughput / rclone plain = {ratio:.2f}x (target >= 1.0) "
                  f"{'ok' if ratio >= 1.0 else 'MISSED'}")
        if "restic" in by:
            ratio = r.nochange_seconds / by["restic"].nochange_seconds
            ok &= ratio <= 0.5
            print(f"{mode}: no-change time / restic = {ratio:.2f}x (target <= 0.5) "
                  f"{'ok' if ratio <= 0.5 else 'MISSED'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "backup.json"
    out.write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    print(f"results written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
