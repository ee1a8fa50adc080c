"""JSFusion test-time scoring of all Nv × Nt pairs: `PairScorer` against `score_matrix`.

A JSFusion at the paper's sizes (default config: 40 frames × 40 words, 512-wide JST,
256-channel CHD; video_dim 2176 = ResNet + audio) with random weights whose BatchNorm running
statistics are calibrated by a few train-mode passes. Videos and sentences are encoded once;
then timed, on the same encodings:

- ``torch`` / ``triton-jst`` / ``triton`` (``--backends``): `vlpipe.models.jsfusion.scoring.
  PairScorer` (dense blocked JST, folded BatchNorm, fused gates, channels-last; ``--dtype``,
  bfloat16 on CUDA by default) in torch ops, with the fused Triton JST, or with the Triton JST
  and CHD convs;
- ``baseline``: the model's own ``score_matrix`` (sparse JST, one pair per row of a block)
  under autocast to ``--dtype``;
- ``<backend>+compile`` (``--compile [MODE]``): the scorer with its block function under
  ``torch.compile`` (the warm-up, reported apart, includes compiling and autotuning).

A run that fails is reported with its error and the others go on.

Ranking agreement with a float32 reference (TF32 off) on ``--sample-queries`` sentences × all
videos: per-query Spearman correlation, top-1 agreement, text→video R@1 / R@10 of each. FLOPs
are `jsfusion_pair_flops` at each pair's lengths (useful work only). Goal (issue): ≤ 15 s per
10^6 pairs on an H100 (≈ 7.8 PFLOP). Run:

    python benchmarks/jsfusion_scoring.py --backends torch triton-jst triton --compile  # GPU
    python benchmarks/jsfusion_scoring.py --device cpu --videos 16 --texts 16 --sample-queries 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vlpipe.device import resolve_device
from vlpipe.metrics.retrieval import ranks_of_positives, retrieval_metrics
from vlpipe.models.jsfusion.config import JSFusionConfig
from vlpipe.models.jsfusion.model import JSFusion
from vlpipe.models.jsfusion.scoring import PairScorer, jsfusion_pair_flops
from vlpipe.nn.layers import lengths_to_mask

RESULTS = Path(__file__).resolve().parent / "results"
Encoded = tuple[Tensor, Tensor, Tensor, Tensor]  # v_enc, v_mask, t_enc, t_mask


def random_inputs(count: int, max_len: int, random_lengths: bool, g: torch.Generator,
                  make: Callable[[tuple[int, int]], Tensor]) -> tuple[Tensor, Tensor]:
    """`count` right-padded sequences of max_len steps (lengths uniform in [1, max_len] or all
    max_len) filled by `make(shape)`, and their masks."""
    lengths = (torch.randint(1, max_len + 1, (count,), generator=g) if random_lengths
               else torch.full((count,), max_len))
    mask = lengths_to_mask(lengths, max_len)  # (count, max_len)
    return make(mask.shape), mask


def make_data(args: argparse.Namespace, g: torch.Generator, videos: int,
              texts: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random features (videos, frames, video_dim), tokens (texts, words) and their masks."""
    feats, v_mask = random_inputs(videos, args.frames, args.random_lengths, g,
                                  lambda s: torch.randn(*s, args.video_dim, generator=g))
    tokens, t_mask = random_inputs(texts, args.words, args.random_lengths, g,
                                   lambda s: torch.randint(1, args.vocab, s, generator=g))
    return feats, v_mask, tokens, t_mask


def build_model(args: argparse.Namespace, device: torch.device,
                g: torch.Generator) -> JSFusion:
    """Paper-size JSFusion, random weights, BatchNorm statistics averaged over train passes."""
    torch.manual_seed(args.seed)
    model = JSFusion(JSFusionConfig(), args.vocab, args.video_dim).to(device)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(args.calib_steps):
            batch = make_data(args, g, args.calib_batch, args.calib_batch)
            model(*(x.to(device) for x in batch))
    return model.eval()


@torch.inference_mode()
def encode(model: JSFusion, data: tuple[Tensor, ...], device: torch.device,
           block: int = 100) -> Encoded:
    """Per-step encodings of every video and sentence (float32), computed once."""
    feats, v_mask, tokens, t_mask = data
    videos = [model.encode_video(feats[i : i + block].to(device), v_mask[i : i + block].to(device))
              for i in range(0, len(feats), block)]
    texts = [model.encode_text(tokens[i : i + block].to(device), t_mask[i : i + block].to(device))
             for i in range(0, len(tokens), block)]
    return (*(torch.cat(parts) for parts in zip(*videos, strict=True)),
            *(torch.cat(parts) for parts in zip(*texts, strict=True)))


def subset(encoded: Encoded, videos: int | Tensor, texts: int | Tensor) -> Encoded:
    """The first `videos` (or those indexed) × the first `texts` (or those indexed)."""
    v_enc, v_mask, t_enc, t_mask = encoded
    videos = slice(videos) if isinstance(videos, int) else videos
    texts = slice(texts) if isinstance(texts, int) else texts
    return v_enc[videos], v_mask[videos], t_enc[texts], t_mask[texts]


def total_flops(encoded: Encoded, config: JSFusionConfig) -> float:
    """Useful FLOPs of all pairs: Σ over (video length, sentence length) histograms."""
    v_len = np.bincount(encoded[1].sum(1).cpu().numpy())
    t_len = np.bincount(encoded[3].sum(1).cpu().numpy())
    return sum(float(v_len[n] * t_len[m]) * jsfusion_pair_flops(int(n), int(m), config)
               for n in np.flatnonzero(v_len) for m in np.flatnonzero(t_len))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(score: Callable[[Encoded], Tensor], encoded: Encoded, warmup: Encoded,
          device: torch.device, flops: float) -> tuple[Tensor, dict]:
    """Scores and figures of `score(encoded)` after `score(warmup)`."""
    start = time.perf_counter()
    score(warmup)
    sync(device)
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    scores = score(encoded)
    sync(device)
    seconds = time.perf_counter() - start
    pairs = scores.numel()
    return scores, {
        "pairs": pairs,
        "seconds": seconds,
        "warmup_seconds": warmup_s,
        "us_per_pair": seconds * 1e6 / pairs,  # = seconds per 10^6 pairs
        "tflops": flops / seconds / 1e12,
        "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
                            else None),
    }


def ranking_agreement(scores: Tensor, reference: Tensor, queries: Tensor) -> dict:
    """Agreement of `scores` with `reference` (Nv, Nt) over the sentence `queries`."""
    test = scores[:, queries].T.double().cpu().numpy()  # (Q, Nv)
    ref = reference.T.double().cpu().numpy()  # (Q, Nv)
    rank = lambda x: x.argsort(axis=1).argsort(axis=1).astype(np.float64)  # noqa: E731
    a, b = rank(test), rank(ref)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    spearman = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    positive = queries.numpy()  # the positive of sentence q is video q
    test_metrics = retrieval_metrics(ranks_of_positives(test, positive))
    ref_metrics = retrieval_metrics(ranks_of_positives(ref, positive))
    return {
        "queries": len(positive),
        "spearman_mean": float(spearman.mean()),
        "spearman_min": float(spearman.min()),
        "top1_agreement": float((test.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_diff": float(np.abs(test - ref).max()),
        "score_std": float(ref.std()),
        **{f"{k}_diff": test_metrics[k] - ref_metrics[k] for k in ("R@1", "R@10")},
        **{f"{k}_reference": ref_metrics[k] for k in ("R@1", "R@10")},
    }


@contextlib.contextmanager
def exact_float32():
    """TF32 off, so the float32 reference is float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--random-lengths", action="store_true",
                        help="lengths uniform in [1, frames] / [1, words] instead of all full")
    parser.add_argument("--video-dim", type=int, default=2176)
    parser.add_argument("--vocab", type=int, default=16824)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default=None,
                        help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        help="also time the scorer under torch.compile (mode: default, "
                             "max-autotune, max-autotune-no-cudagraphs, ...)")
    parser.add_argument("--block-videos", type=int, default=None)
    parser.add_argument("--block-texts", type=int, default=None)
    parser.add_argument("--block-gib", type=float, default=2.0, help="scorer block budget")
    parser.add_argument("--no-fuse-gates", action="store_true")
    parser.add_argument("--backends", nargs="+", choices=PairScorer.backends, default=["torch"],
                        help="PairScorer backends to time (each eager, and compiled with "
                             "--compile)")
    parser.add_argument("--baseline-videos", type=int, default=None,
                        help="time score_matrix on this many videos (× all texts) only")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--sample-queries", type=int, default=50)
    parser.add_argument("--calib-steps", type=int, default=5)
    parser.add_argument("--calib-batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(args.seed)
    model = build_model(args, device, g)
    start = time.perf_counter()
    encoded = encode(model, make_data(args, g, args.videos, args.texts), device)
    sync(device)
    encode_s = time.perf_counter() - start
    flops_per_pair = total_flops(encoded, model.config) / (args.videos * args.texts)

    def make_scorer(backend: str, compile_mode: str | None) -> PairScorer:
        return PairScorer(model, dtype, int(args.block_gib * 2**30),
                          fuse_gates=not args.no_fuse_gates, compile_mode=compile_mode,
                          backend=backend)

    blocks = make_scorer("torch", None).block_sizes(args.frames, args.words, args.videos,
                                                    args.texts)
    blocks = (args.block_videos or blocks[0], args.block_texts or blocks[1])
    # Warm-up set: one full block and one tail block each way, i.e. every block shape.
    warmup = subset(encoded, min(args.videos, blocks[0] + args.videos % blocks[0]),
                    min(args.texts, blocks[1] + args.texts % blocks[1]))
    results = {"device": device_name, "dtype": str(dtype), "blocks": blocks,
               "encode_seconds": encode_s, "flops_per_pair": flops_per_pair}

    def run_scorer(backend: str, compile_mode: str | None) -> Callable[[Encoded], Tensor]:
        scorers: list[PairScorer] = []  # built on first use, so that its errors are the run's

        def score(e: Encoded) -> Tensor:
            if not scorers:
                scorers.append(make_scorer(backend, compile_mode))
            return scorers[0](*e, *blocks)

        return score

    runs = {}
    for backend in args.backends:
        runs[backend] = (run_scorer(backend, None), encoded, warmup)
        if args.compile:
            runs[f"{backend}+compile"] = (run_scorer(backend, args.compile), encoded, warmup)
    if not args.skip_baseline:
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

        def baseline(e: Encoded) -> Tensor:
            with torch.inference_mode(), autocast:
                return model.score_matrix(*e)

        videos = args.baseline_videos or args.videos
        runs["baseline"] = (baseline, subset(encoded, videos, args.texts),
                            subset(encoded, min(videos, 32), min(args.texts, 32)))
    scores = {}
    for name, (score, inputs, warm) in runs.items():
        pairs = len(inputs[0]) * len(inputs[2])
        try:
            scores[name], results[name] = timed(score, inputs, warm, device,
                                                flops_per_pair * pairs)
        except Exception as error:  # reported, and the other runs go on
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {error}"}

    queries = torch.randperm(args.texts, generator=g)[: args.sample_queries].sort().values
    with exact_float32():
        reference = PairScorer(model, torch.float32, int(args.block_gib * 2**30))
        ref = reference(*subset(encoded, args.videos, queries.to(device)))  # (Nv, Q)
        # Exactness check of the scorer against the model itself, in float32 on a corner.
        corner = subset(encoded, min(args.videos, 16), min(args.texts, 16))
        with torch.inference_mode():
            expected = model.score_matrix(*corner)
        error = (reference(*corner) - expected).abs().max() / expected.abs().max()
    results["float32_scorer_vs_model_max_rel_error"] = float(error)
    for name, s in scores.items():
        if s.shape == (args.videos, args.texts):
            results[name]["ranking_vs_float32"] = ranking_agreement(s, ref, queries)

    print(f"{args.videos} videos × {args.texts} sentences, {args.frames} frames × "
          f"{args.words} words{' (random lengths)' if args.random_lengths else ''}, {dtype} on "
          f"{device_name}; {flops_per_pair / 1e9:.2f} GFLOP/pair; blocks {blocks}")
    print(f"{'':14} {'us/pair = s/1e6 pairs':>21} {'TFLOP/s':>8} {'peak GiB':>8} "
          f"{'spearman':>8} {'top1 agr':>8} {'dR@1':>6} {'dR@10':>6}")
    for name in runs:
        r = results[name]
        if "error" in r:
            print(f"{name:14} failed: {r['error'][:200]}")
            continue
        agreement = r.get("ranking_vs_float32")
        memory = f"{r['peak_memory_gib']:8.2f}" if r["peak_memory_gib"] is not None else " " * 8
        line = f"{name:14} {r['us_per_pair']:21.2f} {r['tflops']:8.2f} {memory}"
        if agreement:
            line += (f" {agreement['spearman_mean']:8.5f} {agreement['top1_agreement']:8.3f} "
                     f"{agreement['R@1_diff']:6.2f} {agreement['R@10_diff']:6.2f}")
        print(line)
    print(f"float32 scorer vs model.score_matrix: max relative error {error:.2e}")
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    out = Path(args.out) if args.out else RESULTS / f"jsfusion-scoring-{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
