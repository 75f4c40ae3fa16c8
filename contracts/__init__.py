"""What the processes of DEX must agree on, written once: the infrastructure (`stacks`,
`components`), the policy pack, the CLI and the three apps all import these names instead of
spelling them again. Standard library only: the apps' images carry this package, and nothing
here may pull in Pulumi or an app's dependencies (`[tool.importlinter]` holds it so)."""
