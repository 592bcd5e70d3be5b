"""What ``make bench`` runs: figures measured side by side in one run, printed with their targets, never asserted."""


def print_ratios(title: str, figures: dict, targets: dict) -> None:
    """One line per figure, with its verdict where ``targets`` gives an upper bound."""
    print(title)
    for name, value in figures.items():
        target = targets.get(name)
        verdict = "" if target is None else f"  target <= {target}: {'met' if value <= target else 'NOT met'}"
        print(f"  {name:<44} {value:8.3f}{verdict}")
