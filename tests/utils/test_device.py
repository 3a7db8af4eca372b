"""``--amp`` resolution: native-bf16 CPU detection from the CPU flags, and which dtype
each choice gives on CPU (auto: bf16 only where the stage asks for it and the CPU has
native bf16)."""
from __future__ import annotations

import warnings

import pytest
import torch

from dama_det.errors import DamaUserError
from dama_det.utils import device as device_mod
from dama_det.utils.device import cpu_has_native_bf16, resolve_amp_dtype

CPU = torch.device("cpu")


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu sse2 {flags}\n")
    return path


@pytest.mark.parametrize("flags, native", [
    ("avx2 avx512f avx512_bf16", True),   # AVX512-BF16 (e.g. AMD Zen 4, Cooper Lake)
    ("avx512f amx_tile amx_bf16", True),  # AMX (Sapphire Rapids)
    ("avx2 avx512f avx512bw", False),     # AVX-512 without bf16 arithmetic
    ("avx2 bf16", False),                 # other flag names do not count
])
def test_native_bf16_read_from_cpu_flags(tmp_path, flags, native):
    if not __import__("sys").platform.startswith("linux"):
        pytest.skip("the flags are read on Linux only")
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, flags)) is native


def test_unreadable_cpuinfo_means_no_native_bf16(tmp_path):
    assert cpu_has_native_bf16(tmp_path / "missing") is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_cpu_follows_the_cpu_and_the_stage(monkeypatch, native):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: native)
    expected = torch.bfloat16 if native else None
    assert resolve_amp_dtype("auto", CPU, bf16_on_native_cpu=True) is expected
    # stages that did not measure bf16 at parity stay fp32 under auto
    assert resolve_amp_dtype("auto", CPU) is None
    # explicit choices do not depend on the CPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert resolve_amp_dtype("bf16", CPU) is torch.bfloat16
    assert resolve_amp_dtype("off", CPU, bf16_on_native_cpu=True) is None


def test_explicit_bf16_warns_only_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match=r"--amp bf16 on a CPU without native bf16 .*"
                      r"--amp auto or off runs fp32"):
        assert resolve_amp_dtype("bf16", CPU) is torch.bfloat16
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert resolve_amp_dtype("bf16", CPU) is torch.bfloat16
        assert resolve_amp_dtype("auto", CPU, bf16_on_native_cpu=True) is torch.bfloat16
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto and off never warn: they pick fp32 here
        assert resolve_amp_dtype("auto", CPU, bf16_on_native_cpu=True) is None
        assert resolve_amp_dtype("off", CPU) is None


def test_bad_amp_choices_are_user_errors():
    with pytest.raises(DamaUserError, match="--amp fp16 is for CUDA; use --amp bf16 on CPU"):
        resolve_amp_dtype("fp16", CPU)
    with pytest.raises(DamaUserError, match="--amp must be one of auto, bf16, fp16, off"):
        resolve_amp_dtype("half", CPU)


def test_cpu_bf16_autocast_uses_the_math_attention_kernel():
    from dama_det.utils.device import autocast_context

    q = torch.randn(2, 3, 9, 16, requires_grad=True)
    with autocast_context(CPU, torch.bfloat16):
        layer_out = torch.nn.Linear(16, 16)(q)
        attn = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert layer_out.dtype == attn.dtype == torch.bfloat16
    assert "Flash" not in type(attn.grad_fn).__name__  # the math kernel's ops, not flash's
    attn.float().sum().backward()  # and it trains
    assert q.grad is not None and torch.isfinite(q.grad).all()
    with autocast_context(CPU, None):
        assert torch.nn.Linear(16, 16)(q).dtype == torch.float32


def test_cpu_bf16_autocast_without_gradients_keeps_pytorchs_attention_choice():
    """Prediction runs under inference_mode: no math-kernel restriction there (a large
    window's global attention would materialise its token x token scores)."""
    from torch.nn.attention import _cur_sdpa_kernel_backends

    from dama_det.utils.device import autocast_context

    default = _cur_sdpa_kernel_backends()
    assert len(default) > 1
    with torch.inference_mode(), autocast_context(CPU, torch.bfloat16):
        assert _cur_sdpa_kernel_backends() == default
        assert torch.nn.Linear(16, 16)(torch.randn(2, 16)).dtype == torch.bfloat16
    with autocast_context(CPU, torch.bfloat16):
        assert [b.name for b in _cur_sdpa_kernel_backends()] == ["MATH"]
    assert _cur_sdpa_kernel_backends() == default


def test_explicit_attention_only_for_cpu_bf16_training():
    from timm.models.vision_transformer import Block

    from dama_det.utils.device import explicit_attention_for_cpu_bf16

    model = torch.nn.Sequential(Block(32, 4), Block(32, 4))
    assert explicit_attention_for_cpu_bf16(model, CPU, None) == 0
    assert explicit_attention_for_cpu_bf16(model, torch.device("cuda"), torch.bfloat16) == 0
    assert all(b.attn.fused_attn for b in model)
    assert explicit_attention_for_cpu_bf16(model, CPU, torch.bfloat16) == 2
    assert not any(b.attn.fused_attn for b in model)
    assert explicit_attention_for_cpu_bf16(model, CPU, torch.bfloat16) == 0  # already explicit


def test_explicit_attention_computes_the_same_function_with_bf16_matmuls():
    """Same weights: the explicit path equals the fused kernel in fp32; under CPU bf16
    autocast its attention matmuls really run in bf16 and it stays close to fp32."""
    import copy

    from timm.models.vision_transformer import Block

    from dama_det.utils.device import autocast_context, explicit_attention_for_cpu_bf16

    torch.manual_seed(0)
    fused = Block(64, 4)
    explicit = copy.deepcopy(fused)
    assert explicit_attention_for_cpu_bf16(explicit, CPU, torch.bfloat16) == 1
    x = torch.randn(2, 17, 64, requires_grad=True)
    reference = fused(x)
    torch.testing.assert_close(explicit(x), reference, rtol=1e-5, atol=1e-5)

    matmul_dtypes = []

    class RecordMatmuls(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if getattr(func, "__name__", "") in ("matmul", "__matmul__"):
                matmul_dtypes.append(out.dtype)
            return out

    with autocast_context(CPU, torch.bfloat16), RecordMatmuls():
        low = explicit(x)
    assert matmul_dtypes == [torch.bfloat16, torch.bfloat16]  # q k^T and attn v
    err = (low.float() - reference).norm() / reference.norm()
    assert err < 0.02
    low.float().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_active_autocast_dtype_follows_the_context():
    from dama_det.utils.device import active_autocast_dtype

    assert active_autocast_dtype("cpu") is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert active_autocast_dtype("cpu") == torch.bfloat16
        with torch.autocast("cpu", enabled=False):
            assert active_autocast_dtype("cpu") is None
    assert active_autocast_dtype("cpu") is None
