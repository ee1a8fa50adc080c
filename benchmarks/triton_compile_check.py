"""Compile JSFusion's Triton kernels for a GPU architecture without a GPU, and check the code.

Every kernel of `vlpipe.models.jsfusion.triton_kernels` × every autotuning configuration is compiled
ahead of time (Triton's own ptxas; no device needed) for ``--arch`` (default 90: Hopper, the
H100) with the argument specialisation the JIT gives at the paper's sizes (pointers and sizes
divisible by 16). Printed per kernel and configuration: shared memory, the tensor-core
instructions in the PTX (wgmma on Hopper) and the asynchronous copies that pipeline the loads.
The exit status is 1 if a compilation fails, shared memory exceeds the architecture's, or on
Hopper a kernel has no wgmma or no pipelined loads. Run (TRITON_INTERPRET must be unset):

    python benchmarks/triton_compile_check.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from vlpipe.models.jsfusion import triton_kernels as kernels

SHARED_MEMORY_KIB = {80: 163, 86: 99, 89: 99, 90: 227}  # per block, the architecture's maximum
DIVISIBLE_BY_16 = {"n_rows", "d1", "d2", "d3", "d4", "c_in", "c_out"}  # at the paper's sizes
BF16, F32, I32, I64 = "*bf16", "fp32", "i32", "*i64"
SIZES = dict(n_rows=I32, bt=I32, n=I32, m=I32, negative_slope=F32)
# kernel → (argument types, constexpr variants)
KERNELS = {
    "hidden": (kernels._hidden_kernel, {
        **dict.fromkeys(["v_ptr", "w_ptr", "weight_ptr", "bias_ptr", "attention_ptr",
                         "value_ptr"], BF16),
        "logit_ptr": "*fp32", **SIZES, **dict.fromkeys(["d1", "d2", "d3", "n_groups"], I32),
    }, [{"ACTIVATION": kernels.TANH, "INPUT_PRECISION": "tf32",
         "LOGIT_GROUP": kernels._LOGIT_GROUP}]),
    "joint": (kernels._joint_kernel, {
        **dict.fromkeys(["value_ptr", "weight_ptr", "bias_ptr", "out_ptr"], BF16),
        "logit_ptr": "*fp32", "v_len_ptr": I64, "w_len_ptr": I64, **SIZES,
        **dict.fromkeys(["d3", "d4", "n_groups"], I32),
    }, [{"ACTIVATION": kernels.TANH, "INPUT_PRECISION": "tf32"}]),
    "conv": (kernels._gated_conv_kernel, {
        **dict.fromkeys(["x_ptr", "weight_ptr", "bias_ptr", "gate_weight_ptr", "out_ptr"], BF16),
        "gate_bias": F32, "negative_slope": F32,
        **dict.fromkeys(["n_rows", "height", "width", "out_height", "out_width", "c_in",
                         "c_out"], I32),
    }, [{"STRIDE": stride, "ACTIVATION": kernels.IDENTITY, "GATED": gated,
         "INPUT_PRECISION": "tf32", "GATE_COLUMNS": kernels._GATE_COLUMNS}
        for stride, gated in [(1, True), (2, True), (1, False)]]),
}


def compile_kernel(kernel, types: dict[str, str], constexprs: dict, config: triton.Config,
                   arch: int):
    """Compile one specialisation of an autotuned kernel for `arch` (no GPU needed)."""
    function = kernel.fn  # the JITFunction under the autotuner
    constants = {**constexprs, **config.kwargs}
    signature, attributes = {}, {}
    for index, name in enumerate(function.arg_names):
        if name in constants:
            signature[name] = "constexpr"
            continue
        signature[name] = types[name]
        if types[name].startswith("*") or name in DIVISIBLE_BY_16:
            attributes[(index,)] = [["tt.divisibility", 16]]
    source = ASTSource(function, signature, constants, attributes)
    options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability × 10")
    args = parser.parse_args()
    if kernels.INTERPRETED:
        sys.exit("unset TRITON_INTERPRET: the interpreter has no compiler to check")
    limit = SHARED_MEMORY_KIB.get(args.arch)
    failures = 0
    print(f"{'kernel':7} {'constexprs':20} {'BLOCK_M,N,K':12} {'warps':>5} {'stages':>6} "
          f"{'shared KiB':>10} {'wgmma':>6} {'cp.async':>8} {'s':>5}")
    for name, (kernel, types, variants) in KERNELS.items():
        for constexprs in variants:
            shown = ",".join(f"{k}={v}" for k, v in constexprs.items()
                             if k in ("STRIDE", "GATED"))
            for config in kernel.configs:
                start = time.perf_counter()
                tiles = ",".join(str(config.kwargs[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
                row = f"{name:7} {shown:20} {tiles:12} {config.num_warps:5} {config.num_stages:6}"
                try:
                    compiled = compile_kernel(kernel, types, constexprs, config, args.arch)
                except Exception as error:  # reported; the others are still checked
                    print(f"{row} FAILED: {type(error).__name__}: {str(error)[:300]}")
                    failures += 1
                    continue
                ptx, shared = compiled.asm["ptx"], compiled.metadata.shared / 1024
                wgmma, copies = ptx.count("wgmma.mma_async"), ptx.count("cp.async.c")
                problems = [text for bad, text in [
                    (limit is not None and shared > limit, f"shared > {limit} KiB"),
                    (args.arch == 90 and not wgmma, "no wgmma"),
                    (args.arch >= 80 and not copies, "loads not pipelined"),
                ] if bad]
                failures += bool(problems)
                print(f"{row} {shared:10.0f} {wgmma:6} {copies:8} "
                      f"{time.perf_counter() - start:5.1f} {'; '.join(problems)}")
    print(f"{failures} problem(s)" if failures else "all kernels compiled")
    return int(failures > 0)


if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)  # only effective before vlpipe imports triton
    sys.exit(main())
