#!/usr/bin/env bash
# Every `ahunt bench paper` run recorded in docs/BENCHMARKS.md, in order.
# Usage: bash bench/paper_suite.sh [digits|mnist|ablations|ztf-real|all]   (results: bench/results, docs/img)
set -euo pipefail
cd "$(dirname "$0")/.."
AHUNT=${AHUNT:-.venv/bin/ahunt}
JOBS=${JOBS:-2}
R=bench/results
I=docs/img
what=${1:-all}
run() { local name=$1; shift; echo "== $name: ahunt bench paper $*"; \
        "$AHUNT" bench paper "$@" --jobs "$JOBS" --json "$R/$name.json" --plot "$I/$name.png" \
        | tee "$R/$name.txt"; }
MNIST="--dataset mnist --normals 0,1 --anomaly 5 --pre 500,900 --per-night 170,200 --anomalies-per-night 6 --nights 30 --questions 5"
B="--normals 0,1,2,3,4,6,7,8,9"
PAPER=iforest-raw,iforest-static,iforest-dynamic,ahunt
# Issue 7: the active anomaly discovery peers (coniferest), optional methods.
PEERS=aad-raw,aad-static,pine-raw,aad-raw-boot
# The learner as issue 2 left it (before issue 7's longer fine-tuning and label smoothing).
ISSUE2_LEARNER="--min-epoch-samples 512 --label-smoothing 0"
# The AHUNT settings kept for real stamps (docs/BENCHMARKS.md "Real ZTF alerts").
REAL_SETTINGS="--novelty-mix 0 --strategy top:0.67,random:0.33"

if [[ $what == digits || $what == all ]]; then
    run digits-C --seeds 5 --methods $PAPER,$PEERS
    run digits-B --seeds 5 $B --methods $PAPER,$PEERS
    run digits-D --seeds 5 --distractor 9 --methods $PAPER,ahunt-naive,$PEERS
fi
if [[ $what == mnist || $what == all ]]; then
    run mnist-paper --seeds 5 $MNIST
    # The peers in their own run, so mnist-paper keeps issue 2's cost measurement.
    run mnist-peers --seeds 5 $MNIST --methods $PEERS
fi
if [[ $what == ztf-real || $what == all ]]; then
    # Issue 12: real ZTF packets (../shared/data/alerts/ztf-real and its weak labels).
    # The recorded runs leave out the three methods that train a second CNN (iforest-static,
    # iforest-dynamic, aad-static) for CPU time on the shared 2-core machine; add them with
    # --methods $PAPER,$PEERS.
    REAL="--dataset ztf-real --seeds 5 --methods iforest-raw,ahunt,aad-raw,pine-raw,aad-raw-boot $REAL_SETTINGS"
    for s in R1 R2 R3; do run "ztf-real-$s" --scenario $s $REAL; done
fi
if [[ $what == ablations || $what == all ]]; then
    for nm in 0 1; do run "ablation-digits-B-novelty$nm" --seeds 5 $B --methods ahunt --novelty-mix $nm; done
    # Issue 7: each kept learner option switched back off, alone and together.
    run ablation-digits-B-mes512 --seeds 5 $B --methods ahunt --min-epoch-samples 512
    run ablation-digits-B-ls0 --seeds 5 $B --methods ahunt --label-smoothing 0
    # Label smoothing's gain is within 5-seed noise on B; 10 seeds tell it apart.
    run ablation-digits-B-10seeds --seeds 10 $B --methods ahunt
    run ablation-digits-B-ls0-10seeds --seeds 10 $B --methods ahunt --label-smoothing 0
    run ablation-digits-B-issue2 --seeds 5 $B --methods ahunt $ISSUE2_LEARNER
    run ablation-digits-D-issue2 --seeds 5 --distractor 9 --methods ahunt $ISSUE2_LEARNER
    run ablation-digits-C-issue2 --seeds 5 --methods ahunt $ISSUE2_LEARNER
    run ablation-mnist-issue2 --seeds 5 $MNIST --methods ahunt $ISSUE2_LEARNER
    for s in uncertain random top:0.8,random:0.2; do
        run "ablation-mnist-strategy-${s//[:,.]/_}" --seeds 5 $MNIST --methods ahunt --strategy "$s"
    done
    run ablation-mnist-loss-focal --seeds 5 $MNIST --methods ahunt --loss focal
fi
