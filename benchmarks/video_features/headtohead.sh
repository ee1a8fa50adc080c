#!/usr/bin/env bash
# Head to head on the CPU, one thread each: vlpipe vs v-iashin/video_features, ResNet-152
# features at 5 fps, 224 px crop, random-init weights, on the same mp4 clips (see README.txt).
#
#   VF_ROOT=/path/to/bench bash benchmarks/video_features/headtohead.sh     # all 10 clips
#   VF_ROOT=/path/to/bench bash benchmarks/video_features/headtohead.sh 1   # smoke test: 1 clip
#
# VF_ROOT holds video_features/ (a checkout of v-iashin/video_features) and venv/ (torch,
# torchvision, omegaconf, opencv-python-headless, pillow, tqdm); `ffmpeg` must be on the PATH
# (video_features shells out to it). docs/benchmarks.md has the set-up and today's figures.
#
# Environment knobs (defaults in brackets):
#   VLPIPE_DIR [this checkout]   vlpipe checkout to time (run with cwd there, so its vlpipe/ is imported)
#   VLPIPE_PY  [$VLPIPE_DIR/.venv/bin/python]     VF_PY [$VF_ROOT/venv/bin/python]
#   CLIPS_DIR  [$VF_ROOT/clips]  (made by make_clips.py if missing)
#   CPU [0]     core both sides are pinned to with taskset; PIN=0 disables pinning
#   VF_BATCHES ["1 8"]  video_features batch_size values to run (1 is its configs/resnet.yml default)
#   VLP_SETTINGS [extract_bench.py's: fps 5, image_size 224, allow_random_init]  JSON, name -> settings
#   VLP_WORKERS [0]     vlpipe --num-workers (0: decode in the main process, as the CPU bench does)
#   REPEATS [1]         runs of each side (alternating); the summary takes each side's fastest
#   MARGINAL [1]        also run each side on the first clip alone, and report the marginal
#                       per-frame rate (frames(N) - frames(1)) / (wall(N) - wall(1)), which
#                       leaves out each side's fixed start-up (imports, model build, warm-up)
#   RUN_DIR [$VF_ROOT/runs/<timestamp>]
set -euo pipefail

VF=${VF_ROOT:?set VF_ROOT to a folder with video_features/ and venv/ (see the header)}
HERE=$(cd "$(dirname "$0")" && pwd)
VLPIPE_DIR=${VLPIPE_DIR:-$(cd "$HERE/../.." && pwd)}
VLPIPE_PY=${VLPIPE_PY:-$VLPIPE_DIR/.venv/bin/python}
VF_PY=${VF_PY:-$VF/venv/bin/python}
CLIPS_DIR=${CLIPS_DIR:-$VF/clips}
N=${1:-10}
CPU=${CPU:-0}
PIN=${PIN:-1}
VF_BATCHES=${VF_BATCHES:-"1 8"}
VLP_WORKERS=${VLP_WORKERS:-0}
REPEATS=${REPEATS:-1}
MARGINAL=${MARGINAL:-1}
RUN=${RUN_DIR:-$VF/runs/$(date +%Y%m%d-%H%M%S)}

# one thread for every pool either side might open
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1
export PYTHONUNBUFFERED=1
if [ "$PIN" = 1 ]; then PINCMD=(taskset -c "$CPU"); else PINCMD=(); fi

mkdir -p "$RUN"
if [ ! -f "$CLIPS_DIR/clip00000.mp4" ]; then
    (cd "$VLPIPE_DIR" && "$VLPIPE_PY" "$HERE/make_clips.py" "$CLIPS_DIR")
fi
mapfile -t VIDEOS < <(ls "$CLIPS_DIR"/*.mp4 | sort | head -n "$N")
[ "${#VIDEOS[@]}" = "$N" ] || { echo "only ${#VIDEOS[@]} clips in $CLIPS_DIR, asked for $N" >&2; exit 1; }
printf '%s\n' "${VIDEOS[@]}" > "$RUN/videos.txt"
printf '%s\n' "${VIDEOS[0]}" > "$RUN/videos1.txt"
(cd "$VLPIPE_DIR" && "$VLPIPE_PY" "$HERE/make_shard.py" "$RUN/shard.parquet" "${VIDEOS[@]}" &&
 "$VLPIPE_PY" "$HERE/make_shard.py" "$RUN/shard1.parquet" "${VIDEOS[0]}") >/dev/null

echo "run dir: $RUN"
echo "clips: $N from $CLIPS_DIR; pinned: ${PINCMD[*]:-no}; load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "vlpipe: $VLPIPE_DIR @ $(git -C "$VLPIPE_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')" \
     "$(git -C "$VLPIPE_DIR" status --porcelain 2>/dev/null | grep -q . && echo '(dirty tree)')"

# untimed warm-up: page both environments' libraries into the page cache
"$VF_PY" -c "import torch, torchvision, cv2, omegaconf, PIL" 
(cd "$VLPIPE_DIR" && "$VLPIPE_PY" -c "import torch, torchvision, av, zarr, vlpipe.extractors.job")

# extract_bench.py's SETTINGS["resnet152"]; add "resize": 256 to match video_features' V1 256 -> 224
SETTINGS=${VLP_SETTINGS:-'{"resnet152": {"fps": 5, "image_size": 224, "allow_random_init": true}}'}
echo "vlpipe settings: $SETTINGS; video_features batch sizes: $VF_BATCHES"

run_vlpipe() {  # $1: tag, $2: shard file
    local dir="$RUN/$1"; rm -rf "$dir"; mkdir -p "$dir"
    (cd "$VLPIPE_DIR" && /usr/bin/time -v -o "$dir/time.txt" "${PINCMD[@]}" \
        "$VLPIPE_PY" -m vlpipe --threads 1 extract --shard "$2" \
        --stores "resnet152=$dir/resnet152.zarr" --settings "$SETTINGS" --device cpu \
        --batch-frames 64 --num-workers "$VLP_WORKERS" --bad-clips fail) >"$dir/log.txt" 2>&1 \
        || { echo "vlpipe run failed, see $dir/log.txt" >&2; tail -20 "$dir/log.txt" >&2; exit 1; }
    (cd "$VLPIPE_DIR" && "$VLPIPE_PY" "$HERE/count_frames.py" vlpipe "$dir/resnet152.zarr") > "$dir/count.txt"
}

run_vf() {  # $1: tag, $2: batch size, $3: list of videos
    local dir="$RUN/$1"; rm -rf "$dir"; mkdir -p "$dir"
    (cd "$VF/video_features" && /usr/bin/time -v -o "$dir/time.txt" "${PINCMD[@]}" \
        "$VF_PY" "$HERE/run_vf.py" feature_type=resnet model_name=resnet152 device=cpu \
        extraction_fps=5 batch_size="$2" on_extraction=save_numpy keep_tmp_files=false \
        output_path="$dir/out" tmp_path="$dir/tmp" file_with_video_paths="$3") \
        >"$dir/log.txt" 2>&1 \
        || { echo "video_features run failed, see $dir/log.txt" >&2; tail -20 "$dir/log.txt" >&2; exit 1; }
    # video_features catches per-video errors and carries on: count what it really wrote
    if grep -q "An error occurred" "$dir/log.txt"; then
        echo "video_features reported errors, see $dir/log.txt" >&2; grep -A3 "An error occurred" "$dir/log.txt" | head -20 >&2
    fi
    "$VF_PY" "$HERE/count_frames.py" vf "$dir/out" > "$dir/count.txt"
}

TAGS=()
for r in $(seq 1 "$REPEATS"); do
    echo "repeat $r: vlpipe ..."; run_vlpipe "vlpipe_r$r" "$RUN/shard.parquet"; TAGS+=("vlpipe_r$r")
    for b in $VF_BATCHES; do
        echo "repeat $r: video_features batch_size=$b ..."
        run_vf "vf_b${b}_r$r" "$b" "$RUN/videos.txt"; TAGS+=("vf_b${b}_r$r")
    done
    if [ "$MARGINAL" = 1 ] && [ "$N" -gt 1 ]; then
        echo "repeat $r: one clip each (for the marginal rates) ..."
        run_vlpipe "one_vlpipe_r$r" "$RUN/shard1.parquet"; TAGS+=("one_vlpipe_r$r")
        for b in $VF_BATCHES; do run_vf "one_vf_b${b}_r$r" "$b" "$RUN/videos1.txt"; TAGS+=("one_vf_b${b}_r$r"); done
    fi
done

/usr/bin/python3 - "$RUN" "$N" "${TAGS[@]}" <<'EOF'
import re, sys
from pathlib import Path
run, n, tags = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]

def parse(tag):
    t = (run / tag / "time.txt").read_text()
    def field(name):
        return re.search(re.escape(name) + r":\s*(.+)", t).group(1).strip()
    parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    clips, frames, dim = (run / tag / "count.txt").read_text().split()
    return dict(tag=tag, wall=wall, user=float(field("User time (seconds)")),
                sys=float(field("System time (seconds)")),
                rss=int(field("Maximum resident set size (kbytes)")) / 1024,
                cpu=field("Percent of CPU this job got"), clips=int(clips), frames=int(frames), dim=dim)

rows = [parse(t) for t in tags]
print(f"\n{'run':18} {'wall s':>8} {'user s':>8} {'sys s':>7} {'CPU':>5} {'maxRSS MB':>9} "
      f"{'clips':>5} {'frames':>6} {'dim':>5} {'frames/s':>8}")
for r in rows:
    want = 1 if r["tag"].startswith("one_") else n
    flag = "" if r["clips"] == want else f"  <-- only {r['clips']} of {want} clips!"
    print(f"{r['tag']:18} {r['wall']:8.2f} {r['user']:8.2f} {r['sys']:7.2f} {r['cpu']:>5} "
          f"{r['rss']:9.0f} {r['clips']:5d} {r['frames']:6d} {r['dim']:>5} "
          f"{r['frames'] / r['wall']:8.2f}{flag}")

def config(r):
    return r["tag"].rsplit("_r", 1)[0]

def best(prefix):
    cands = [r for r in rows if config(r) == prefix]
    return min(cands, key=lambda r: r["wall"]) if cands else None

def marginal(prefix):
    full, one = best(prefix), best("one_" + prefix)
    if not one or full["frames"] <= one["frames"] or full["wall"] <= one["wall"]:
        return None
    return (full["frames"] - one["frames"]) / (full["wall"] - one["wall"])

vlp = best("vlpipe")
repeats = sum(1 for r in rows if config(r) == "vlpipe")
print(f"\nvlpipe speed relative to video_features, {n} clips (>1: vlpipe faster; "
      f"fastest of {repeats} run(s) of each):")
for prefix in sorted({config(r) for r in rows if not r["tag"].startswith("one_")} - {"vlpipe"}):
    vf = best(prefix)
    print(f"  vs {prefix:6}: wall ratio (vf wall / vlpipe wall) {vf['wall'] / vlp['wall']:.3f}; "
          f"per-frame ratio {(vlp['frames'] / vlp['wall']) / (vf['frames'] / vf['wall']):.3f} "
          f"(vlpipe {vlp['frames']} frames in {vlp['wall']:.2f} s, "
          f"vf {vf['frames']} frames in {vf['wall']:.2f} s)")
    mv, mf = marginal("vlpipe"), marginal(prefix)
    if mv and mf:
        print(f"           marginal (start-up excluded): vlpipe {mv:.2f} frames/s, "
              f"{prefix} {mf:.2f} frames/s, ratio {mv / mf:.3f}; start-up about "
              f"vlpipe {vlp['wall'] - vlp['frames'] / mv:.1f} s, "
              f"{prefix} {vf['wall'] - vf['frames'] / mf:.1f} s")
EOF
