"""Profile one davsync run of a benchmark scenario (`pairing` or `server-change`).

    .venv/bin/python -m benchmarks.profile_sync --size 10000 --scenario pairing \
        [--py-spy PATH/py-spy] [--out DIR] [--davsync-set multiget_batch=500]

Seeds a Radicale (the benchmark's: subprocess, fsync on) with `--size` contacts (its sync
history written, as in an account in use, unless `--never-synced`), then runs
`davsync sync` once, under py-spy (`--py-spy`, all threads, idle time included, so waiting on
the server shows) or under nothing (just the wall time and request count). For
`server-change`, a first untimed sync pairs, then half of the items are edited on the server
(`benchmarks.sync_bench.edit_on_server`) and the profiled sync downloads them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import datagen
from benchmarks.sync_bench import (
    COLLECTION,
    Davsync,
    TightClient,
    edit_on_server,
    radicale,
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_sync")
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--scenario", choices=("pairing", "server-change"), default="pairing")
    parser.add_argument("--py-spy", type=Path, help="py-spy binary; without it: no profile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--davsync-set", action="append", default=[])
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (where the CPU goes), "
                        "instead of every thread, idle included (where the time goes)")
    parser.add_argument("--never-synced", action="store_true",
                        help="skip the seeding sync-collection that writes Radicale's history")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="davsync-profile-"))
    items = list(datagen.contacts(args.size))
    with radicale(work / "radicale") as server:
        server.add_user("seed")
        seed = TightClient(server.url, "seed")
        try:
            seed.touch_principal()
            seed.bulk_put(COLLECTION, datagen.bulk_body(items))
            if not args.never_synced:
                seed.write_history(COLLECTION)
        finally:
            seed.close()
        dav = Davsync(server, work / "davsync", "seed", args.davsync_set)
        if args.scenario == "server-change":
            dav.sync()
            edit_on_server(server, "seed", args.size // 2)
        cmd = [str(dav.binary), "--config", str(dav.config), "sync", "--json"]
        stem = f"{args.scenario}-{args.size}-{time.strftime('%H%M%S')}"
        if args.py_spy is not None:
            how = ["--gil"] if args.gil else ["--idle"]
            cmd = [str(args.py_spy), "record", *how, "--threads", "--rate", "200",
                   "--format", "raw", "-o", str(args.out / f"{stem}.txt"), "--", *cmd]
        before = server.requests_seen()
        started = time.perf_counter()
        done = subprocess.run(cmd, env=dav._env(), capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        print(f"{stem}: exit {done.returncode}, {seconds:.2f} s, "
              f"{server.requests_seen() - before} requests")
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
