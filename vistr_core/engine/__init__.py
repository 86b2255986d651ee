"""Training machinery: devices, checkpoints, distributed setup and the trainer."""
