"""`cifar models`: list the registered models with their exact parameter counts."""

from __future__ import annotations

import json

import click

from cifar_core.errors import ConfigError
from jobs.options import json_option


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--family", help="Only this family: cnn, efficient, reference, gan, smoke.")
@click.option(
    "--num-classes", type=click.IntRange(min=1, max=1_000_000), default=100, show_default=True,
    help="Classes the heads are sized for."
)
@json_option
def models_cmd(pattern: str | None, family: str | None, num_classes: int, as_json: bool) -> None:
    """List registered models (name, family, parameters, description).

    PATTERN is a shell wildcard such as 'cnn*' or 'wrn*'. Counts are exact and are taken from
    models built on PyTorch's meta device, so even wrn28_10 costs no memory to count.
    """
    from cifar_core.models import get_entry, list_models
    from cifar_core.models.registry import list_families, parameter_count

    if family is not None and family not in list_families():
        raise ConfigError(f"unknown model family {family!r}; known families: {', '.join(list_families())}")
    names = list_models(pattern, family=family)
    if not names:
        raise ConfigError(f"no model matches {pattern or '*'!r}{f' in family {family!r}' if family else ''}")

    rows = []
    for name in names:
        entry = get_entry(name)
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "parameters": parameter_count(name, num_classes=num_classes),
                "description": entry.description,
                "options": [o for o in entry.options() if o != "num_classes"],
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    name_w = max(len("model"), *(len(r["name"]) for r in rows))
    family_w = max(len("family"), *(len(r["family"]) for r in rows))
    click.echo(f"{'model':<{name_w}}  {'family':<{family_w}}  {'parameters':>12}  description")
    for r in rows:
        click.echo(
            f"{r['name']:<{name_w}}  {r['family']:<{family_w}}  {r['parameters']:>12,}  {r['description']}"
        )
