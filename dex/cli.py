"""`dex`: the front door. Thin commands over `stacks` (plan, diff); nothing imports this.

Exit codes: 0 success, 1 the command ran and found a problem it reports (reserved for
checks), 2 bad input (unknown stack, invalid config, unreadable or malformed file).

The commands live in dex/commands/, one module per area; this module only assembles them.
Typer lists the top-level commands first, then the groups, each in the order registered here:
that order is the order of `dex --help`.
"""

from __future__ import annotations

import typer

from dex.commands import images, local, model, pipelines, plan, policy, review, stack_info

app = typer.Typer(
    name="dex",
    help="DEX (DataEngineX): plan, diff and check the platform's Pulumi program offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(plan.plan)
app.command()(review.diff)
app.command()(review.review)
app.command()(model.train)
app.command("config-reference")(stack_info.config_reference)
app.command("stacks")(stack_info.list_stacks_cmd)

app.add_typer(policy.policy_app, name="policy")
app.add_typer(pipelines.pipelines_app, name="pipelines")
app.add_typer(images.images_app, name="images")
app.add_typer(model.model_app, name="model")
app.add_typer(local.local_app, name="local")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
