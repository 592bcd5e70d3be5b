"""Measuring: what ``make bench`` runs (``engine``, ``backbones``, ``verify``, ``git``, ``latency``, ``hook``: figures
measured side by side in one run, printed with their targets, never asserted) and ``bbpatch bench`` (``table``:
parameters, GFLOPs and latency of each model YAML; ``labels`` places its plot's labels)."""


def print_ratios(title: str, figures: dict, targets: dict) -> None:
    """One line per figure, with its verdict where ``targets`` gives an upper bound."""
    print(title)
    for name, value in figures.items():
        target = targets.get(name)
        verdict = "" if target is None else f"  target <= {target}: {'met' if value <= target else 'NOT met'}"
        print(f"  {name:<44} {value:8.3f}{verdict}")
