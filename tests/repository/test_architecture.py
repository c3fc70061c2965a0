"""The architecture contracts hold: import-linter's (pyproject.toml), and the one read
model over the dj-stripe mirror (only ``billing`` touches ``djstripe`` or ``stripe_data``,
not even through an ORM lookup such as ``djstripe_customers__id``)."""

import io
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE_BILLING = ("dashboards", "usage", "revenue", "demo")
MIRROR_WORDS = ("djstripe", "stripe_data")


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def mirror_references(source: str) -> list[tuple[int, str]]:
    """Lines whose code (not comments, not docstrings) names the dj-stripe mirror."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING and token.string.lstrip("rbuRBU").startswith(
            ('"""', "'''")
        ):
            continue
        if any(word in token.string for word in MIRROR_WORDS):
            found.append((token.start[0], token.line.strip()))
    return found


def test_only_billing_reads_the_dj_stripe_mirror():
    offenders = []
    for app in OUTSIDE_BILLING:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, text in mirror_references(path.read_text()):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    for path in sorted((ROOT / "templates").rglob("*.html")):
        if "stripe_data" in path.read_text():
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_check_sees_lookups_and_imports_but_not_comments():
    source = (
        '"""Docs may name djstripe."""\n'
        "from djstripe.models import Customer  # an import\n"
        "# a comment about djstripe\n"
        'Account.objects.filter(djstripe_customers__id="cus_1")\n'
        'x = invoice.stripe_data["lines"]\n'
    )
    assert [line for line, _ in mirror_references(source)] == [2, 4, 5]
