"""Build YAMLs in a tree's own ultralytics and describe each model; run as a script by ``adopt_sweep``, never imported.

``python -B -P build_probe.py ROOT OUT IMGSZ < yaml paths (one a line)``: ROOT holds the tree's ``ultralytics/``,
which this process imports (never bbpatch). For every YAML, seeded construction, then: parameters, the sha256 of
the state dict (names, dtypes, shapes, bytes), the layer table (index, from, type, parameters), and the sha256 of
the eval outputs on a seeded image. One JSON line per YAML is appended to OUT as soon as it is known, so a crash
loses only the YAML it happened on.
"""

import hashlib
import json
import signal
import sys
import traceback

PER_YAML_SECONDS = 240
ERROR_CHARS = 240


def tensors(value):
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from tensors(value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors(item)


def digest(items) -> str:
    h = hashlib.sha256()
    for t in items:
        t = t.detach().contiguous().cpu()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def state_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(digest([t]).encode())
    return h.hexdigest()


def model_class(tasks, cfg):
    head = str(cfg.get("head", [[None, None, ""]])[-1][2])
    if "RTDETRDecoder" in head:
        return tasks.RTDETRDetectionModel
    task = tasks.guess_model_task(cfg)
    names = {"segment": "SegmentationModel", "pose": "PoseModel", "classify": "ClassificationModel", "obb": "OBBModel"}
    return getattr(tasks, names.get(task, "DetectionModel"))


def describe(path: str, imgsz: int) -> dict:
    import torch
    from ultralytics.nn import tasks

    cfg = tasks.yaml_model_load(path)
    torch.manual_seed(0)
    model = model_class(tasks, cfg)(path, verbose=False)
    layers = [[getattr(m, "i", None), getattr(m, "f", None), getattr(m, "type", type(m).__name__),
               sum(p.numel() for p in m.parameters())] for m in model.model]
    found = {
        "params": sum(p.numel() for p in model.parameters()),
        "state": state_digest(model),
        "layers": layers,
    }
    model.eval()
    for size in dict.fromkeys((imgsz, 640)):
        torch.manual_seed(1)
        image = torch.rand(1, 3, size, size)
        try:
            with torch.no_grad():
                found["output"] = digest(tensors(model(image)))
            found["imgsz"] = size
            break
        except Exception as error:  # a model that needs its own input size: the stock 640 is tried next
            found["output_error"] = one_line(error)
    return found


def one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    return (text[0] if text else type(error).__name__)[:ERROR_CHARS]


def on_alarm(signum, frame):
    raise TimeoutError(f"did not build within {PER_YAML_SECONDS} s")


def main() -> None:
    root, out, imgsz = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, root)
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, on_alarm)
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # ultralytics prints its model tables; the results go to OUT only
    for path in filter(None, (line.strip() for line in sys.stdin)):
        signal.alarm(PER_YAML_SECONDS)
        try:
            row = {"yaml": path, **describe(path, imgsz)}
        except BaseException as error:  # noqa: BLE001  (a YAML that does not build is a result, not a crash)
            if isinstance(error, KeyboardInterrupt):
                raise
            row = {"yaml": path, "error": one_line(error)}
            traceback.print_exc()
        finally:
            signal.alarm(0)
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
