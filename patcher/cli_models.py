"""``bbpatch yaml`` (a backbone-swapped copy of any stock model YAML) and ``bbpatch list`` (the backbone names)."""

from pathlib import Path

import click

from . import catalog, yamlgen


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
def yaml_command(base, backbone, pretrained, output):
    """Derive a model YAML from BASE with its backbone replaced by BACKBONE (layer 0, head renumbered)."""
    args = [] if pretrained is None else [pretrained_arg(pretrained)]
    try:
        text = yamlgen.derive(base, backbone, args)
    except (KeyError, ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error.args[0])) from None
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


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
