"""Plain `healthgraph serve` against blackbox_exporter on the same nginx (issue 16, part 4).

    .venv/bin/python bench/serve_bench.py [--connections 3000] [--interval 1] [--repeat 3]
        [--env NAME=VALUE ...]

The scenario: `--connections` connections (64 distinct hosts, half with a bearer token) on a
fresh SQLite file, checked every `--interval` seconds against a local nginx by a plain
`healthgraph serve` with default settings (`--env` adds settings, e.g.
HEALTHGRAPH_PROBE_PROCESSES=2); checks/s from its `healthgraph_checks_total` over 20 s after a
10 s warm-up. Then, in the same round, blackbox_exporter probing the same nginx as fast as
`wrk -t1 -c50 -d15s` drives it. Rounds alternate the two `--repeat` times; each prints both
rates and their ratio, and the last line the medians.

The two are not the same job: blackbox_exporter answers a probe request and forgets it, while
each healthgraph check is claimed from the database, written back with its result and exported.
And the scenario has a ceiling: `--connections` / `--interval` checks/s is all the catalog asks
for (3,000/s at the defaults), so a ratio above that ceiling over blackbox_exporter's rate
cannot be reached by any scheduler; the line says so when it applies.

Needs nginx, wrk and prometheus-blackbox-exporter (Debian packages). A script, never a test:
run it on a quiet machine; the cores busy before each measurement are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_bench import (
    background_cores,
    blackbox_probes_per_s,
    free_ports,
    hosts_on,
    nginx,
    seed,
    sqlite_backend,
)
from running import checks_per_second, services

from store.crypto import KeyRing, generate_key

WARM_UP_SECONDS = 10
MEASURE_SECONDS = 20
WRK_SECONDS = 15
WRK_CONNECTIONS = 50


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.startswith("HEALTHGRAPH_"):
            raise SystemExit(f"--env {pair!r}: expected HEALTHGRAPH_NAME=VALUE")
        settings[name] = value
    return settings


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    settings = _settings(args.env)
    ceiling = args.connections / args.interval
    ports = free_ports(4)
    ratios: list[float] = []
    rates: list[float] = []
    probes: list[float] = []
    print(
        f"== {args.connections:,} connections every {args.interval} s (ceiling {ceiling:,.0f} "
        f"checks/s), plain serve{' with ' + ' '.join(args.env) if args.env else ''} "
        f"vs blackbox_exporter (wrk -t1 -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s), same nginx =="
    )
    async with nginx(ports), sqlite_backend() as backend:
        key = generate_key()
        await seed(
            backend,
            count=args.connections,
            origins=hosts_on(ports, 64),
            interval=args.interval,
            key_ring=KeyRing([key]),
            credentials_share=0.5,
        )
        for round_ in range(1, args.repeat + 1):
            await backend.reset()
            await backend.make_all_due()
            background = await background_cores()
            async with services(backend, key, 1, **settings) as (url,):
                rate = await checks_per_second(
                    url, warm_up_seconds=WARM_UP_SECONDS, measure_seconds=MEASURE_SECONDS
                )
            (result,) = await blackbox_probes_per_s(
                ports, [WRK_CONNECTIONS], WRK_SECONDS, wrk_threads=1
            )
            rates.append(rate)
            probes.append(result.requests_per_s)
            ratios.append(rate / result.requests_per_s)
            print(
                f"  round {round_}: healthgraph {rate:,.0f} checks/s ({rate / ceiling:.1%} of "
                f"the ceiling), blackbox_exporter {result.requests_per_s:,.0f} probes/s: ratio "
                f"{ratios[-1]:.2f} ({background:.2f} cores busy before)",
                flush=True,
            )
    best_possible = ceiling / statistics.median(probes)
    print(
        f"  median: healthgraph {statistics.median(rates):,.0f} checks/s "
        f"({statistics.median(rates) / ceiling:.1%} of the ceiling), blackbox_exporter "
        f"{statistics.median(probes):,.0f} probes/s, ratio {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); the catalog's ceiling allows at most "
        f"{best_possible:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
