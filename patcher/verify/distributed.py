"""Distributed smoke test: two CPU ranks, gloo, DistributedDataParallel configured like ultralytics' trainer.

The ranks are forked from the worker, which has torch, ultralytics and the model already loaded, so the
test costs two training steps rather than two interpreter start-ups. Each rank trains on different
data; after backward DDP must have averaged the gradients, so every rank ends with the same ones.
"""

from __future__ import annotations

import copy
import inspect
import multiprocessing
import queue

WORLD_SIZE = 2
STEPS = 2  # an unused-parameter or reduction bug surfaces only on the second step
TIMEOUT = 180


def synthetic_batch(imgsz, rank):
    import torch

    g = torch.Generator().manual_seed(rank)
    n = 3
    return {
        "img": torch.rand(2, 3, imgsz, imgsz, generator=g),
        "cls": torch.randint(0, 2, (n, 1), generator=g).float(),
        "bboxes": torch.rand(n, 4, generator=g) * 0.4 + 0.3,  # xywh, normalized, inside the image
        "batch_idx": torch.tensor([0.0, 1.0, 1.0]),
    }


def gradient_checksum(model):
    import torch

    grads = [p.grad.double().sum() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).sum()) if grads else 0.0


def no_buffer_sync(ddp_class):
    """The keyword ultralytics' trainer passes to stop buffer broadcasts; renamed in torch 2.13."""
    renamed = "forward_sync_buffers" in inspect.signature(ddp_class.__init__).parameters
    return {"forward_sync_buffers" if renamed else "broadcast_buffers": False}


def run_rank(rank, model, imgsz, init_file, results):
    try:
        import torch
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel
        from ultralytics.cfg import get_cfg

        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
        model.args = get_cfg()  # the loss reads its gains from the training arguments
        ddp = DistributedDataParallel(
            model.train(), find_unused_parameters=True, **no_buffer_sync(DistributedDataParallel)
        )
        for step in range(STEPS):
            ddp.zero_grad(set_to_none=True)
            loss, _ = ddp(synthetic_batch(imgsz, rank * STEPS + step))
            loss.sum().backward()
        checksums = [None] * WORLD_SIZE
        dist.all_gather_object(checksums, gradient_checksum(model))
        dist.destroy_process_group()
        results.put((rank, "ok", checksums))
    except BaseException as e:  # reported by the parent; a rank must never hang it
        results.put((rank, "error", f"{type(e).__name__}: {e}"))


def smoke_test(model, imgsz, workdir):
    """Run the ranks; return a detail string or raise AssertionError naming what went wrong."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    init_file = workdir / "ddp-init"
    init_file.unlink(missing_ok=True)
    ranks = [
        context.Process(target=run_rank, args=(r, copy.deepcopy(model), imgsz, init_file, results), daemon=True)
        for r in range(WORLD_SIZE)
    ]
    for p in ranks:
        p.start()
    outcomes = collect(results, ranks)
    errors = [f"rank {r}: {v}" for r, status, v in outcomes if status != "ok"]
    assert not errors, "; ".join(errors)
    checksums = outcomes[0][2]
    assert abs(checksums[0] - checksums[1]) <= 1e-6 * max(1.0, abs(checksums[0])), (
        f"gradients not synchronized: {checksums}"
    )
    return f"{WORLD_SIZE} gloo ranks, {STEPS} DDP steps, gradients synchronized"


def collect(results, ranks):
    outcomes = []
    try:
        for _ in ranks:
            outcomes.append(results.get(timeout=TIMEOUT))
    except queue.Empty:
        outcomes.append((-1, "error", f"ranks did not finish within {TIMEOUT} s"))
    finally:
        for p in ranks:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    return sorted(outcomes, key=lambda o: o[0])
