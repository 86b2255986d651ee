"""Datasets and data pipelines.

- :mod:`.clip`: the training batch contract (``ClipTargets``, ``ClipBatch``, ``collate_clips``).
- :mod:`.ytvis`: YouTube-VIS / OVIS layouts and the in-memory index (``load_ytvis``, ``resolve_split``).
- :mod:`.validate`: annotation checks; :mod:`.check`: ``check_dataset`` (``vistr data check``);
  :mod:`.split`: held-out splits.
- :mod:`.sampling`, :mod:`.transforms`: clip windows, clip-consistent augmentation, eval preprocessing
  (``eval_resize_shape``, ``preprocess_frames``).
- :mod:`.dataset`, :mod:`.loader`: ``YTVISClipDataset`` and ``build_train_loader``.
- :mod:`.synthetic`: the synthetic shapes dataset; :mod:`.convert`: YouTube-VIS <-> MOTS <-> DAVIS.
- :mod:`.video_io`: reading videos and frame folders for inference.

Submodules are imported on demand (nothing heavy happens on ``import vistr_core.data``).
"""
