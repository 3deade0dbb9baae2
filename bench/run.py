"""`python -m bench.run`: every benchmark, each beside the baseline it measures in the same run.

Writes the table to bench/results.md as well (the README quotes the latest one).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from bench import (
    bench_batch,
    bench_close,
    bench_embedded,
    bench_http,
    bench_issue,
    bench_pdf,
    bench_signing,
)
from bench.common import Table, machine

SUITES = {
    "signing": bench_signing.run,
    "pdf": bench_pdf.run,
    "issue": bench_issue.run,
    "batch": bench_batch.run,
    "embedded": bench_embedded.run,
    "http": bench_http.run,
    "close": bench_close.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(SUITES), action="append")
    args = parser.parse_args()
    table = Table()
    for name, suite in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}", flush=True)
        suite(table)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"Measured {stamp} on {machine()}.\n\n" + table.markdown()
    print("\n" + text)
    Path(__file__).with_name("results.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
