"""``bbpatch yaml`` (a backbone-swapped copy of any stock model YAML) and ``bbpatch list`` (the backbone names)."""

import sys
from pathlib import Path

import click

from bbpatch.engine.tree import TreeError
from bbpatch.models import catalog
from bbpatch.yamlcheck import build

EXIT_BAD_INPUT = 2


def pretrained_arg(value):
    """--pretrained as a YAML arg: 'true' means timm's hub weights, anything else is a checkpoint path."""
    return True if value.lower() == "true" else value


@click.command("yaml")
@click.option(
    "--base", required=True, help="Stock ultralytics model YAML (yolo11n-seg.yaml, rtdetr-l.yaml...) or a YAML path."
)
@click.option(
    "--backbone",
    required=True,
    help="A name from `bbpatch list`; a family (fasternet, mobileone, mobilenetv1..v4: the variant follows the "
    "scale letter, as in the shipped YAMLs); or timm:<model> for any other timm model.",
)
@click.option("--pretrained", default=None, help="'true' for timm's hub weights, or the path of a local checkpoint.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option(
    "--tree",
    default=None,
    type=click.Path(file_okay=False),
    help="The ultralytics tree that finds a stock BASE name and measures its layers' strides (a fork's checkout); "
    "default: the tree holding --base when it is a file in one, else ./ultralytics or the installed package.",
)
@click.option(
    "--adapt-channels/--no-adapt-channels",
    default=None,
    help="1x1 Convs after the backbone that give the head the stock backbone's channels, for heads that assume "
    "them (YOLOv13's HyperACE). Default: added only when the YAML does not build without them; "
    "--no-adapt-channels refuses such a head instead.",
)
def yaml_command(base, backbone, pretrained, output, tree, adapt_channels):
    """Derive a model YAML from BASE with its backbone replaced by BACKBONE (layer 0, head renumbered).

    Each replaced layer's stride comes from a table of stock modules, or is measured by building the layers
    in the tree's own ultralytics (a subprocess): a fork's modules count as what they do. The derived YAML is
    built and run in that tree before it is written (a tree not patched on disk is patched in memory for it).
    """
    args = [] if pretrained is None else [pretrained_arg(pretrained)]
    if output is not None and Path(base).is_file() and output.resolve() == Path(base).resolve():
        bad_input(f"{output}: that is the base YAML; write the derived one to another file")
    try:
        built = build.derive_built(base, backbone, args, tree, adapt_channels)
    except (KeyError, ValueError, TreeError) as error:
        bad_input(error.args[0] if error.args else error)
    for note in built.notes:
        click.echo(f"note: {note}", err=True)
    text = built.text
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        bad_input(f"{output}: cannot write it ({error.strerror or error})")
    click.echo(f"wrote {output}", err=True)


def bad_input(message):
    """One line on stderr and exit 2: nothing was written."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def features_parameters(timm_name):
    """Parameters of timm's features_only model, counted on the meta device (no memory, no weight init)."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(timm_name, features_only=True)
    return sum(p.numel() for p in model.parameters())


@click.command("list")
@click.option("--family", default=None, help="Only this family (mobilenetv4, fasternet...).")
def list_command(family):
    """Every backbone name a model YAML can use, with its timm source, channels and parameters."""
    entries = [e for e in catalog.BACKBONES.values() if family in (None, e.family)]
    if not entries:
        raise click.ClickException(f"no family {family!r}; families: {', '.join(catalog.FAMILY_DEFAULTS)}")
    click.echo(f"{'name':<28}{'timm model':<28}{'family':<14}{'channels P2-P5':<24}{'params':>8}")
    for entry in entries:
        channels = ", ".join(map(str, entry.channels))
        params = features_parameters(entry.timm_name) / 1e6
        click.echo(f"{entry.name:<28}{entry.timm_name:<28}{entry.family:<14}{channels:<24}{params:>7.2f}M")
    click.echo("Parameters of timm's features_only model (MobileOne in its multi-branch training form).")
    click.echo("Any other timm model: TimmBackbone [model_name, pretrained, out_levels, frozen_stages].")
