#!/usr/bin/env bash
# Segment your videos with the released VisTR weights (vistr_r50.pth: 36.2 AP, vistr_r101.pth:
# 40.1 AP on YouTube-VIS 2019; download them from the links in the official VisTR README).
#
#   bash examples/official_weights.sh vistr_r50.pth my_videos/ [out]
set -euo pipefail
CKPT=${1:?usage: official_weights.sh CHECKPOINT VIDEOS... }
VIDEOS=${2:?usage: official_weights.sh CHECKPOINT VIDEOS [OUT]}
OUT=${3:-out}

# Every video file and frame folder under VIDEOS; indexed PNG masks, MOTS text and an overlay
# per video. Rerunning skips finished videos; --force redoes them.
vistr segment "$VIDEOS" --checkpoint "$CKPT" -o "$OUT" --png --mots --render --score-thr 0.1

# The results of each video are a YouTube-VIS results list: render it again with other settings...
for results in "$OUT"/*/results.json; do
  vistr render "$results" -o "$(dirname "$results")/overlay_legend.mp4" --legend --score-thr 0.3 --force
done
