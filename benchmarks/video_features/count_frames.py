"""Clips and frames (feature rows) each side wrote: `vlpipe STORE` or `vf OUTPUT_DIR`.
Prints `clips frames dim` on one line."""
import sys
from pathlib import Path

import numpy as np

side, path = sys.argv[1], Path(sys.argv[2])
if side == "vlpipe":
    from vlpipe.features.store import FeatureStore

    store = FeatureStore(path)
    feats = store.read_all()
    lens = [len(v) for v in feats.values()]
    dim = next(iter(feats.values())).shape[1:] if feats else ()
else:
    files = sorted(path.rglob("*_resnet.npy"))
    arrays = [np.load(f) for f in files]
    lens = [len(a) for a in arrays]
    dim = arrays[0].shape[1:] if arrays else ()
print(len(lens), sum(lens), "x".join(map(str, dim)) or "-")
