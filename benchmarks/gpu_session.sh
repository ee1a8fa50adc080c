#!/usr/bin/env bash
# The GPU checks and benchmarks, in steps that each fit a 10-minute call on a GPU machine
# without internet access. Results go to $OUT (default benchmarks/results/gpu).
#
#   bash benchmarks/gpu_session.sh wheels    # HERE, once: wheels of what such a machine lacks → .whl/
#   bash benchmarks/gpu_session.sh tests     # there: CUDA tests (extraction bf16, scoring, Triton)
#   bash benchmarks/gpu_session.sh scoring   # there: 10^6 pairs, each backend eager (2 and 8 GiB blocks), baseline
#   bash benchmarks/gpu_session.sh compiled  # there: 10^6 pairs, each backend under torch.compile
#   bash benchmarks/gpu_session.sh variants  # there: unfused gates, random lengths, max-autotune
#
# The GPU machine is assumed to have Python 3.12 with torch, triton, numpy, pandas, pyarrow and
# pyyaml (a CUDA PyTorch image); the wheels step fetches the rest of what the tests import.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"

# name==version as pinned (requirements.txt, or what its pins pull in).
WHEELS_BINARY="av==18.1.0 numcodecs==0.16.6 google-crc32c==1.9.0"
WHEELS_PURE="zarr==3.1.6 donfig==0.8.1.post1 pytorchvideo==0.1.5 fvcore==0.1.5.post20221221
  iopath==0.1.10 yacs==0.1.8 termcolor==3.3.0 parameterized==0.9.0"

use_wheels() {
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site:$PWD
    else
        export PYTHONPATH=$PWD
    fi
    export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/ultralytics
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
        | tee -a "$OUT/gpu.txt"
}

scoring() {  # one benchmark run: name, then the benchmark's flags; a failure stops no other run
    local name=$1
    shift
    python3 benchmarks/jsfusion_scoring.py --out "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.log" \
        || echo "$name: benchmark failed (exit $?), see $OUT/$name.log"
}

case "${1:-}" in
    wheels)
        rm -rf .whl && mkdir .whl
        # shellcheck disable=SC2086 # word splitting of the lists is intended
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl $WHEELS_BINARY
        # shellcheck disable=SC2086
        python3 -m pip wheel -q --no-deps -w .whl $WHEELS_PURE
        du -sh .whl
        ;;
    tests)
        use_wheels
        python3 -m pytest -q -p no:cacheprovider -m "slow or not slow" tests/test_gpu.py \
            tests/test_jsfusion_triton.py tests/test_jsfusion_scoring.py 2>&1 | tee "$OUT/tests.log"
        ;;
    scoring)
        use_wheels
        scoring eager --backends torch triton-jst triton --baseline-videos 100
        scoring eager-8gib-blocks --backends torch triton-jst triton --block-gib 8 --skip-baseline
        ;;
    compiled)
        use_wheels
        scoring compiled --backends torch triton-jst triton --compile --skip-baseline
        ;;
    variants)
        use_wheels
        scoring unfused-gates --backends torch triton-jst --no-fuse-gates --skip-baseline
        scoring random-lengths --backends torch triton --random-lengths --skip-baseline
        scoring max-autotune --backends torch --compile max-autotune-no-cudagraphs --skip-baseline
        ;;
    *)
        sed -n '2,12p' "$0"
        exit 2
        ;;
esac
