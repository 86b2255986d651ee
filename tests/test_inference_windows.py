"""Window planning: coverage, end alignment, padding, ownership, bounded buffering."""

from __future__ import annotations

import pytest

from vistr_core.errors import ConfigError
from vistr_core.inference.windows import check_overlap, default_overlap, iter_windows, ownership_cut


def owned_positions(windows):
    """Every window's output positions under the nearest-centre rule."""
    owned = []
    for k, w in enumerate(windows):
        lo = ownership_cut(windows[k - 1], w) + 1 if k else 0
        hi = ownership_cut(w, windows[k + 1]) if k + 1 < len(windows) else w.end
        owned.append(list(range(lo, hi + 1)))
    return owned


@pytest.mark.parametrize("count", [1, 5, 8, 9, 20, 23, 36, 37, 100])
@pytest.mark.parametrize(("T", "overlap"), [(8, 0), (8, 2), (8, 5), (8, 7), (36, 9), (1, 0)])
def test_windows_cover_every_frame_once(count, T, overlap):
    windows = list(iter_windows(range(count), T, overlap))
    assert all(w.length == T for w in windows)
    assert all(list(w.items) == list(w.positions) for w in windows)  # items are the stream's
    owned = owned_positions(windows)
    flat = [p for part in owned for p in part]
    assert flat == list(range(count))  # each frame output exactly once, in order
    for w, part in zip(windows, owned, strict=True):
        assert part, "every window outputs at least one frame"
        assert all(w.start <= p <= w.end for p in part)
        # nearest centre: no other window containing p has a strictly nearer centre
        for p in part:
            for other in windows:
                if other.start <= p <= other.end:
                    assert abs(p - w.center) <= abs(p - other.center)


def test_regular_windows_and_end_alignment():
    windows = list(iter_windows(range(30), 8, 2))
    assert [w.start for w in windows] == [0, 6, 12, 18, 22]  # last aligned to the end (30 - 8)
    assert windows[-1].positions == tuple(range(22, 30))
    exact = list(iter_windows(range(26), 8, 2))
    assert [w.start for w in exact] == [0, 6, 12, 18]  # 18 + 8 == 26: no extra window


def test_short_video_is_padded_by_repetition():
    (window,) = list(iter_windows(["a", "b", "c"], 8, 2))
    assert window.positions == (0, 1, 2, 0, 1, 2, 0, 1)
    assert window.items == ("a", "b", "c", "a", "b", "c", "a", "b")
    assert window.num_real == 3 and window.end == 2
    assert list(iter_windows([], 8, 2)) == []


def test_overlap_ownership_splits_shared_frames_in_half():
    w0, w1 = list(iter_windows(range(14), 8, 2))[:2]
    assert ownership_cut(w0, w1) == 6  # shared frames 6, 7: 6 from w0, 7 from w1
    w0, w1 = list(iter_windows(range(20), 8, 4))[:2]
    assert ownership_cut(w0, w1) == 5  # shared 4..7: 4, 5 from w0; 6, 7 from w1


def test_windows_stream_with_bounded_lookahead():
    consumed = []

    def stream():
        for i in range(1000):
            consumed.append(i)
            yield i

    windows = iter_windows(stream(), 8, 2)
    first = next(windows)
    assert first.positions == tuple(range(8)) and len(consumed) == 8
    second = next(windows)
    assert second.start == 6 and len(consumed) == 14


def test_overlap_defaults_and_validation():
    assert default_overlap(36) == 9 and default_overlap(6) == 1 and default_overlap(1) == 0
    with pytest.raises(ConfigError, match="--overlap 8 must be between 0 and 7"):
        check_overlap(8, 8)
    with pytest.raises(ConfigError):
        list(iter_windows(range(3), 4, -1))
