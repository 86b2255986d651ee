"""Ranking a segment output for human review: what to check first, and why (``vistr review``)."""

from .rank import WEIGHTS, ReviewConfig, ReviewItem
from .report import ReviewReport, load_review, load_segment_output, review_output, review_results

__all__ = [
    "WEIGHTS",
    "ReviewConfig",
    "ReviewItem",
    "ReviewReport",
    "load_review",
    "load_segment_output",
    "review_output",
    "review_results",
]
