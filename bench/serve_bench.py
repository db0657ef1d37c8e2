"""Plain `healthgraph serve` against blackbox_exporter on the same nginx (issue 16, part 4).

    .venv/bin/python bench/serve_bench.py [--connections 3000,6000] [--hosts 64] [--interval 1]
        [--repeat 3] [--env NAME=VALUE ...]

The scenario: `--connections` connections (`--hosts` distinct hosts, half of the connections
with a bearer token) on a fresh SQLite file, checked every `--interval` seconds against a local
nginx by a plain `healthgraph serve` with default settings (`--env` adds settings, e.g.
HEALTHGRAPH_PROBE_PROCESSES=2); checks/s from its `healthgraph_checks_total` over 20 s after a
10 s warm-up. Then, in the same round, blackbox_exporter probing the same nginx as fast as
`wrk -t1 -c50 -d15s` drives it. Rounds alternate the two `--repeat` times; each prints both
rates, their ratio and the CPU each used per check or probe, and the last line the medians.

The two are not the same job: blackbox_exporter answers a probe request and forgets it, while
each healthgraph check is claimed from the database, written back with its result and exported.
And the scenario has a ceiling: `--connections` / `--interval` checks/s is all the catalog asks
for, so no scheduler can reach a ratio above that ceiling over blackbox_exporter's rate; each
line says what share of the ceiling was checked and the ratio the ceiling allows. At 3,000
connections (the issue's scenario) blackbox_exporter can outrun the ceiling on 2 cores
(3,050-3,600 probes/s on a fast day), and the ratio then shows only that every check ran on
time; 6,000 connections ask for more than either can do, and compare the two at full speed.

Needs nginx, wrk and prometheus-blackbox-exporter (Debian packages). A script, never a test:
run it on a quiet machine; the cores busy before each measurement are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_bench import (
    background_cores,
    blackbox_probes_per_s,
    free_ports,
    hosts_on,
    int_list,
    nginx,
    seed,
    sqlite_backend,
)
from running import check_rate, services

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


@dataclass(frozen=True)
class Round:
    checks_per_second: float
    cpu_ms_per_check: float
    probes_per_second: float  # blackbox_exporter's
    cpu_ms_per_probe: float

    @property
    def ratio(self) -> float:
        return self.checks_per_second / self.probes_per_second


async def one_size(
    connections: int, args: argparse.Namespace, settings: dict[str, str], ports: list[int]
) -> None:
    """The scenario at one catalog size: `--repeat` alternated rounds and their medians."""
    ceiling = connections / args.interval
    print(
        f"== {connections:,} connections over {args.hosts} hosts every {args.interval} s "
        f"(ceiling {ceiling:,.0f} checks/s), plain serve"
        f"{' with ' + ' '.join(args.env) if args.env else ''} vs blackbox_exporter "
        f"(wrk -t1 -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s), same nginx =="
    )
    rounds: list[Round] = []
    async with sqlite_backend() as backend:
        key = generate_key()
        await seed(
            backend,
            count=connections,
            origins=hosts_on(ports, args.hosts),
            interval=args.interval,
            key_ring=KeyRing([key]),
            credentials_share=0.5,
        )
        for number in range(1, args.repeat + 1):
            await backend.reset()
            await backend.make_all_due()
            background = await background_cores()
            async with services(backend, key, 1, **settings) as (service,):
                measured = await check_rate(
                    service, warm_up_seconds=WARM_UP_SECONDS, measure_seconds=MEASURE_SECONDS
                )
            (result,) = await blackbox_probes_per_s(
                ports, [WRK_CONNECTIONS], WRK_SECONDS, wrk_threads=1
            )
            rounds.append(
                Round(
                    measured.checks_per_second,
                    measured.cpu_ms_per_check,
                    result.requests_per_s,
                    result.cpu_ms_per_request or 0.0,
                )
            )
            done = rounds[-1]
            print(
                f"  round {number}: healthgraph {done.checks_per_second:,.0f} checks/s "
                f"({done.checks_per_second / ceiling:.1%} of the ceiling, {measured.cores:.2f} "
                f"cores, {done.cpu_ms_per_check:.2f} ms CPU a check), blackbox_exporter "
                f"{done.probes_per_second:,.0f} probes/s ({done.cpu_ms_per_probe:.2f} ms CPU a "
                f"probe): ratio {done.ratio:.2f} ({background:.2f} cores busy before)",
                flush=True,
            )
    rate = statistics.median(r.checks_per_second for r in rounds)
    probes = statistics.median(r.probes_per_second for r in rounds)
    ratios = [r.ratio for r in rounds]
    print(
        f"  median: healthgraph {rate:,.0f} checks/s ({rate / ceiling:.1%} of the ceiling), "
        f"blackbox_exporter {probes:,.0f} probes/s, ratio {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}; the ceiling allows at most "
        f"{ceiling / probes:.2f}); CPU a check "
        f"{statistics.median(r.cpu_ms_per_check for r in rounds):.2f} ms, a probe of "
        f"blackbox_exporter {statistics.median(r.cpu_ms_per_probe for r in rounds):.2f} ms",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int_list, default=[3000, 6000])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    settings = _settings(args.env)
    ports = free_ports(4)
    async with nginx(ports):
        for connections in args.connections:
            await one_size(connections, args, settings, ports)


if __name__ == "__main__":
    asyncio.run(main())
