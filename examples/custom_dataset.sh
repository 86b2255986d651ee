#!/usr/bin/env bash
# Train VisTR on your own YouTube-VIS-format data, with a held-out split to measure it.
#
#   bash examples/custom_dataset.sh /path/to/ytvis [runs/mydata]
#
# DATA is a YouTube-VIS 2019 (train.json + train/JPEGImages), 2021 (train/instances.json +
# train/JPEGImages), reference-style (annotations/instances_train_sub.json) or OVIS folder.
set -euo pipefail
DATA=${1:?usage: custom_dataset.sh DATA [RUN]}
RUN=${2:-runs/custom}

# 1. Check the annotations and that every frame file exists (exits non-zero on any problem).
vistr data check "$DATA" --split train

# 2. Hold out 10% of the training videos: DATA/annotations/split_{train,valid}.json.
#    (YouTube-VIS valid ground truth is private and its server is closed.)
vistr data split "$DATA" --valid-fraction 0.1 --seed 0

# 3. Train on the rest. Start from an official checkpoint if you have one (its class head is
#    re-initialized for your classes); evaluate on the held-out split every 2000 steps.
INIT=()
[ -f vistr_r50.pth ] && INIT=(--init-from vistr_r50.pth)
vistr train --data "$DATA" --split split_train --preset vistr_r50 --out "$RUN" \
    "${INIT[@]}" --eval-every 2000 --eval-split split_valid --amp

# 4. Score the final model on the held-out split (writes results.json and metrics.json).
vistr eval --data "$DATA" --split split_valid --checkpoint "$RUN/last.pt" --json "$RUN/eval/metrics.json"
