"""A vlpipe shard table (clip_id, video_path, start, end, size, mtime_ns) for the given mp4s,
as benchmarks/extract_bench.py's make_shard writes it. Run with vlpipe's interpreter."""
import sys
from pathlib import Path

import pandas as pd

from vlpipe.manifest import SHARD_COLUMNS, with_file_identity

out, videos = Path(sys.argv[1]), [Path(p).resolve() for p in sys.argv[2:]]
rows = [{"clip_id": v.stem, "video_path": str(v), "start": 0.0, "end": float("nan")}
        for v in videos]
with_file_identity(pd.DataFrame(rows))[SHARD_COLUMNS].to_parquet(out, index=False)
print(f"{out}: {len(rows)} clips")
