"""alerts/postfix-insights.rules.yml: promtool accepts the rules and passes their unit tests
(alerts/tests.yml, exact annotations including the drill-down URL); every alert has a summary,
a runbook and a messages_url into the search dashboard; every metric is one the registry
exports; every alert has a test that makes it fire."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import ROOT
from test_dashboards import (
    DASHBOARDS,
    grafana_slug,
    promql_metric_names,
    registry_names,
    variables,
)

ALERTS = ROOT / "alerts"
RULES = ALERTS / "postfix-insights.rules.yml"
TESTS = ALERTS / "tests.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt install prometheus)")
# series Prometheus makes itself, not our registry
SYNTHETIC = {"up"}


def rules() -> dict[str, dict[str, str]]:
    """alert -> {expr, summary, runbook, messages_url, ...} from the rules file (no YAML library in
    the venv; the file keeps `expr: |` blocks and one-line quoted annotations)."""
    out = {}
    for chunk in re.split(r"^      - alert: ", RULES.read_text(), flags=re.MULTILINE)[1:]:
        name, _, body = chunk.partition("\n")
        fields = {}
        m = re.search(r"^        expr: \|\n((?:          .*\n)+)", body, re.MULTILINE)
        fields["expr"] = m[1] if m else re.search(r"^        expr: (.+)$", body, re.MULTILINE)[1]
        for key, value in re.findall(r"^          (\w+): \"(.*)\"$", body, re.MULTILINE):
            fields[key] = value.replace('\\"', '"')
        out[name.strip()] = fields
    return out


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    proc = promtool("test", "rules", str(TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_unit_tests_notice_a_changed_link(tmp_path: Path) -> None:
    """The unit tests pin the URL: a rules file whose link drops the domain must fail them."""
    broken = RULES.read_text().replace("var-domain={{ $labels.domain | urlquery }}&", "")
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(TESTS, tmp_path / TESTS.name)
    proc = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert proc.returncode != 0 and "var-domain=bigmail.example" in proc.stdout + proc.stderr


def test_every_alert_is_annotated_and_links_to_the_search() -> None:
    found = rules()
    assert len(found) >= 10
    search = DASHBOARDS["postfix-search"]
    search_vars = set(variables(search))
    prefix = "{{ $externalLabels.grafana_url }}"
    for name, fields in found.items():
        for key in ("summary", "description", "runbook", "messages_url"):
            assert fields.get(key), f"{name} has no {key}"
        url = fields["messages_url"]
        assert url.startswith(prefix + "/d/"), f"{name}: {url}"
        plain = re.sub(r"\{\{.*?\}\}", "X", url[len(prefix):])
        parts = urlsplit(plain)
        assert parts.path == f"/d/{search['uid']}/{grafana_slug(search['title'])}", name
        keys = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
        assert "from" in keys and "to" in keys, f"{name}: no time range"
        for key in keys:
            assert key in ("from", "to") or (key.startswith("var-") and key[4:] in search_vars), f"{name}: {key}"
        if "by (domain)" in fields["expr"]:
            assert "var-domain={{ $labels.domain | urlquery }}" in url, f"{name} loses its domain"


def test_runbooks_point_at_existing_docs() -> None:
    for name, fields in rules().items():
        doc = re.match(r"([\w./-]+\.md)(?:#([\w-]+))?", fields["runbook"])
        if not doc:
            continue
        path = ROOT / doc[1]
        assert path.exists(), f"{name}: {doc[1]} does not exist"
        if doc[2]:
            anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
                       for h in re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)}
            anchors |= set(re.findall(r'<a id="([\w-]+)"', path.read_text()))
            assert doc[2] in anchors, f"{name}: no #{doc[2]} in {doc[1]}"


def test_every_metric_is_exported(tmp_path: Path) -> None:
    exported = registry_names(tmp_path) | SYNTHETIC
    for name, fields in rules().items():
        names = promql_metric_names(fields["expr"])
        assert names, name
        assert names <= exported, f"{name}: {names - exported} not exported by the registry"


def test_every_alert_has_a_firing_test_with_its_link() -> None:
    text = TESTS.read_text()
    fired = set()
    for m in re.finditer(r"alertname: (\w+)\n\s+exp_alerts:\n(.*?)(?=\n\s+- eval_time:|\n  - name:|\Z)", text, re.DOTALL):
        if "messages_url:" in m[2]:
            fired.add(m[1])
    assert fired == set(rules()), set(rules()) ^ fired
    assert "external_labels:\n      grafana_url:" in text
