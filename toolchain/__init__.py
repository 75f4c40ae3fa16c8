"""The offline toolchain around the program: synthesis under Pulumi's mock engine
(`synth`, `mocks`, with Pulumi's internals behind `engine`), plan diffs (`diff`), the
validators against vendored schemas (`validate`, `schemas/`), the first-deploy checks
(`first_deploy`, `charts`) and the CI reachability check (`ci_reach`).

`stacks/` is the program `pulumi up` runs and never imports this package; this package runs
that program and reads what it declared.
"""
