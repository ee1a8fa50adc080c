"""The Triton JST and CHD kernels (PairScorer backends "triton-jst" and "triton").

On a CUDA machine the kernels run on the GPU; elsewhere conftest sets TRITON_INTERPRET=1 and
they run in Triton's interpreter on CPU tensors, which computes float32 and float16 but not
bfloat16.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vlpipe.models.jsfusion.scoring import PairScorer

from .test_jsfusion import calibrate_batch_norm, tiny_model
from .test_jsfusion_scoring import encoded

jsfusion_triton = pytest.importorskip("vlpipe.models.jsfusion.triton_kernels")  # needs triton
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(DEVICE.type == "cpu" and not jsfusion_triton.INTERPRETED,
                       reason="no CUDA and not TRITON_INTERPRET=1"),
]
LOW_PRECISION = [(torch.float16, 2e-2)] + [(torch.bfloat16, 4e-2)] * (DEVICE.type == "cuda")


def reference_joint(v, v_len, w, w_len, params, activation):
    """J by the paper's formula in float64 from CPU tensors: (bv·bt·n·m, d4)."""
    (n, d1), m = v.shape[1:], w.shape[1]
    w23, b23, attention, w4, b4 = (x.double() for x in params)
    d2 = len(attention)
    t = (v.double()[:, None, :, None] * w.double()[None, :, None, :]).reshape(-1, d1)
    hidden = activation(t @ w23 + b23)  # (R, d2 + d3)
    gate = torch.sigmoid(hidden[:, :d2] @ attention)  # (R,)
    valid = ((torch.arange(n) < v_len[:, None])[:, None, :, None]
             & (torch.arange(m) < w_len[:, None])[None, :, None, :])  # (bv, bt, n, m)
    return activation(hidden[:, d2:] @ w4 + b4) * (gate * valid.reshape(-1))[:, None]


ACTIVATIONS = {
    "tanh": (jsfusion_triton.TANH, torch.tanh),
    "leaky_relu": (jsfusion_triton.LEAKY_RELU, lambda x: F.leaky_relu(x, 0.1)),
    "relu": (jsfusion_triton.RELU, torch.relu),
    "identity": (jsfusion_triton.IDENTITY, lambda x: x),
}


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), *LOW_PRECISION])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_fused_joint_matches_formula(activation, dtype, tolerance):
    # d2 = 48, d3 = 36: column tiles of 32 straddle the D2 | D3 boundary; d1 = 40 ragged in K.
    bv, bt, n, m, d1, d2, d3, d4 = 3, 2, 5, 7, 40, 48, 36, 20
    g = torch.Generator().manual_seed(0)
    shapes = [(d1, d2 + d3), (d2 + d3,), (d2,), (d3, d4), (d4,)]  # D2|D3, bias, a, D4, bias
    params = [(0.2 * torch.randn(*shape, generator=g)).to(dtype) for shape in shapes]
    v, w = (torch.randn(*shape, generator=g).to(dtype) for shape in [(bv, n, d1), (bt, m, d1)])
    v_len, w_len = torch.tensor([5, 2, 3]), torch.tensor([7, 4])
    code, function = ACTIVATIONS[activation]
    weights = jsfusion_triton.JSTWeights(*(x.to(DEVICE) for x in params), code, negative_slope=0.1)
    on_device = [x.to(DEVICE) for x in (v, v_len, w, w_len)]
    joint = jsfusion_triton.fused_joint(*on_device, weights).cpu()
    assert joint.shape == (bv * bt * n * m, d4) and joint.dtype == dtype
    expected = reference_joint(v, v_len, w, w_len, params, function)
    assert (joint.double() - expected).abs().max() < tolerance * expected.abs().max()
    invalid = expected.abs().sum(1) == 0
    assert invalid.sum() == bv * bt * n * m - 10 * 11  # Σ v_len · Σ w_len valid cells
    assert (joint[invalid] == 0).all()


def test_every_tile_width_writes_every_partial_logit():
    """Autotuning runs the D2|D3 kernel with several BLOCK_N on the same buffers: each width
    must write all the partial attention logits, or the tuned call reads another's leftovers."""
    bv, bt, n, m, d1, d2, d3 = 2, 2, 3, 4, 16, 48, 16
    n_rows, n_groups = bv * bt * n * m, -(-d2 // jsfusion_triton._LOGIT_GROUP)
    g = torch.Generator().manual_seed(0)
    v, w = torch.randn(bv, n, d1, generator=g), torch.randn(bt, m, d1, generator=g)
    w23, b23, attention = (torch.randn(*s, generator=g) for s in [(d1, d2 + d3), (d2 + d3,), (d2,)])
    kernel = jsfusion_triton._hidden_kernel.fn  # the kernel under the autotuner
    logits = {}
    for block_n in [32, 64]:
        out = torch.full((n_groups, n_rows), float("nan"), device=DEVICE)
        value = torch.empty(n_rows, d3, device=DEVICE)
        grid = (-(-n_rows // 32), -(-(d2 + d3) // block_n))
        kernel[grid](*(x.to(DEVICE) for x in (v, w, w23, b23, attention)), value, out,
                     n_rows, bt, n, m, d1, d2, d3, n_groups, 0.0,
                     ACTIVATION=jsfusion_triton.TANH, INPUT_PRECISION="ieee",
                     LOGIT_GROUP=jsfusion_triton._LOGIT_GROUP,
                     BLOCK_M=32, BLOCK_N=block_n, BLOCK_K=32)
        logits[block_n] = out.cpu()
    t = (v[:, None, :, None] * w[None, :, None, :]).reshape(-1, d1)  # (n_rows, d1)
    expected = torch.tanh(t @ w23[:, :d2] + b23[:d2]) @ attention  # (n_rows,)
    for out in logits.values():
        assert not out.isnan().any()
        torch.testing.assert_close(out.sum(0), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("gated", [True, False])
def test_gated_conv_matches_conv2d(stride, gated):
    # C_in = 20 is ragged against 32-wide K tiles; an odd 9 × 8 grid.
    pairs, c_in, height, width, c_out = 3, 20, 9, 8, 12
    g = torch.Generator().manual_seed(stride)
    x = torch.randn(pairs, height, width, c_in, generator=g).permute(0, 3, 1, 2)  # channels-last
    conv = 0.2 * torch.randn(c_out, c_in, 3, 3, generator=g), 0.1 * torch.randn(c_out, generator=g)
    gate = 0.2 * torch.randn(1, c_in, 3, 3, generator=g), 0.1 * torch.randn(1, generator=g)
    stage = jsfusion_triton.GatedConv.build(
        tuple(t.to(DEVICE) for t in conv), tuple(t.to(DEVICE) for t in gate) if gated else None,
        stride, jsfusion_triton.LEAKY_RELU, negative_slope=0.1)
    out = stage(x.to(DEVICE)).cpu()
    expected = F.leaky_relu(F.conv2d(x, *conv, stride), 0.1)
    if gated:
        expected = expected * torch.sigmoid(F.conv2d(x, *gate, stride))
    assert out.shape == expected.shape == (pairs, c_out, (height - 3) // stride + 1,
                                           (width - 3) // stride + 1)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


LEAKY = {"activation": "leaky_relu", "conv_activation": "leaky_relu"}


@pytest.mark.parametrize(
    "backend, overrides",
    [("triton-jst", {}), ("triton-jst", LEAKY), ("triton-jst", {"batch_norm": False}),
     ("triton", {}), ("triton", LEAKY), ("triton", {"chd_pool": "max", "chd_gates": False}),
     ("triton", {"chd_gates": False, "conv_activation": "relu"})],
)
def test_triton_backends_equal_the_model(backend, overrides, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # CUDA: fp32 convs are fp32
    model = calibrate_batch_norm(tiny_model(**overrides))
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs)  # (7, 5)
    model, inputs = model.to(DEVICE), [x.to(DEVICE) for x in inputs]
    scorer = PairScorer(model, dtype=torch.float32, backend=backend)
    assert scorer.fallback_reason is None
    scores = scorer(*inputs, 3, 2).cpu()  # blocks that do not divide (7, 5)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)


def test_unknown_backend_and_cpu_without_the_interpreter(monkeypatch):
    model = calibrate_batch_norm(tiny_model())
    with pytest.raises(ValueError, match="backend='cuda'"):
        PairScorer(model, backend="cuda")
    monkeypatch.setattr(jsfusion_triton, "INTERPRETED", False)
    for backend in ["triton-jst", "triton"]:
        with pytest.raises(RuntimeError, match="needs a CUDA device"):
            PairScorer(model, backend=backend)  # the model is on the CPU


@pytest.mark.skipif(DEVICE.type == "cuda", reason="with a GPU the kernels run (tests above)")
def test_kernels_compile_for_the_h100():
    """Without a GPU: every kernel × tile configuration compiles for sm_90 (Triton's ptxas)
    within its shared memory, with wgmma and pipelined loads (benchmarks/triton_compile_check)."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "benchmarks/triton_compile_check.py", "--arch", "90"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    kernels = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert kernels.count("hidden") == kernels.count("joint") > 1  # one row per configuration
    assert kernels.count("conv") == 3 * kernels.count("hidden")  # strides 1, 2; ungated


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["triton-jst", "triton"])
def test_compiled_triton_backends_equal_the_model(backend, monkeypatch):
    """Under torch.compile the Triton launchers run outside the graphs; the rest is compiled."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    model = calibrate_batch_norm(tiny_model())
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs)
    model, inputs = model.to(DEVICE), [x.to(DEVICE) for x in inputs]
    scorer = PairScorer(model, dtype=torch.float32, backend=backend, compile_mode="default")
    torch.testing.assert_close(scorer(*inputs, 3, 2).cpu(), expected, rtol=1e-4, atol=1e-5)
