"""The repository stands alone: nothing in it reads a path outside the clone.

A user's clone has no ``shared/`` folder beside it (the team's reference material lives
there); a test or an app reading it passes on a developer's machine and fails everywhere
else, as ``test_shapes.py`` once did with Stripe's fixtures.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (
    "tests",
    "billing",
    "usage",
    "dashboards",
    "revenue",
    "demo",
    "config",
    "stripe_emulator",
    "benchmarks",
    "scripts",
    "templates",
    ".ci",
)
SCANNED_FILES = ("Makefile", "pyproject.toml", "manage.py")
OUTSIDE = re.compile(
    "|".join(
        [
            re.escape("../" + "shared"),
            re.escape("shared" + "/stripe"),
            re.escape("shared" + "/design"),
            r"""["']""" + "shared" + r"""["']""",  # Path(...) / "shared"
        ]
    )
)


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *SCANNED, *SCANNED_FILES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_no_file_references_a_path_outside_the_repository():
    files = _tracked_files()
    assert len(files) > 100, "the scan must see the project's files"
    offenders = []
    for path in files:
        if path == Path(__file__).resolve():
            continue  # its patterns and examples
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_scan_would_catch_the_old_fixture_path():
    old = 'FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json"'
    assert OUTSIDE.search(old)
    assert OUTSIDE.search("see ../" + "shared/design.md")
    assert not OUTSIDE.search("@shared_task(name='x')")


def test_stripe_fixtures_are_vendored_with_their_license():
    fixtures = ROOT / "tests" / "stripe_emulator" / "fixtures"
    assert (fixtures / "fixtures3.json").stat().st_size > 100_000
    assert "MIT License" in (fixtures / "LICENSE-openapi").read_text()
