"""Watch and Learn: video ↔ subtitle correspondence learned from noisy pairs."""

from vlpipe.models.family import ModelFamily
from vlpipe.models.wal.config import WALConfig

FAMILY = ModelFamily(name="wal", config=WALConfig, builder="vlpipe.models.wal.model:build",
                     tasks=("correspondence",))
