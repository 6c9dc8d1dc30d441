#!/usr/bin/env bash
# Needs both trees set up: git worktree add /work/base d893798 && (cd /work/base && ./tools/setup.sh)
# Alternating runs of d893798 (/work/base) and the redesign (/work/main), same machine, same commands.
set -u
out=${OUT:-/tmp/bench}
for round in 1 2 3; do
  for side in base main; do
    dir=/work/$side
    ( cd $dir && source tools/env.sh && export OMP_NUM_THREADS=1 &&
      python benchmarks/bench_index.py --sizes 100000 --queries 200 --out $out/index_${side}_$round.json > $out/index_${side}_$round.log 2>&1
      python benchmarks/bench_service.py --size 100000 --queries 300 --store /tmp/bench100k/store --out $out/service_${side}_$round.json > $out/service_${side}_$round.log 2>&1
      python benchmarks/bench_consolidation.py --laps 3 --throughput 20000 100000 --throughput-storage memory sqlite --repeat 3 --out $out/consol_${side}_$round.json > $out/consol_${side}_$round.log 2>&1
    )
    echo "$(date +%T) done $side $round $(uptime | sed 's/.*load/load/')" >> $out/progress.log
  done
done
echo finished >> $out/progress.log
