"""`python -m benchmarks [--only NAME] [--quick] [options]`: run each benchmark module in turn.

Contract for a benchmark module `benchmarks/<name>_bench.py`: it exposes
`run(argv: list[str]) -> int`, parses its own options from argv (ignoring, with a note, the
options meant for other benchmarks), prints its own tables, and returns 0 when every target it
judges was met, 1 when one was missed. Modules that are not there yet are skipped; one that
crashes is reported and the others still run (exit code 2).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence

BENCHMARKS = ("sync", "backup")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", add_help=False,
        description=f"Runs the benchmarks {', '.join(BENCHMARKS)}; other options go to each.",
    )
    parser.add_argument("--only", choices=BENCHMARKS, action="append",
                        help="run only this benchmark (repeatable)")
    parser.add_argument("-h", "--help", action="store_true")
    args, rest = parser.parse_known_args(list(argv))
    selected = args.only or list(BENCHMARKS)
    if args.help:
        parser.print_help()
    status = 0
    for name in selected:
        module_name = f"benchmarks.{name}_bench"
        if importlib.util.find_spec(module_name) is None:
            print(f"== {name}: not available yet ({module_name} missing), skipped")
            continue
        module = importlib.import_module(module_name)
        print(f"== {name} benchmark", flush=True)
        if args.help:
            rest = ["--help"]
        try:
            status = max(status, int(module.run(rest)))
        except SystemExit as exc:  # argparse --help / usage errors inside a module
            code = exc.code if isinstance(exc.code, int) else 2
            if not args.help:
                return code
        except Exception:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            print(f"== {name} benchmark crashed (traceback above); continuing", flush=True)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
