"""Re-linking a finished video's tracks by colour (vistr_core.inference.relink)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from vistr_core.inference.relink import (
    WindowEntry,
    colour_steps,
    cut_tracks,
    gaps,
    giou_floor,
    lasting_steps,
    linked_id,
    relink,
)

RED, BLUE, GREEN = (200.0, 30.0, 30.0), (150.0, 40.0, 90.0), (30.0, 200.0, 30.0)
STRIDE = 3  # stream positions between window starts (T = 4, overlap 1)


def _entry(window: int, colour, box=(10.0, 10.0, 20.0, 20.0), label: int = 0) -> WindowEntry:
    start = window * STRIDE
    return WindowEntry(
        window=window,
        owns_from=start + (1 if window else 0),
        first=start,
        last=start + 3,
        label=label,
        colour=torch.tensor(colour),
        first_box=torch.tensor(box),
        last_box=torch.tensor(box),
    )


def _track(windows, colours, **kwargs) -> list[WindowEntry]:
    return [_entry(w, c, **kwargs) for w, c in zip(windows, colours, strict=True)]


SETTINGS = {
    "span": 3,
    "cut_colour": 30.0,
    "join_colour": 30.0,
    "max_gap": 24,
    "min_giou": -0.2,
    "scale": 64.0,
}


def test_colour_steps_finds_one_lasting_step_only():
    switched = _track(range(12), [RED] * 6 + [BLUE] * 6)
    assert colour_steps(switched, span=3, threshold=30.0) == [6]
    assert colour_steps(_track(range(12), [RED] * 12), span=3, threshold=30.0) == []
    # one stray window is outvoted by the medians on either side: no cut
    stray = _track(range(12), [RED] * 5 + [BLUE] + [RED] * 6)
    assert colour_steps(stray, span=3, threshold=30.0) == []
    # too short to tell a step from a stray
    assert colour_steps(_track(range(5), [RED] * 2 + [BLUE] * 3), span=3, threshold=30.0) == []
    # a step smaller than the threshold stays
    near = _track(range(12), [RED] * 6 + [(210.0, 40.0, 40.0)] * 6)
    assert colour_steps(near, span=3, threshold=30.0) == []


def test_unknown_colours_never_cut():
    entries = _track(range(12), [RED] * 6 + [(math.nan,) * 3] * 6)
    assert colour_steps(entries, span=3, threshold=30.0) == []


def test_two_tracks_that_swapped_are_swapped_back():
    one = _track(range(12), [RED] * 6 + [BLUE] * 6)
    two = _track(range(12), [BLUE] * 6 + [RED] * 6)
    parts = relink({1: one, 2: two}, **SETTINGS).parts
    cut = one[6].owns_from
    red = {linked_id(parts[1], 0), linked_id(parts[2], cut)}
    blue = {linked_id(parts[2], 0), linked_id(parts[1], cut)}
    assert len(red) == 1 and len(blue) == 1 and red != blue
    assert linked_id(parts[1], cut - 1) == linked_id(parts[1], 0)


def test_a_switch_to_a_newcomer_goes_back_to_the_lost_track():
    """Track 1 follows red, then takes over blue (whose track 2 ends there); red goes on as track 3."""
    one = _track(range(12), [RED] * 6 + [BLUE] * 6)
    two = _track(range(6), [BLUE] * 6)
    three = _track(range(6, 12), [RED] * 6)
    parts = relink({1: one, 2: two, 3: three}, **SETTINGS).parts
    late = one[6].owns_from
    assert linked_id(parts[1], 0) == linked_id(parts[3], late)  # red, throughout
    assert linked_id(parts[2], 0) == linked_id(parts[1], late)  # blue, throughout
    assert linked_id(parts[1], 0) != linked_id(parts[2], 0)


@pytest.mark.parametrize(
    ("later", "why"),
    [
        (_track(range(6, 12), [RED] * 6, label=1), "another class"),
        (_track(range(6, 12), [GREEN] * 6), "another colour"),
        (_track(range(6, 12), [RED] * 6, box=(200.0, 200.0, 210.0, 210.0)), "too far"),
        (_track(range(20, 26), [RED] * 6), "too late"),
    ],
)
def test_pieces_that_do_not_continue_each_other_stay_apart(later, why):
    earlier = _track(range(6), [RED] * 6)
    parts = relink({1: earlier, 2: later}, **SETTINGS).parts
    assert linked_id(parts[1], 0) != linked_id(parts[2], later[0].owns_from), why


def test_a_lost_track_is_joined_to_its_return():
    earlier = _track(range(6), [RED] * 6)
    later = _track(range(8, 14), [RED] * 6)  # 2 windows later: within max_gap
    parts = relink({1: earlier, 2: later}, **SETTINGS).parts
    assert linked_id(parts[1], 0) == linked_id(parts[2], later[0].owns_from)


def test_the_giou_floor_loosens_with_the_gap_to_any_boxes_at_max_gap():
    floors = [giou_floor(-0.5, gap, 96) for gap in range(0, 120, 4)]
    assert floors[0] == -0.5 and giou_floor(-0.5, 96, 96) == -1.0 and giou_floor(-0.5, 48, 96) == -0.75
    assert all(a >= b for a, b in itertools.pairwise(floors)) and min(floors) == -1.0
    assert giou_floor(-0.5, -1, 96) == -0.5  # overlapping hand-overs count as no gap


def test_a_return_far_away_joins_after_a_long_miss_only():
    """GIoU -0.5 between the boxes: too far at the next frame (floor -0.2), near enough after a miss
    of 17 frames (floor -0.77): the object moved while it was missed."""
    earlier = _track(range(6), [RED] * 6)
    far = (40.0, 10.0, 50.0, 20.0)
    for start, joined in ((6, False), (12, True)):
        later = _track(range(start, start + 6), [RED] * 6, box=far)
        parts = relink({1: earlier, 2: later}, **SETTINGS).parts
        assert (linked_id(parts[1], 0) == linked_id(parts[2], later[0].owns_from)) == joined, start


def test_a_hand_over_between_two_slots_joins_within_the_overlap():
    """Track 2 takes the object over two windows before track 1 lets go: joined when ``overlap``
    allows two windows, and track 1's last two windows get an id of their own, listed as a rest."""
    earlier, later = _track(range(8), [RED] * 8), _track(range(6, 14), [RED] * 8)
    apart = relink({1: earlier, 2: later}, **SETTINGS).parts
    assert linked_id(apart[1], 0) != linked_id(apart[2], later[0].owns_from)
    for allowed in (2, 3):
        parts = relink({1: earlier, 2: later}, **{**SETTINGS, "overlap": allowed}).parts
        assert linked_id(parts[1], 0) == linked_id(parts[2], later[0].owns_from)
        rest = linked_id(parts[1], earlier[6].owns_from)
        assert rest not in {linked_id(parts[1], 0), linked_id(parts[2], later[0].owns_from)}
        assert linked_id(parts[1], earlier[5].owns_from) == linked_id(parts[1], 0)
        assert relink({1: earlier, 2: later}, **{**SETTINGS, "overlap": allowed}).rests == {rest}
    assert relink({1: earlier, 2: later}, **SETTINGS).rests == frozenset()
    one = relink({1: earlier, 2: later}, **{**SETTINGS, "overlap": 1}).parts  # 2 windows: too many
    assert linked_id(one[1], 0) != linked_id(one[2], later[0].owns_from)


def test_a_colour_step_that_no_other_track_explains_stays_one_track():
    """An object that moves into shadow changes colour for good, and no other piece takes up either
    side: the cut is undone and no join is reported."""
    shaded = _track(range(12), [RED] * 6 + [(150.0, 20.0, 20.0)] * 6)
    assert colour_steps(shaded, span=3, threshold=30.0) == [6]
    relinked = relink({1: shaded, 2: _track(range(12), [GREEN] * 12)}, **SETTINGS)
    assert relinked.parts == {1: [(0, 1), (shaded[6].owns_from, 1)], 2: [(0, 2)]}
    assert relinked.joins == []


def test_a_passing_taint_is_not_a_switch():
    """While a mask covers part of another object (a crossing), the track's colour is mixed for a
    few windows and fades back (colours from a quickstart video's green square): window by window
    that looks like one lasting step, but the two sides are one colour as wholes. The track stays
    whole and is not joined to a piece of the mixed colour that ended just before."""
    green = (24.0, 192.0, 47.0)
    fading = [(40.0, 152.0, 95.0), (40.0, 165.0, 84.0), (41.0, 176.0, 66.0), (37.0, 183.0, 59.0)]
    fading += [(39.0, 177.0, 65.0), (28.0, 189.0, 50.0)]
    tainted = _track(range(24), [green] * 8 + fading + [green] * 10)
    steps = colour_steps(tainted, span=3, threshold=20.0)
    assert steps == [8]
    assert lasting_steps(tainted, steps, 20.0) == []
    twin = _track(range(4, 7), [(41.0, 160.0, 84.0)] * 3, box=(12.0, 10.0, 22.0, 20.0))
    settings = {**SETTINGS, "cut_colour": 20.0, "join_colour": 20.0}
    parts = relink({1: tainted, 2: twin}, **settings).parts
    assert {linked_id(parts[1], e.owns_from) for e in tainted} == {linked_id(parts[1], 0)}
    assert linked_id(parts[2], twin[0].owns_from) != linked_id(parts[1], 0)


def test_a_switch_through_mixed_windows_stays_cut():
    """A real switch may pass through a few mixed windows too: the pieces on either side differ as
    wholes, and the cut stays."""
    mixed = (175.0, 35.0, 60.0)
    switched = _track(range(20), [RED] * 8 + [mixed] * 3 + [BLUE] * 9)
    steps = colour_steps(switched, span=3, threshold=30.0)
    assert len(lasting_steps(switched, steps, 30.0)) == 1
    assert len(cut_tracks({1: switched}, 3, 30.0)) == 2


def test_of_two_continuations_the_nearer_in_time_wins():
    """Track 1 ends at window 5. Track 2 takes over at once, its box shifted a little; track 3,
    a box exactly where track 1's was, starts 23 frames later (while track 2 is still there, so
    they cannot be one chain). The box alone prefers track 3; the frames between prefer track 2."""
    box = (10.0, 10.0, 20.0, 20.0)
    one = _track(range(6), [RED] * 6, box=box)
    two = _track(range(6, 18), [RED] * 12, box=(12.0, 10.0, 22.0, 20.0))  # GIoU 0.67 with one
    three = _track(range(14, 21), [RED] * 7, box=box)  # GIoU 1, gap 23 of max_gap 24
    parts = relink({1: one, 2: two, 3: three}, **SETTINGS).parts
    assert linked_id(parts[2], two[0].owns_from) == linked_id(parts[1], 0)
    assert linked_id(parts[3], three[0].owns_from) != linked_id(parts[1], 0)


def test_a_track_that_began_as_junk_gives_its_object_back():
    """Track 2's slot held junk elsewhere for three windows (same colour and class), skipped four
    and then picked up the object that track 1 held until then: cut at its gap, the object's piece
    continues track 1 and the junk stays apart."""
    one = [_entry(w, RED, box=(10.0 + w, 10.0, 20.0 + w, 20.0)) for w in range(10)]
    junk = [_entry(w, RED, box=(30.0, 10.0, 40.0, 20.0)) for w in range(4, 7)]
    picked_up = [_entry(w, RED, box=(10.0 + w, 10.0, 20.0 + w, 20.0)) for w in range(11, 21)]
    assert gaps(junk + picked_up) == [3]
    parts = relink({1: one, 2: junk + picked_up}, **SETTINGS).parts
    assert linked_id(parts[2], picked_up[0].owns_from) == linked_id(parts[1], 0)
    assert linked_id(parts[2], junk[0].owns_from) != linked_id(parts[1], 0)


def test_a_gap_that_nothing_else_explains_keeps_one_id():
    gapped = _track([*range(6), *range(8, 14)], [RED] * 12)
    assert gaps(gapped) == [6]
    parts = relink({1: gapped, 2: _track(range(14), [GREEN] * 14)}, **SETTINGS).parts
    assert {linked_id(parts[1], e.owns_from) for e in gapped} == {linked_id(parts[1], 0)}


def test_a_join_outvotes_a_tainted_seam_with_more_windows():
    """The piece after a seam starts with two windows tinted 40 levels (its mask still covers part
    of another object; too little for a cut at 60): the median of its first 3 windows is tinted and
    the join (within 20 levels) fails; of its first 6 it is the object's colour, and the join is
    made."""
    tinted = (200.0, 30.0, 70.0)
    earlier = _track(range(6), [RED] * 6)
    later = _track(range(6, 18), [tinted] * 2 + [RED] * 10)
    settings = {**SETTINGS, "cut_colour": 60.0, "join_colour": 20.0}
    for join_span, joined in ((3, False), (6, True)):
        parts = relink({1: earlier, 2: later}, **settings, join_span=join_span).parts
        assert (linked_id(parts[2], later[0].owns_from) == linked_id(parts[1], 0)) is joined


def test_a_hand_over_counts_the_windows_the_earlier_piece_still_has_masks_in():
    """Track 1's last mask is a stray one 5 windows after the rest: it has a mask in 1 window after
    track 2 takes over (and the gap cuts it off anyway), and is continued by it. Track 3 keeps its object for 6 windows after a
    fragment (track 4) appears with masks in 2 of them: not a hand-over."""
    stray = _track([*range(10), 15], [RED] * 11)
    taker = _track(range(10, 20), [RED] * 10)
    solid = _track(range(12), [BLUE] * 12, box=(60.0, 60.0, 70.0, 70.0))
    fragment = _track([3, 6], [BLUE] * 2, box=(60.0, 60.0, 70.0, 70.0))
    parts = relink({1: stray, 2: taker, 3: solid, 4: fragment}, **{**SETTINGS, "overlap": 2}).parts
    assert linked_id(parts[2], taker[0].owns_from) == linked_id(parts[1], 0)
    assert linked_id(parts[4], fragment[0].owns_from) != linked_id(parts[3], 0)
    assert {linked_id(parts[3], e.owns_from) for e in solid} == {linked_id(parts[3], 0)}


def test_a_later_window_whose_first_mask_comes_first_is_still_a_candidate():
    """Windows of 6 frames that overlap by 3: track 1's only mask is the last frame of window 0
    (frame 5), track 2's first mask is the first frame of window 1 (frame 3), before it. Track 2
    still continues track 1."""
    box, red = torch.tensor([10.0, 10.0, 20.0, 20.0]), torch.tensor(RED)
    one = [WindowEntry(0, 0, 5, 5, 0, red, box, box)]
    two = [WindowEntry(w, 3 * w + 2, 3 * w, 3 * w + 5, 0, red, box, box) for w in range(1, 6)]
    parts = relink({1: one, 2: two}, **SETTINGS).parts
    assert linked_id(parts[2], two[0].owns_from) == linked_id(parts[1], 0)


def test_tracks_without_colour_steps_keep_their_identities():
    history = {1: _track(range(10), [RED] * 10), 2: _track(range(10), [BLUE] * 10, box=(40.0, 40, 50, 50))}
    parts = relink(history, **SETTINGS).parts
    assert parts == {1: [(0, 1)], 2: [(0, 2)]}
    assert len(cut_tracks(history, 3, 30.0)) == 2


# -- the segmenter: a swap the window rule makes is undone after the video ------------------------

from test_segment_colour import LookAlikesModel, _columns, _look_alikes_video  # noqa: E402

from vistr_core.config import InferConfig  # noqa: E402
from vistr_core.errors import ConfigError  # noqa: E402
from vistr_core.inference.segment import OutputOptions, segment_videos  # noqa: E402


def _segment(tmp_path, video, name: str, **settings):
    return _segment_with(tmp_path, video, LookAlikesModel(), name, **settings)


def _segment_with(tmp_path, video, model, name: str = "relinked", **settings):
    out = tmp_path / name
    infer = InferConfig(**{"overlap": 2, "colour_weight": 0.0, **settings})  # the rule alone swaps them
    segment_videos([video], out, model=model, infer=infer, device="cpu", outputs=OutputOptions(png=True))
    folder = out / video.stem
    return (
        json.loads((folder / "results.json").read_text()),
        json.loads((folder / "meta.json").read_text()),
        folder,
    )


def test_relinking_undoes_a_swap_of_look_alikes(tmp_path):
    video = _look_alikes_video(tmp_path / "pair.mp4", count=60)
    swapped, _, _ = _segment(tmp_path, video, "rule", relink_colour=None)
    relinked, meta, folder = _segment(tmp_path, video, "relinked", relink_colour=30.0)
    ends = lambda track: (_columns(track["segmentations"][0]), _columns(track["segmentations"][-1]))  # noqa: E731
    assert len(swapped) == 2 and all(first != last for first, last in map(ends, swapped))
    assert len(relinked) == 2 and all(first == last for first, last in map(ends, relinked))
    # relinking only relabels: every frame holds the same masks, and the PNG label maps agree
    for t in range(60):
        masks = [sorted(_columns(track["segmentations"][t])) for track in relinked]
        assert sorted(masks) == sorted(sorted(_columns(track["segmentations"][t])) for track in swapped)
        labels = np.array(Image.open(folder / "masks" / f"{t:05d}.png"))
        if set(masks[0]).isdisjoint(masks[1]):  # where the model gives both squares to both, one wins
            for track, columns in zip(relinked, masks, strict=True):
                assert sorted(np.flatnonzero((labels == track["track_id"]).any(0)).tolist()) == columns
    joins = [link for link in meta["links"] if link["kind"] == "relink"]
    assert len(joins) == 2 and {link["track_id"] for link in joins} == {1, 2}
    assert [t["num_frames"] for t in meta["tracks"]] == [60, 60]


def test_relinking_changes_nothing_without_colour_steps(tmp_path):
    video = _look_alikes_video(tmp_path / "pair.mp4", count=60)
    model_settings = {"colour_weight": InferConfig.colour_weight}  # the rule keeps both tracks here
    plain = _segment(tmp_path, video, "plain", relink_colour=None, **model_settings)[0]
    relinked = _segment(tmp_path, video, "relinked", relink_colour=30.0, **model_settings)[0]
    assert plain == relinked


def test_relink_colour_is_checked():
    assert InferConfig(relink_colour=0.0).relink_colour is None  # 0 = off, as on the command line
    with pytest.raises(ConfigError, match=r"--relink-colour must be >= 0 \(0 = off\), got -1.0"):
        InferConfig(relink_colour=-1.0)


def test_matching_per_connected_group_equals_one_global_matching():
    from scipy.optimize import linear_sum_assignment

    from vistr_core.inference.relink import NO_LINK, _assignment

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 30))
        costs = np.where(rng.random((n, n)) < 0.1, rng.normal(size=(n, n)), NO_LINK)
        rows, cols = linear_sum_assignment(costs)
        kept = [(r, c) for r, c in zip(rows, cols, strict=True) if costs[r, c] < NO_LINK]
        possible = zip(*np.nonzero(costs < NO_LINK), strict=True)
        grouped = _assignment({(int(i), int(j)): costs[i, j] for i, j in possible})
        assert len(grouped) == len(kept)
        assert sum(costs[i, j] for i, j in grouped.items()) == pytest.approx(
            sum(costs[r, c] for r, c in kept)
        )


class HandOverModel(LookAlikesModel):
    """One bright square, held by slot 0 in windows 0-3 and by slot 2 from window 2 on: in windows 2
    and 3 both slots hold it (a VisTR's slots hand an object over like this)."""

    def forward(self, frames, pad_mask=None):
        out = super().forward(frames, pad_mask)  # window < swap: slot 0 the bright square
        window = self.calls - 1
        logits, masks = out["pred_logits"].clone(), out["pred_masks"].clone()
        masks[0, 2], logits[0, 2] = masks[0, 0], logits[0, 0]
        for slot, held in ((0, window <= 3), (2, window >= 2)):
            if not held:
                masks[0, slot], logits[0, slot] = -10.0, logits[0, 3]
        masks[0, 1], logits[0, 1] = -10.0, logits[0, 3]  # no dark square here
        return {**out, "pred_logits": logits, "pred_masks": masks}


def test_a_hand_over_shows_one_track_without_the_earlier_slots_copy(tmp_path):
    """The window rule keeps slot 0's track until it lets go and starts one for slot 2; re-linking
    joins them and leaves out slot 0's copy in the windows both hold the square."""
    video = _look_alikes_video(tmp_path / "one.mp4", count=48, right=(0, 0, 0, 0))
    rule = _segment_with(tmp_path, video, HandOverModel(swap=99), "rule", relink_colour=None)[0]
    assert len(rule) == 2
    relinked, meta, _ = _segment_with(tmp_path, video, HandOverModel(swap=99), relink_colour=30.0)
    assert len(relinked) == 1 and all(relinked[0]["segmentations"])  # every frame, one id
    assert [t["num_frames"] for t in meta["tracks"]] == [48]
    assert {link["track_id"] for link in meta["links"]} == {1}
