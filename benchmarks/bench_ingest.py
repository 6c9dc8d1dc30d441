"""Ingest over DDS: offered observations/s against what the memory node takes, stores and
counts as lost.

    source tools/env.sh
    python benchmarks/bench_ingest.py                      # 3 runs, 5 s per rate, ~4 min
    python benchmarks/bench_ingest.py --runs 5 --seconds 10 --rates 100 1000 2000

Per run, a fresh memory node (its own process, Fast DDS, a new SQLite store, the parameters of
config/engram.yaml except ``consolidation_period:=0`` and ``semantic_text:=false``: neither
consolidation nor the sentence model's loading competes with the intake) and a publisher
process (``--publishers`` publishers, like several cameras, offering perception-like sketches:
256-d vectors, a label, a colour and a room tag, serialized once). For each offered rate the
publisher publishes for ``--seconds``, then the benchmark waits until the node has accounted
for every published observation (or its counters stop moving) and reads the node's counters
from ``/diagnostics``:

* taken: observations the node took off DDS (``received``), and taken/s over the offering and
  the drain;
* lost: publishers' sequence gaps the node counted (``lost``);
* stored (``ingested``), refused over the per-publisher rate limit (``refused_rate``),
  dropped on a full write queue or a storage error, rejected as invalid or oversized;
* the node process's CPU time per taken observation (``/proc/<pid>/stat``, all threads, over
  the offering and the drain), and its RSS;
* ``uncounted = published - stored - (lost + refused + dropped + rejected)``: 0 when no
  observation vanished without a counter saying so.

Writes ``docs/benchmarks/ingest.json`` and ``.md`` (``--out``), with the command, the date,
the machine and the load average before and after each rate.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dds_bench  # noqa: E402
from dds_bench import fmt_spread  # noqa: E402
from dds_bench import spread  # noqa: E402

from engram_ros.ros.client import spinning_node  # noqa: E402

RATES = (50, 100, 200, 500, 1000, 2000, 5000)


def one_run(run: int, args: argparse.Namespace, tmp: Path) -> list[dict]:
    """One sweep over the rates against a fresh node and store; a row per rate."""
    namespace = f'/bench_ingest_{uuid.uuid4().hex[:6]}'
    node_proc = dds_bench.start_memory(
        namespace, tmp / f'store{run}', tmp / f'memory{run}.log',
        ['consolidation_period:=0.0', 'semantic_text:=false', 'diagnostics_period:=0.25',
         *args.node_param])
    publisher = None
    rows = []
    try:
        with spinning_node(f'engram_bench_ingest_{run}') as node:
            diagnostics = dds_bench.Diagnostics(node, f'{namespace}/engram_memory')
            diagnostics.counters(timeout=120.0)         # the node is up
            publisher = dds_bench.start_worker(
                'publisher', tmp / f'publisher{run}.log', '--namespace', namespace,
                '--publishers', str(args.publishers), '--seed', str(run))
            publisher.receive(timeout=120.0)            # matched
            for rate in args.rates:
                time.sleep(0.5)
                before = diagnostics.counters(newer_than=time.monotonic())
                load_before = dds_bench.loadavg()
                cpu0 = dds_bench.cpu_seconds(node_proc.pid)
                pub_cpu0 = dds_bench.cpu_seconds(publisher.pid)
                t0 = time.monotonic()
                publisher.send(rate=rate, seconds=args.seconds)
                sent = publisher.receive(timeout=args.seconds + 60.0)
                offered = diagnostics.counters(newer_than=time.monotonic())
                d, drain_s = dds_bench.wait_drained(diagnostics, before, sent['published'])
                cpu = dds_bench.cpu_seconds(node_proc.pid) - cpu0
                pub_cpu = dds_bench.cpu_seconds(publisher.pid) - pub_cpu0
                acc = dds_bench.accounting(sent['published'], d)
                window = sent['seconds'] + drain_s
                row = dict(run=run, offered_per_s=rate, **acc,
                           published_per_s=sent['published'] / sent['seconds'],
                           taken_per_s=acc['taken'] / window,
                           taken_offering_per_s=(offered['received'] - before['received'])
                           / sent['seconds'],
                           stored_per_s=acc['stored'] / window, drain_s=drain_s,
                           cpu_ms_per_taken=1e3 * cpu / max(acc['taken'], 1),
                           node_cpu_percent=100.0 * cpu / (time.monotonic() - t0),
                           publisher_cpu_percent=100.0 * pub_cpu / (time.monotonic() - t0),
                           node_rss_mb=dds_bench.rss_mb(node_proc.pid),
                           load_before=load_before, load_after=dds_bench.loadavg())
                rows.append(row)
                print(f'run {run} offered {rate:5d}/s: published {acc["published"]:6d} '
                      f'({row["published_per_s"]:.0f}/s), taken {acc["taken"]:6d} '
                      f'({row["taken_per_s"]:.0f}/s), lost {acc["lost"]}, stored '
                      f'{acc["stored"]}, refused {acc["refused"]}, dropped {acc["dropped"]}, '
                      f'rejected {acc["rejected"]}: published - stored - counted = '
                      f'{acc["uncounted"]} uncounted; {row["cpu_ms_per_taken"]:.2f} ms CPU '
                      f'per taken, load {row["load_after"]}', flush=True)
    finally:
        if publisher is not None:
            publisher.stop()
        code = node_proc.stop()
        if code not in (0, None):
            print(f'memory node exited with {code}; log:\n{node_proc.log()[-3000:]}')
    return rows


def summarise(rows: list[dict], rates) -> list[dict]:
    """Per rate: the median and min-max over the runs of each figure."""
    keys = ('published_per_s', 'taken_offering_per_s', 'taken_per_s', 'stored_per_s',
            'published', 'taken', 'lost', 'stored', 'refused', 'dropped', 'rejected',
            'uncounted', 'cpu_ms_per_taken', 'node_cpu_percent', 'publisher_cpu_percent',
            'drain_s', 'node_rss_mb')
    out = []
    for rate in rates:
        mine = [r for r in rows if r['offered_per_s'] == rate]
        out.append(dict(offered_per_s=rate, runs=len(mine),
                        **{k: spread([r[k] for r in mine]) for k in keys},
                        load=sorted({r['load_after'] for r in mine})))
    return out


def targets(rows: list[dict]) -> list[dict]:
    """Per run, the issue's targets: the saturation rate (the most taken/s at any offered rate,
    over the offering and the drain), >= 2,000/s of it, what the node still takes at the
    highest offered rate against it, and 0 uncounted losses at every rate."""
    out = []
    for run in sorted({r['run'] for r in rows}):
        mine = sorted((r for r in rows if r['run'] == run), key=lambda r: r['offered_per_s'])
        best = max(mine, key=lambda r: r['taken_per_s'])
        out.append({'run': run, 'saturation_per_s': best['taken_per_s'],
                    'saturation_offered': best['offered_per_s'],
                    'highest_offered': mine[-1]['offered_per_s'],
                    'taken_at_highest_per_s': mine[-1]['taken_per_s'],
                    'uncounted': sum(r['uncounted'] for r in mine)})
    return out


def markdown(result: dict) -> str:
    m = result['machine']
    lines = [
        '# Ingest over DDS (`benchmarks/bench_ingest.py`)', '',
        'A publisher process offers perception-like observations (256-d vectors) to the memory '
        'node (its own process, Fast DDS, SQLite store) at each rate for '
        f'{result["seconds"]} s, then waits for the node to account for them; figures from the '
        "node's `/diagnostics` counters and `/proc/<pid>/stat`. Median (min-max) over "
        f'{result["runs"]} runs, each a fresh node and store sweeping all rates. '
        '`uncounted` = published - stored - (lost + refused + dropped + rejected): 0 means no '
        'observation vanished without a counter saying so.', '',
        f'* Command: `{result["command"]}`',
        f'* Date: {result["date"]}; commit {result["machine"]["commit"]}',
        f'* Machine: {m["cpus"]} cores ({m["cpu"]}), {m["memory_gib"]} GiB, no GPU; '
        f'Python {m["python"]}, {m["rmw"]}',
        f'* Load average (1/5/15 min) at the start: {result["load_start"]}, at the end: '
        f'{result["load_end"]} (other jobs share the machine)',
        f'* {result["publishers"]} publishers in the publisher process, each offering an equal '
        'share of the rate (the node refuses past `ingest_rate_limit` per publisher, 1000/s by '
        'default); node parameters: '
        'config/engram.yaml with ' + ', '.join(f'`{p}`' for p in result['node_params']), '',
        '| offered /s | published /s | taken /s while offered | taken /s | stored /s | lost | '
        'refused | dropped | rejected | uncounted | CPU ms / taken | node CPU % | '
        'publisher CPU % | node RSS MiB |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for s in result['summary']:
        lines.append('| ' + ' | '.join([str(s['offered_per_s'])] + [fmt_spread(s[k]) for k in (
            'published_per_s', 'taken_offering_per_s', 'taken_per_s', 'stored_per_s', 'lost',
            'refused', 'dropped', 'rejected', 'uncounted', 'cpu_ms_per_taken',
            'node_cpu_percent', 'publisher_cpu_percent', 'node_rss_mb')]) + ' |')
    lines += ['', '| run | saturation: most taken /s (offered /s) | >= 2,000 /s | taken /s at the '
              'highest offered rate (% of saturation) | uncounted, all rates |',
              '|---:|---:|---|---:|---:|']
    for t in result['targets']:
        lines.append(
            f'| {t["run"]} | {t["saturation_per_s"]:.0f} ({t["saturation_offered"]}) | '
            f'{"met" if t["saturation_per_s"] >= 2000 else "not met"} | '
            f'{t["taken_at_highest_per_s"]:.0f} at {t["highest_offered"]} '
            f'({100 * t["taken_at_highest_per_s"] / t["saturation_per_s"]:.0f} %) | '
            f'{t["uncounted"]} |')
    lines += ['', 'Counts (lost, refused, ...) are per rate step of '
              f'{result["seconds"]} s. "taken /s while offered" counts what the node took '
              'until the publisher stopped; "taken /s" and "stored /s" are over the offering plus '
              'the drain (until every published observation was accounted for). CPU: the node '
              'process, all threads, over the offering and the drain (100 % = one core); the '
              'publisher process runs on the same 2 cores. Per run and rate (check: '
              'published - stored == lost + refused + dropped + rejected):', '',
              '| run | offered /s | published | taken | lost | stored | refused | dropped | '
              'rejected | uncounted | check | load after |',
              '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|']
    for r in result['rows']:
        lines.append(
            f'| {r["run"]} | {r["offered_per_s"]} | {r["published"]} | {r["taken"]} | '
            f'{r["lost"]} | {r["stored"]} | {r["refused"]} | {r["dropped"]} | '
            f'{r["rejected"]} | {r["uncounted"]} | '
            f'{"ok" if r["uncounted"] == 0 else "FAILED"} | {r["load_after"]} |')
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rates', type=int, nargs='+', default=list(RATES))
    parser.add_argument('--seconds', type=float, default=5.0, help='offering time per rate')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--publishers', type=int, default=4,
                        help='publishers in the publisher process, offered rate split evenly '
                             '(the node rate-limits each: ingest_rate_limit)')
    parser.add_argument('--domain', type=int, default=None, help='ROS_DOMAIN_ID (random)')
    parser.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                        help='an extra memory node parameter, e.g. ingest_rate_limit:=0')
    parser.add_argument('--out', default=str(dds_bench.ROOT / 'docs' / 'benchmarks' / 'ingest'),
                        help='write OUT.json and OUT.md ("" to skip)')
    args = parser.parse_args()
    dds_bench.choose_domain(args.domain)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = dds_bench.loadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix='engram_bench_ingest_') as tmp:
        for run in range(1, args.runs + 1):
            rows += one_run(run, args, Path(tmp))
    result = {
        'command': shlex.join(['python', 'benchmarks/bench_ingest.py', *sys.argv[1:]]),
        'date': started.strftime('%Y-%m-%d %H:%M UTC'), 'machine': dds_bench.machine(),
        'load_start': load_start, 'load_end': dds_bench.loadavg(), 'runs': args.runs,
        'seconds': args.seconds, 'publishers': args.publishers,
        'node_params': ['consolidation_period:=0.0', 'semantic_text:=false',
                        'diagnostics_period:=0.25', *args.node_param],
        'summary': summarise(rows, args.rates), 'targets': targets(rows), 'rows': rows}
    dds_bench.write_result(result, markdown(result), args.out)
    return 1 if any(r['uncounted'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
