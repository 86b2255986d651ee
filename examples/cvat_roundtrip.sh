#!/usr/bin/env bash
# Move mask tracks to CVAT and back, keeping identities and category ids, then retrain.
#
#   bash examples/cvat_roundtrip.sh DATA CHECKPOINT
#
# DATA: a YouTube-VIS folder (any layout vistr reads) whose `train` split you want to correct.
# CHECKPOINT: the model to fine-tune afterwards (a vistr checkpoint or vistr_r50.pth).
set -euo pipefail
DATA=${1:?usage: cvat_roundtrip.sh DATA CHECKPOINT}
CKPT=${2:?usage: cvat_roundtrip.sh DATA CHECKPOINT}
WORK=${WORK:-cvat-work}

# 1. YouTube-VIS -> MOTS: instances/<video>/<frame>.png (16-bit, id = class*1000 + k, what CVAT's
#    "MOTS PNG 1.0" imports), instances_txt/<video>.txt, images/<video>/, labels.txt, and a
#    vistr.json side-car that keeps video ids, annotation ids and category ids.
vistr data convert "$DATA" "$WORK/mots" --split train --to mots --force

# 2. In CVAT: create a task per video from $WORK/mots/images/<video>, upload the zipped
#    $WORK/mots/<video> export as "MOTS PNG 1.0", correct the masks, export "MOTS PNG 1.0" again
#    and unzip it into $WORK/corrected (same layout; copy vistr.json and labels.txt beside it).
#    (Predictions of `vistr segment --mots` are MOTS text in the same id convention.)
[ -d "$WORK/corrected" ] || cp -r "$WORK/mots" "$WORK/corrected"   # no CVAT here: round-trip as is

# 3. MOTS -> YouTube-VIS (train/instances.json + train/JPEGImages), then check it.
vistr data convert "$WORK/corrected" "$WORK/ytvis" --from mots --to ytvis --force
vistr data check "$WORK/ytvis" --split train

# 4. Fine-tune on the corrected data.
vistr train --data "$WORK/ytvis" --preset vistr_r50 --out runs/corrected --init-from "$CKPT" --force
