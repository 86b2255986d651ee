"""The mapping between a dataset's category ids and the model's contiguous class indices.

Category ids stay the dataset's own in every file we write; the model sees indices 0..K-1 and
index K is "no object". Official VisTR checkpoints use index == YouTube-VIS 2019 id (1..40), with
index 0 never trained; it is marked unused so it is never reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

YTVIS_2019_NAMES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake", "monkey",
    "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck", "zebra",
    "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle", "earless_seal", "tennis_racket",
)  # fmt: skip


@dataclass(frozen=True)
class CategoryMap:
    """``ids[i]`` and ``names[i]`` describe model class index i; ``unused`` indices are never output."""

    ids: tuple[int, ...]
    names: tuple[str, ...]
    unused: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.names):
            raise ConfigError(f"category map has {len(self.ids)} ids but {len(self.names)} names")
        used = [cid for i, cid in enumerate(self.ids) if i not in self.unused]
        if len(set(used)) != len(used):
            raise ConfigError("category map has duplicate category ids")

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    def index_of(self, category_id: int) -> int:
        for i, cid in enumerate(self.ids):
            if cid == category_id and i not in self.unused:
                return i
        raise ConfigError(
            f"category id {category_id} is not one of this model's categories {self.id_to_name()}"
        )

    def id_to_name(self) -> dict[int, str]:
        return {
            cid: n
            for i, (cid, n) in enumerate(zip(self.ids, self.names, strict=True))
            if i not in self.unused
        }

    def to_json(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "names": list(self.names), "unused": sorted(self.unused)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CategoryMap:
        return cls(tuple(data["ids"]), tuple(data["names"]), frozenset(data.get("unused", ())))

    @classmethod
    def from_categories(cls, categories: list[dict[str, Any]]) -> CategoryMap:
        """From a YouTube-VIS ``categories`` list, sorted by id."""
        cats = sorted(categories, key=lambda c: c["id"])
        return cls(tuple(c["id"] for c in cats), tuple(c["name"] for c in cats))

    @classmethod
    def ytvis2019_official(cls) -> CategoryMap:
        """The official checkpoints' 41 indices: index i is YouTube-VIS 2019 id i, index 0 unused."""
        return cls(tuple(range(41)), ("__unused__", *YTVIS_2019_NAMES), frozenset({0}))

    @classmethod
    def generic(cls, num_classes: int) -> CategoryMap:
        """Ids 1..K named ``class_1``..``class_K`` (a model built without a dataset)."""
        return cls(tuple(range(1, num_classes + 1)), tuple(f"class_{i}" for i in range(1, num_classes + 1)))
