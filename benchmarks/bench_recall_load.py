"""Recall under load over DDS: 4 client processes asking at once while observations arrive,
beside the same clients calling an empty ``std_srvs/Trigger`` service in the same set-up.

    source tools/env.sh
    python benchmarks/bench_recall_load.py                   # 3 rounds, ~4 min with the fill
    python benchmarks/bench_recall_load.py --store /tmp/bench100k/store --rounds 5

Fills a SQLite store with ``--size`` synthetic engrams (``bench_service.fill``: clustered 256-d
vectors, 20 room tags, label tags of several selectivities; skipped when ``--store`` already
holds one), then starts, each in its own process over Fast DDS:

* the memory node on that store (config/engram.yaml, ``consolidation_period:=0``,
  ``semantic_text:=false``: exact words only, no sentence model loading meanwhile);
* an empty ``std_srvs/Trigger`` server (a plain rclpy node, ``rclpy.spin``);
* a publisher offering ``--ingest-rate`` observations/s to the memory node during every case
  (so each case runs under the same load);
* ``--clients`` client processes, each calling in a loop (a call awaited before the next, the
  way a planner's node calls; ``--timeout`` per call).

Each round runs the cases back to back, so a drift of the machine's load hits them alike:
``--clients`` clients calling Recall (k=10, a text and a room tag, varied per call) for
``--seconds``, the same clients calling Trigger, then one client calling Recall and one calling
Trigger for ``--single-seconds``. Per case: calls/s over all clients, p50/p99/max latency,
timeouts, non-OK answers, and the observations published during the case against what the
node counted (taken, lost, stored, refused, dropped; ``uncounted`` = published - stored -
counted losses). The issue's targets are checked per round: Recall throughput >= 50 % of
Trigger's, Recall p99 <= 4x Trigger's, no timeout, no observation lost (counted or not), and
single-client Recall p50 <= 2x Trigger's.

Writes ``docs/benchmarks/recall_load.json`` and ``.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dds_bench  # noqa: E402
from bench_service import fill  # noqa: E402
from dds_bench import fmt_spread  # noqa: E402
from dds_bench import spread  # noqa: E402

from engram_ros.ros.client import spinning_node  # noqa: E402

NODE_PARAMS = ['consolidation_period:=0.0', 'semantic_text:=false', 'diagnostics_period:=0.25']


def run_case(name: str, service: str, clients: list, seconds: float, publisher, diagnostics,
             pids: dict[str, int], ingest_rate: float, timeout: float) -> dict:
    """One case: ``clients`` call ``service`` for ``seconds`` while the publisher offers
    ``ingest_rate`` observations/s; the figures."""
    time.sleep(0.3)
    before = diagnostics.counters(newer_than=time.monotonic())
    cpu0 = {k: dds_bench.cpu_seconds(pid) for k, pid in pids.items()}
    t0 = time.monotonic()
    publisher.send(rate=ingest_rate, seconds=seconds)
    for client in clients:
        client.send(service=service, seconds=seconds)
    replies = [client.receive(timeout=seconds + 60.0) for client in clients]
    sent = publisher.receive(timeout=seconds + 60.0)
    wall = time.monotonic() - t0
    cpu = {k: (dds_bench.cpu_seconds(pid) - cpu0[k]) / wall for k, pid in pids.items()}
    d, _ = dds_bench.wait_drained(diagnostics, before, sent['published'])
    latencies = np.concatenate([np.asarray(r['latencies'], dtype=float) for r in replies]
                               or [np.zeros(0)])
    calls = int(latencies.size)
    timeouts = sum(r['timeouts'] for r in replies)
    # a timed-out call holds its client for the whole timeout: the rate over the time the
    # clients were not waiting on one (an estimate of what they would have done without)
    busy = len(clients) * seconds - timeouts * timeout
    row = dict(case=name, service=service, clients=len(clients), seconds=seconds,
               calls=calls, calls_per_s=calls / seconds,
               calls_per_s_no_timeouts=calls / max(busy, 1e-9) * len(clients),
               p50_ms=float(np.percentile(latencies, 50)) if calls else float('nan'),
               p99_ms=float(np.percentile(latencies, 99)) if calls else float('nan'),
               max_ms=float(latencies.max()) if calls else float('nan'),
               timeouts=timeouts,
               errors=sum(r['errors'] for r in replies),
               observations=dds_bench.accounting(sent['published'], d),
               cpu_percent={k: round(100.0 * v, 1) for k, v in cpu.items()},
               load_after=dds_bench.loadavg())
    obs = row['observations']
    print(f'{name:18s} {row["calls_per_s"]:8.1f} calls/s  p50 {row["p50_ms"]:7.2f} ms  '
          f'p99 {row["p99_ms"]:7.2f} ms  max {row["max_ms"]:7.1f} ms  timeouts '
          f'{row["timeouts"]}  errors {row["errors"]}; observations published '
          f'{obs["published"]}, taken {obs["taken"]}, lost {obs["lost"]}, stored '
          f'{obs["stored"]}, uncounted {obs["uncounted"]}; load {row["load_after"]}',
          flush=True)
    return row


def checks(cases: dict[str, dict], clients: int) -> dict:
    """The issue's targets for one round."""
    recall, trigger = cases[f'recall x{clients}'], cases[f'trigger x{clients}']
    single_r, single_t = cases['recall x1'], cases['trigger x1']
    lost = sum(c['observations']['lost'] + c['observations']['uncounted']
               + c['observations']['dropped'] + c['observations']['refused']
               for c in cases.values())
    out = {
        'throughput_ratio': recall['calls_per_s'] / max(trigger['calls_per_s'], 1e-9),
        'throughput_ratio_no_timeouts': (recall['calls_per_s_no_timeouts']
                                         / max(trigger['calls_per_s_no_timeouts'], 1e-9)),
        'p99_ratio': recall['p99_ms'] / trigger['p99_ms'],
        'single_p50_ratio': single_r['p50_ms'] / single_t['p50_ms'],
        'timeouts': sum(c['timeouts'] for c in cases.values() if c['service'] == 'recall'),
        'observations_not_stored': lost}
    out['met'] = {'throughput >= 50% of Trigger': out['throughput_ratio'] >= 0.5,
                  'the same without timeouts': out['throughput_ratio_no_timeouts'] >= 0.5,
                  'p99 <= 4x Trigger': out['p99_ratio'] <= 4.0,
                  'no timeouts': out['timeouts'] == 0,
                  'no observation lost': lost == 0,
                  'single-client p50 <= 2x Trigger': out['single_p50_ratio'] <= 2.0}
    return out


def markdown(result: dict) -> str:
    m = result['machine']
    n = result['clients']
    lines = [
        '# Recall under load over DDS (`benchmarks/bench_recall_load.py`)', '',
        f'{n} client processes call Recall (k=10, a text and a room tag, varied) on a memory '
        f'node holding {result["size"]:,} engrams (SQLite) as fast as they can, each call '
        f'awaited, while a publisher offers {result["ingest_rate"]:g} observations/s to it; '
        f'then the same clients call an empty `std_srvs/Trigger` service (a plain rclpy node, '
        f'`rclpy.spin`) in the same set-up (the memory node still ingesting); then one client '
        f'each. All in their own processes over Fast DDS. Median (min-max) over '
        f'{result["rounds"]} rounds, each running the cases back to back.', '',
        f'* Command: `{result["command"]}`',
        f'* Date: {result["date"]}; commit {m["commit"]}',
        f'* Machine: {m["cpus"]} cores ({m["cpu"]}), {m["memory_gib"]} GiB, no GPU; '
        f'Python {m["python"]}, {m["rmw"]}',
        f'* Load average (1/5/15 min) at the start: {result["load_start"]}, at the end: '
        f'{result["load_end"]} (other jobs share the machine)',
        f'* Per-call timeout {result["timeout"]:g} s; {result["seconds"]:g} s per '
        f'{n}-client case, {result["single_seconds"]:g} s per single-client case; node '
        'parameters: config/engram.yaml with '
        + ', '.join(f'`{p}`' for p in result['node_params']), '',
        '| case | calls/s | calls/s without timeouts | p50 ms | p99 ms | max ms | timeouts | '
        'errors | obs. published | lost | uncounted | memory node CPU % |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name, s in result['summary']['cases'].items():
        lines.append('| ' + ' | '.join([name] + [fmt_spread(s[k]) for k in (
            'calls_per_s', 'calls_per_s_no_timeouts', 'p50_ms', 'p99_ms', 'max_ms', 'timeouts',
            'errors', 'published', 'lost', 'uncounted', 'memory_cpu_percent')]) + ' |')
    targets = result['summary']['targets']
    lines += ['', '| target (issue 12) | measured: median (min-max) | met in rounds |',
              '|---|---:|---:|']
    met = result['summary']['met']
    for label, key, fmt in (
            ('Recall calls/s >= 50 % of Trigger\'s', 'throughput_ratio', '{} of Trigger'),
            ('the same, without the time lost in timeouts', 'throughput_ratio_no_timeouts',
             '{} of Trigger'),
            ('Recall p99 <= 4x Trigger\'s', 'p99_ratio', '{}x'),
            ('no Recall timeouts', 'timeouts', '{}'),
            ('no observation lost (counted or not)', 'observations_not_stored', '{}'),
            ('single-client Recall p50 <= 2x Trigger\'s', 'single_p50_ratio', '{}x')):
        name = {'throughput_ratio': 'throughput >= 50% of Trigger',
                'throughput_ratio_no_timeouts': 'the same without timeouts',
                'p99_ratio': 'p99 <= 4x Trigger', 'timeouts': 'no timeouts',
                'observations_not_stored': 'no observation lost',
                'single_p50_ratio': 'single-client p50 <= 2x Trigger'}[key]
        lines.append(f'| {label} | {fmt.format(fmt_spread(targets[key]))} | '
                     f'{met[name]} of {result["rounds"]} |')
    lines += ['', '"calls/s without timeouts": a call that times out holds its client for the '
              'whole timeout; this rate counts the answered calls over the time the clients '
              'were not waiting on a timed-out one. Latency percentiles are over the answered '
              'calls. The Trigger clients\' timeouts reproduce a known Fast DDS/rclpy problem '
              'with several clients calling one service at a high rate (ros2/rmw#372).', '',
              'Per round:', '',
              '| round | case | calls/s | p50 ms | p99 ms | max ms | timeouts | published | '
              'taken | lost | stored | uncounted | load after |',
              '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    for r in result['rows']:
        o = r['observations']
        lines.append(
            f'| {r["round"]} | {r["case"]} | {r["calls_per_s"]:.1f} | {r["p50_ms"]:.2f} | '
            f'{r["p99_ms"]:.2f} | {r["max_ms"]:.1f} | {r["timeouts"]} | {o["published"]} | '
            f'{o["taken"]} | {o["lost"]} | {o["stored"]} | {o["uncounted"]} | '
            f'{r["load_after"]} |')
    return '\n'.join(lines) + '\n'


def summarise(rows: list[dict], rounds: list[dict]) -> dict:
    cases = {}
    for name in dict.fromkeys(r['case'] for r in rows):
        mine = [r for r in rows if r['case'] == name]
        cases[name] = {k: spread([r[k] for r in mine])
                       for k in ('calls_per_s', 'calls_per_s_no_timeouts', 'p50_ms', 'p99_ms',
                                 'max_ms', 'timeouts', 'errors')}
        for k in ('published', 'taken', 'lost', 'stored', 'uncounted'):
            cases[name][k] = spread([r['observations'][k] for r in mine])
        cases[name]['memory_cpu_percent'] = spread([r['cpu_percent']['memory'] for r in mine])
    keys = ('throughput_ratio', 'throughput_ratio_no_timeouts', 'p99_ratio', 'single_p50_ratio',
            'timeouts', 'observations_not_stored')
    return {'cases': cases, 'targets': {k: spread([c[k] for c in rounds]) for k in keys},
            'met': {name: sum(c['met'][name] for c in rounds) for name in rounds[0]['met']}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=100000, help='engrams in the store')
    parser.add_argument('--store', type=Path, default=None,
                        help='a store directory to reuse (filled if missing); default: a '
                             'temporary one, deleted at the end')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--seconds', type=float, default=10.0, help='per multi-client case')
    parser.add_argument('--single-seconds', type=float, default=5.0,
                        help='per single-client case')
    parser.add_argument('--ingest-rate', type=float, default=100.0,
                        help='observations/s published to the memory node during every case')
    parser.add_argument('--timeout', type=float, default=2.0, help='per call [s]')
    parser.add_argument('--domain', type=int, default=None, help='ROS_DOMAIN_ID (random)')
    parser.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                        help='an extra memory node parameter')
    parser.add_argument('--compact', action='store_true',
                        help='Recall asks for compact answers (what a planner needs: ids, '
                             'poses, labels, tags, scores)')
    parser.add_argument('--out', default=str(dds_bench.ROOT / 'docs' / 'benchmarks'
                                             / 'recall_load'),
                        help='write OUT.json and OUT.md ("" to skip)')
    args = parser.parse_args()
    dds_bench.choose_domain(args.domain)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = dds_bench.loadavg()
    tmp = Path(tempfile.mkdtemp(prefix='engram_bench_recall_'))
    store = args.store or tmp / 'store'
    if not (store / 'engrams.sqlite3').exists():
        t = time.perf_counter()
        fill(store, args.size)
        print(f'filled {args.size} engrams in {time.perf_counter() - t:.1f} s', flush=True)
    namespace = f'/bench_recall_{uuid.uuid4().hex[:6]}'
    procs: list[dds_bench.Process] = []
    rows, rounds = [], []
    try:
        memory = dds_bench.start_memory(namespace, store, tmp / 'memory.log',
                                        [*NODE_PARAMS, *args.node_param])
        procs.append(memory)
        trigger = dds_bench.start_worker('trigger', tmp / 'trigger.log', '--namespace',
                                         namespace)
        procs.append(trigger)
        with spinning_node('engram_bench_recall_load') as node:
            diagnostics = dds_bench.Diagnostics(node, f'{namespace}/engram_memory')
            diagnostics.counters(timeout=180.0)         # the node is up, the store open
            publisher = dds_bench.start_worker('publisher', tmp / 'publisher.log',
                                               '--namespace', namespace)
            procs.append(publisher)
            clients = [dds_bench.start_worker(
                'client', tmp / f'client{i}.log', '--namespace', namespace, '--timeout',
                str(args.timeout), '--seed', str(i), *(['--compact'] if args.compact else []))
                for i in range(args.clients)]
            procs += clients
            for worker in (publisher, *clients):
                worker.receive(timeout=180.0)
            pids = {'memory': memory.pid, 'trigger': trigger.pid}
            n = args.clients
            for rnd in range(1, args.rounds + 1):
                print(f'round {rnd}:', flush=True)
                cases = {}
                for name, service, who, seconds in (
                        (f'recall x{n}', 'recall', clients, args.seconds),
                        (f'trigger x{n}', 'trigger', clients, args.seconds),
                        ('recall x1', 'recall', clients[:1], args.single_seconds),
                        ('trigger x1', 'trigger', clients[:1], args.single_seconds)):
                    cases[name] = run_case(name, service, who, seconds, publisher,
                                           diagnostics, pids, args.ingest_rate, args.timeout)
                    rows.append(dict(round=rnd, **cases[name]))
                rounds.append(dict(round=rnd, **checks(cases, n)))
                print(f'round {rnd} targets: {rounds[-1]["met"]}', flush=True)
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)     # the logs (and the store unless --store)
    result = {
        'command': shlex.join(['python', 'benchmarks/bench_recall_load.py', *sys.argv[1:]]),
        'date': started.strftime('%Y-%m-%d %H:%M UTC'), 'machine': dds_bench.machine(),
        'load_start': load_start, 'load_end': dds_bench.loadavg(), 'size': args.size,
        'rounds': args.rounds, 'clients': args.clients, 'seconds': args.seconds,
        'single_seconds': args.single_seconds, 'ingest_rate': args.ingest_rate,
        'timeout': args.timeout, 'node_params': [*NODE_PARAMS, *args.node_param],
        'summary': summarise(rows, rounds), 'per_round': rounds, 'rows': rows}
    dds_bench.write_result(result, markdown(result), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
