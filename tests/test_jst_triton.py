"""The fused Triton JST (PairScorer backend="triton").

On a CUDA machine the kernels run on the GPU; elsewhere conftest sets TRITON_INTERPRET=1 and
they run in Triton's interpreter on CPU tensors, which computes float32 and float16 but not
bfloat16.
"""

import pytest
import torch
import torch.nn.functional as F

from vlpipe.models.jsfusion_scoring import PairScorer

from .test_jsfusion import calibrate_batch_norm, tiny_model
from .test_jsfusion_scoring import encoded

jst_triton = pytest.importorskip("vlpipe.models.jst_triton")  # needs triton
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(DEVICE.type == "cpu" and not jst_triton.INTERPRETED,
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
    "tanh": (jst_triton.TANH, torch.tanh),
    "leaky_relu": (jst_triton.LEAKY_RELU, lambda x: F.leaky_relu(x, 0.1)),
    "relu": (jst_triton.RELU, torch.relu),
    "identity": (jst_triton.IDENTITY, lambda x: x),
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
    weights = jst_triton.JSTWeights(*(x.to(DEVICE) for x in params), code, negative_slope=0.1)
    on_device = [x.to(DEVICE) for x in (v, v_len, w, w_len)]
    joint = jst_triton.fused_joint(*on_device, weights).cpu()
    assert joint.shape == (bv * bt * n * m, d4) and joint.dtype == dtype
    expected = reference_joint(v, v_len, w, w_len, params, function)
    assert (joint.double() - expected).abs().max() < tolerance * expected.abs().max()
    invalid = expected.abs().sum(1) == 0
    assert invalid.sum() == bv * bt * n * m - 10 * 11  # Σ v_len · Σ w_len valid cells
    assert (joint[invalid] == 0).all()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"activation": "leaky_relu", "conv_activation": "leaky_relu"},
     {"chd_pool": "max", "chd_gates": False}, {"batch_norm": False}],
)
def test_triton_backend_equals_the_model(overrides):
    model = calibrate_batch_norm(tiny_model(**overrides))
    inputs = encoded(model)
    with torch.no_grad():
        expected = model.score_matrix(*inputs)  # (7, 5)
    model, inputs = model.to(DEVICE), [x.to(DEVICE) for x in inputs]
    scorer = PairScorer(model, dtype=torch.float32, backend="triton")
    assert scorer.fallback_reason is None
    for blocks in [(3, 2), (7, 5)]:
        scores = scorer(*inputs, *blocks).cpu()
        torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)


def test_unknown_backend_and_cpu_without_the_interpreter(monkeypatch):
    model = calibrate_batch_norm(tiny_model())
    with pytest.raises(ValueError, match="backend='cuda'"):
        PairScorer(model, backend="cuda")
    monkeypatch.setattr(jst_triton, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        PairScorer(model, backend="triton")  # the model is on the CPU
