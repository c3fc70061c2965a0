"""The pricing engine is pure Python: importing it pulls in no Django and no network."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

CHECK = """
import sys
import billing.money, billing.pricing
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {
    "django", "djstripe", "stripe", "requests", "celery", "socket", "http", "urllib3"
})
assert not loaded, loaded
"""


def test_importing_the_engine_loads_no_django_or_network() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
