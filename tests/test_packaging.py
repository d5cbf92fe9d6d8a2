"""packaging/: the systemd unit (checked by systemd-analyze, offline) and the Dockerfile
(no container engine here: its stages and the files it copies are checked instead)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

UNIT = ROOT / "packaging" / "postfix-insights.service"
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (.ci/run installs systemd)")


def _unit_with_our_binary(tmp_path: Path) -> Path:
    """The unit, starting the postfix-insights this test runs with instead of /usr/local/bin's."""
    exe = Path(sys.executable).with_name("postfix-insights")
    assert exe.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/postfix-insights", str(exe)))
    return unit


@needs_systemd
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    proc = subprocess.run([ANALYZE, "verify", str(_unit_with_our_binary(tmp_path))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_systemd
def test_systemd_unit_sandbox_scores_ok(tmp_path: Path) -> None:
    # exposure 0 (locked down) .. 10 (unprotected); systemd calls up to 3.9 "OK"
    proc = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=25", "--no-pager",
                           str(_unit_with_our_binary(tmp_path))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert re.search(r"Overall exposure level for \S+: [0-2]\.\d", proc.stdout), proc.stdout[-500:]


def test_dockerfile_copies_what_exists_from_stages_it_defines() -> None:
    text = (ROOT / "packaging" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, re.M)
    assert stages == ["webui", "build"]
    for line in re.findall(r"^COPY .*$", text, re.M):
        parts = line.split()[1:]
        if parts[0].startswith("--from="):
            assert parts[0].split("=", 1)[1] in stages, line
            continue
        for source in parts[:-1]:
            assert (ROOT / source).exists(), line
    assert 'CMD ["postfix-insights", "serve"' in text and "USER postfix-insights" in text
