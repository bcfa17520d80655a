"""PyTorch side of scripts/bench-vs-pytorch and scripts/bench-gpu: the same workload as
stylize-video's benchmarks (VGG16 conv layers from weights/vgg16-conv.safetensors up to relu5_1,
style relu1_1..relu5_1 + content relu4_2, max pooling, the project's losses, one Adam step on
the pixels) on the CPU or, with $BENCH_TORCH_DEVICE=cuda, on the GPU.
PRECISION (argument, else $BENCH_PRECISION, else fp32):
- fp32: strict f32 (on CUDA: TF32 off for cuDNN and for matrix products);
- tf32 (CUDA only): PyTorch's default, TF32 convolutions (cuDNN) and strict f32 matrix products;
- bf16: the network runs under torch.autocast(dtype=torch.bfloat16) while Gram matrices and
  losses are computed in f32 from the bf16 features, as ours are; the pixels, the gradient and
  Adam stay f32.
Prints one line: `pytorch WxH device=… precision=… median_ms=… min_ms=… peak_gpu_mib=…` (CUDA:
each iteration ends in a synchronisation; peak memory is the caching allocator's peak
reservation). Bench-only: never a product dependency.

usage: bench_pytorch.py WEIGHTS WIDTH HEIGHT ITERATIONS THREADS [PRECISION]
"""
import contextlib
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

weights_path, width, height, iterations, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
precision = sys.argv[6] if len(sys.argv) > 6 else os.environ.get("BENCH_PRECISION", "fp32")
device = os.environ.get("BENCH_TORCH_DEVICE", "cpu")
if precision not in ("fp32", "bf16", "tf32") or (precision == "tf32" and device == "cpu"):
    sys.exit(f"precision must be fp32 or bf16 (tf32 on cuda), not {precision!r}")
torch.set_num_threads(threads)
torch.manual_seed(0)
if device == "cuda":
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = False

W = {k: v.to(device) for k, v in load_file(weights_path).items()}
W["conv1_1.weight"] = W["conv1_1.weight"].flip(1).contiguous()  # BGR -> RGB input, as ours
BLOCKS = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT = "relu4_2"
ALPHA, BETA, TV = 1.0, 5e-4, 1e-3


def features(x, wanted):
    out = {}
    deepest = max(int(n[4]) * 10 + int(n[6]) for n in wanted)
    for b, (convs, _) in enumerate(BLOCKS, start=1):
        if b > 1:
            x = F.max_pool2d(x, 2)
        for c in range(1, convs + 1):
            if b * 10 + c > deepest:
                return out
            x = F.relu(F.conv2d(x, W[f"conv{b}_{c}.weight"], W[f"conv{b}_{c}.bias"], padding=1))
            name = f"relu{b}_{c}"
            if name in wanted:
                out[name] = x
    return out


def network():
    """The context the network runs in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def f32():
    """Autocast off: what runs in it stays f32 (autocast would make a matmul bf16)."""
    return torch.autocast(device, enabled=False)


def gram(a):
    c = a.shape[1]
    with f32():
        f = a.float().reshape(c, -1)
        return f @ f.t()


def cost(image, content_target, style_targets):
    with network():
        feats = features(image, STYLE + [CONTENT])
    with f32():
        a = feats[CONTENT].float()
        _, c, h, w = a.shape
        j_content = ((content_target - a) ** 2).sum() / (4 * h * w * c)
        j_style = 0
        for name in STYLE:
            a = feats[name]
            _, c, h, w = a.shape
            j_style = j_style + ((style_targets[name] - gram(a)) ** 2).sum() / (2 * h * w * c) ** 2 / len(STYLE)
        j_tv = (((image[:, :, 1:] - image[:, :, :-1]) ** 2).sum() + ((image[:, :, :, 1:] - image[:, :, :, :-1]) ** 2).sum()) / image.numel()
        return ALPHA * j_content + BETA * j_style + TV * j_tv


with torch.no_grad():
    content = torch.rand(1, 3, height, width, device=device) * 255 - 120
    style = torch.rand(1, 3, height, width, device=device) * 255 - 120
    with network():
        content_target = features(content, [CONTENT])[CONTENT].float()
        style_features = features(style, STYLE)
    style_targets = {k: gram(v) for k, v in style_features.items()}
    wanted = torch.bfloat16 if precision == "bf16" else torch.float32
    assert all(v.dtype == wanted for v in style_features.values()), {k: v.dtype for k, v in style_features.items()}
image = content.clone().requires_grad_(True)
optimizer = torch.optim.Adam([image], lr=10.0)
times = []
for i in range(iterations + 2):
    t = time.perf_counter()
    optimizer.zero_grad()
    j = cost(image, content_target, style_targets)
    assert j.dtype == torch.float32
    j.backward()
    optimizer.step()
    if device == "cuda":
        # Ours reads J's terms at the end of each iteration; read J here likewise.
        j.item()
    if i >= 2:  # warm-up
        times.append((time.perf_counter() - t) * 1e3)
peak = torch.cuda.max_memory_reserved() / 2**20 if device == "cuda" else float("nan")
print(f"pytorch {width}x{height} device={device} precision={precision} median_ms={statistics.median(times):.2f} min_ms={min(times):.2f} peak_gpu_mib={peak:.0f}")
