#!/usr/bin/env python3
"""Markdown tables of quality benchmark results (``bench_quality.py --out``), for
``docs/benchmarks/quality.md``: one or more JSON files, their runs merged per scenario.

    python benchmarks/quality_report.py docs/benchmarks/quality.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KINDS = ('plain', 'synonym', 'category', 'colour', 'room', 'use')


def merged(paths: list[Path]) -> tuple[dict, list[dict]]:
    scenarios: dict[str, list] = {}
    heads = []
    for path in paths:
        doc = json.loads(path.read_text())
        heads.extend(doc.get('sessions') or [  # a merged file keeps its sessions' heads
            {k: doc.get(k) for k in ('date', 'date_after', 'commit', 'command',
                                     'uptime_before', 'uptime_after', 'machine')}])
        for name, rows in doc['scenarios'].items():
            for row in rows:     # live runs apart: they are not the bag's figures
                key = f'{name} (live)' if row['run'] == 'live' else name
                scenarios.setdefault(key, []).append(row)
    return scenarios, heads


def frac(n: int, d: int) -> str:
    return f'{n}/{d} ({100.0 * n / d:.1f} %)' if d else '-'


def summary(scenarios: dict) -> list[str]:
    out = ['| scenario | run (seed) | (a) top-1 within 0.5 m | (b) questions | via table | '
           'via model | (c) ghosts | (d) per thing | (e) moves noticed | (f) lap 6 / lap 2 | '
           '(g) false forgets | record / ingest [s] | load before -> after |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for name, rows in scenarios.items():
        for r in rows:
            q = r['questions']
            via = {k: frac(v['answered'], v['applicable']) for k, v in q['via'].items()}
            moves = r['moves']
            noticed = sum(bool(m.get('noticed')) for m in moves)
            out.append(
                f'| {name} | {r["run"]} ({r["detector_seed"]}) | '
                f'{frac(r["top1"]["right"], r["top1"]["labels"])} | '
                f'{frac(q["all"]["answered"], q["all"]["applicable"])} | '
                f'{via.get("table", "-")} | {via.get("model", "-")} | '
                f'{frac(r["ghosts"]["n"], r["ghosts"]["current"])} | {r["per_thing"]} | '
                f'{noticed}/{len(moves)} | {r.get("size_ratio") or "-"} | '
                f'{forgets(r)} | {record_ingest(r)} | '
                f'{r["loadavg_before"].split()[0]} -> {r["loadavg_after"].split()[0]} |')
    return out


def forgets(r: dict) -> str:
    """(g): things lost / true things (forgotten as label noise, of them naming a real
    thing); '-' for runs before it was measured, and live runs."""
    f = r.get('false_forgets')
    if not f:
        return '-'
    return (f'{frac(len(f["things_lost"]), f["things"])} ({f["forgotten"]}, '
            f'{f["naming_real"]})')


def record_ingest(r: dict) -> str:
    if r['run'] == 'live':
        return f'live, {r["wall_s"]} in all'
    return f'{r.get("recorded_s") or "cached"} / {r.get("ingest_wall_s", "-")}'


def kinds(scenarios: dict) -> list[str]:
    out = ['| scenario | ' + ' | '.join(KINDS) + ' |',
           '| --- |' + ' --- |' * len(KINDS)]
    for name, rows in scenarios.items():
        cells = []
        for kind in KINDS:
            parts = [r['questions']['kind'].get(kind) for r in rows]
            parts = [p for p in parts if p]
            a = sum(p['answered'] for p in parts)
            n = sum(p['applicable'] for p in parts)
            cells.append(frac(a, n))
        out.append(f'| {name} ({len(rows)} runs) | ' + ' | '.join(cells) + ' |')
    return out


def moves(scenarios: dict) -> list[str]:
    out = ['| scenario | thing | moved after lap | frames detected per lap (runs) | '
           'noticed within one visit (runs) | noticed by lap | why not |',
           '| --- | --- | --- | --- | --- | --- | --- |']
    for name, rows in scenarios.items():
        labels = [m['label'] for m in rows[0]['moves']]
        for label in labels:
            ms = [next(m for m in r['moves'] if m['label'] == label) for r in rows]
            frames = '; '.join(','.join(map(str, m['frames_per_lap'])) for m in ms)
            noticed = ''.join('y' if m.get('noticed') else 'n' for m in ms)
            by = ', '.join(str(m.get('noticed_by_lap') or '-') for m in ms)
            why = '; '.join(sorted({m['why'] for m in ms if m.get('why')}))
            out.append(f'| {name} | {label} | {ms[0]["after_lap"]} | {frames} | {noticed} | '
                       f'{by} | {why} |')
    return out


def misses(scenarios: dict) -> list[str]:
    out = []
    for name, rows in scenarios.items():
        top1 = sorted({k for r in rows for k, v in r['top1']['per_label'].items()
                       if not v['right']})
        questions = sorted({q['ask'] for r in rows for q in r['question_rows']
                            if q['applicable'] and not q['position']})
        sizes = '; '.join(' '.join(str(v) for v in r['sizes'].values())
                          for r in rows if r.get('sizes'))
        out.append(f'- **{name}**: top-1 missed (any run): {", ".join(top1) or "none"}. '
                   f'Questions not answered (any run): {"; ".join(questions) or "none"}. '
                   f'Store size per lap: {sizes or "-"}.')
    return out


def main(argv: list[str]) -> int:
    scenarios, heads = merged([Path(p) for p in argv])
    for head in heads:
        print(f'- `{head["command"]}` at commit {head["commit"]}, {head["date"]} -> '
              f'{head["date_after"]}; before: `{head["uptime_before"]}`; after: '
              f'`{head["uptime_after"]}`')
    print()
    for block in (summary(scenarios), kinds(scenarios), moves(scenarios), misses(scenarios)):
        print('\n'.join(block))
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
