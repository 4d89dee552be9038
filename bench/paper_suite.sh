#!/usr/bin/env bash
# Every `ahunt bench paper` run recorded in docs/BENCHMARKS.md, in order.
# Usage: bash bench/paper_suite.sh [digits|mnist|ablations|all]   (results: bench/results, docs/img)
set -euo pipefail
cd "$(dirname "$0")/.."
AHUNT=${AHUNT:-.venv/bin/ahunt}
R=bench/results
I=docs/img
what=${1:-all}
run() { local name=$1; shift; echo "== $name: ahunt bench paper $*"; \
        "$AHUNT" bench paper "$@" --json "$R/$name.json" --plot "$I/$name.png" | tee "$R/$name.txt"; }
MNIST="--dataset mnist --normals 0,1 --anomaly 5 --pre 500,900 --per-night 170,200 --anomalies-per-night 6 --nights 30 --questions 5"
B="--normals 0,1,2,3,4,6,7,8,9"

if [[ $what == digits || $what == all ]]; then
    run digits-C --seeds 5
    run digits-B --seeds 5 $B
    run digits-D --seeds 5 --distractor 9 --methods iforest-raw,iforest-static,iforest-dynamic,ahunt,ahunt-naive
fi
if [[ $what == mnist || $what == all ]]; then
    run mnist-paper --seeds 5 $MNIST
fi
if [[ $what == ablations || $what == all ]]; then
    for nm in 0 1; do run "ablation-digits-B-novelty$nm" --seeds 5 $B --methods ahunt --novelty-mix $nm; done
    for s in uncertain random top:0.8,random:0.2; do
        run "ablation-mnist-strategy-${s//[:,.]/_}" --seeds 5 $MNIST --methods ahunt --strategy "$s"
    done
    run ablation-mnist-loss-focal --seeds 5 $MNIST --methods ahunt --loss focal
fi
