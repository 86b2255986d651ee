#!/usr/bin/env bash
# Correct a model's tracks in CVAT and fine-tune on the corrections:
# segment -> review -> export for CVAT -> (correct in CVAT) -> import -> fine-tune.
#
#   bash examples/cvat_roundtrip.sh VIDEOS CHECKPOINT [PRESET]
#
# VIDEOS: a video file, a frame folder, or a folder of them (what `vistr segment` takes).
# CHECKPOINT: the model to segment with and fine-tune (a vistr checkpoint or vistr_r50.pth).
# PRESET: the recipe to fine-tune with (default vistr_r50; `tiny` for the quickstart's model).
set -euo pipefail
VIDEOS=${1:?usage: cvat_roundtrip.sh VIDEOS CHECKPOINT [PRESET]}
CKPT=${2:?usage: cvat_roundtrip.sh VIDEOS CHECKPOINT [PRESET]}
PRESET=${3:-vistr_r50}
WORK=${WORK:-cvat-work}
run() { echo "+ $*"; "$@"; }

# 1. Segment. --cvat writes OUT/<video>/annotations.xml (CVAT for video 1.1): one <track> per object,
#    polygons (or CVAT masks where a polygon cannot hold the shape), keyframes where it changes,
#    `outside` where the object is absent, attributes score / vistr_track_id / needs_review.
run vistr segment "$VIDEOS" -c "$CKPT" -o "$WORK/segment" --cvat --force

# 2. Review: what to check first, and why (review.json, review.csv, a table of the worst items).
#    --cvat rewrites annotations.xml with needs_review from these thresholds.
for out in "$WORK"/segment/*/; do
    run vistr review "$out" --cvat --force
    run vistr render "$out" --review "$out/review.json" -o "$out/review.mp4" --force
done

# 3. In CVAT, per video: create a task from its frames (mode: interpolation), labels from
#    $WORK/segment/<video>/annotations.xml's <labels> (same names; add the attributes score,
#    vistr_track_id and needs_review to keep them), then Actions > Upload annotations >
#    "CVAT for video 1.1" > annotations.xml. Filter by needs_review==true, fix those tracks (merge
#    fragments, split switched ids, delete false ones, fix classes and masks), then
#    Export task dataset > "CVAT for video 1.1" and unzip it into $WORK/corrected/<video>/
#    (it holds annotations.xml and images/). Without CVAT here, the uncorrected files stand in:
if [ ! -d "$WORK/corrected" ]; then
    for out in "$WORK"/segment/*/; do
        mkdir -p "$WORK/corrected/$(basename "$out")"
        cp "$out/annotations.xml" "$WORK/corrected/$(basename "$out")/"
    done
fi

# 4. CVAT -> YouTube-VIS (train/instances.json, one annotation per track, RLE masks), checked.
#    Frames are taken from <video>/images/ of the CVAT export when present.
run vistr data convert "$WORK/corrected" "$WORK/ytvis" --from cvat --to ytvis --force
run vistr data check "$WORK/ytvis" --split train --no-files

# 5. Fine-tune on the corrections (needs the frames: export "with images" from CVAT).
if [ -n "$(ls -A "$WORK/ytvis/train/JPEGImages" 2>/dev/null)" ]; then
    run vistr train --data "$WORK/ytvis" --preset "$PRESET" --out "$WORK/finetuned" --init-from "$CKPT" --force
else
    echo "no frames in $WORK/ytvis/train/JPEGImages: export from CVAT with images, then run:"
    echo "  vistr train --data $WORK/ytvis --preset $PRESET --out $WORK/finetuned --init-from $CKPT"
fi
