"""The PR review comment: one comment per stack, plan diff and policy results merged.

CI (`.github/workflows/pr.yml`) plans the base and the head of a pull request, then calls
`dex review STACK BASE HEAD` which prints this comment. The first line is a marker
(`<!-- dex-review:STACK -->`) so the workflow finds and updates its own comment on every push
instead of adding a new one. The summary comes first; the diff and the violations are in
collapsed sections; the whole stays under GitHub's comment limit, trimmed with a note.
"""

from __future__ import annotations

from policies.runner import Report
from policies.runner import render_markdown as render_policy
from toolchain.diff import PlanDiff
from toolchain.diff import render_markdown as render_diff

COMMENT_LIMIT = 65_000
"""GitHub refuses comment bodies over 65,536 characters."""


def marker(stack: str) -> str:
    return f"<!-- dex-review:{stack} -->"


def build_comment(
    stack: str,
    diff: PlanDiff,
    report: Report,
    limit: int = COMMENT_LIMIT,
    head_sha: str | None = None,
) -> str:
    counts = diff.counts()
    summary = report.summary()
    verdict = "✅" if report.passed else "❌"
    changes = (
        f"{counts['add']} to add, {counts['update']} to update, "
        f"{counts['replace']} to replace, {counts['delete']} to delete"
    )
    by_sev = summary["by_severity"]
    lines = [
        marker(stack),
        f"## {verdict} DEX review: `{stack}`" + (f" at `{head_sha[:12]}`" if head_sha else ""),
        "",
        "| plan | policy (" + report.environment + ") |",
        "| --- | --- |",
        f"| {changes} | {summary['mandatory']} mandatory, {summary['advisory']} advisory "
        f"(critical {by_sev['critical']}, high {by_sev['high']}, medium {by_sev['medium']}, "
        f"low {by_sev['low']}) |",
        "",
    ]
    if counts["replace"] or counts["delete"]:
        lines += [
            f"> ⚠️ {counts['replace']} replacement(s) and {counts['delete']} deletion(s): "
            "check the details before merging.",
            "",
        ]
    head = "\n".join(lines)
    room = limit - len(head) - 2
    # The policy section is short and decides the merge; it gets what it needs (at most half),
    # the diff gets the rest.
    policy = render_policy(report, "Policy check", limit=max(room // 2, 500))
    diff_md = render_diff(diff, "Plan diff", limit=max(room - len(policy) - 1, 500))
    body = head + "\n" + policy + "\n" + diff_md
    if len(body) > limit:  # only when limit is tiny; never cut mid-table in practice
        note = "\n\n> ⚠️ Trimmed to fit GitHub's comment limit; run `dex review` locally.\n"
        body = body[: limit - len(note)] + note
    return body
