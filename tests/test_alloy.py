"""The Alloy configurations in alloy/: well-formed Alloy syntax (Alloy itself cannot be
installed here), only real component names, references to components that exist, and every
URL on our service (insights.example:8080) a path the service routes."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT
from test_dashboards import route_regex, router_paths

ALLOY = ROOT / "alloy"
CONFIGS = sorted(ALLOY.glob("*/config.alloy"))
SERVICE_HOST = "insights.example:8080"

# Component names checked against Alloy's reference (docs/sources/reference/components/ in
# grafana/alloy): the ones these configurations may reasonably use.
KNOWN_COMPONENTS = {
    "prometheus.scrape", "prometheus.remote_write", "prometheus.relabel", "prometheus.exporter.unix",
    "discovery.relabel", "discovery.file", "local.file", "local.file_match",
    "loki.source.file", "loki.source.syslog", "loki.source.journal", "loki.source.api",
    "loki.process", "loki.relabel", "loki.write", "loki.echo",
}
# blocks nested in components (not components themselves)
KNOWN_BLOCKS = {"endpoint", "listener", "rule", "authorization", "basic_auth", "tls_config", "queue_config",
                "wal", "stage.regex", "stage.labels", "stage.timestamp", "stage.static_labels", "decompression"}


@dataclass
class Block:
    name: str
    label: str | None
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Block] = field(default_factory=list)


TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<open>[{\[(])
  | (?P<close>[}\])])
""", re.VERBOSE | re.DOTALL)


def strip_comments(text: str) -> str:
    """Comments out, strings kept (a // inside a URL is not a comment)."""
    return TOKEN.sub(lambda m: " " * len(m[0]) if m["comment"] else m[0], text)


def check_balance(text: str) -> None:
    stack: list[tuple[str, int]] = []
    pairs = {"}": "{", "]": "[", ")": "("}
    for m in TOKEN.finditer(text):
        if m["open"]:
            stack.append((m["open"], m.start()))
        elif m["close"]:
            line = text.count("\n", 0, m.start()) + 1
            assert stack and stack[-1][0] == pairs[m["close"]], f"unbalanced {m['close']} on line {line}"
            stack.pop()
    assert not stack, f"unclosed {stack[-1][0]} on line {text.count(chr(10), 0, stack[-1][1]) + 1}"
    assert text.count('"') % 2 == 0 or re.search(r'\\"', text), "odd number of quotes"


BLOCK_OPEN = re.compile(r'^(?P<name>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)(?:\s+"(?P<label>[A-Za-z0-9_]+)")?\s*\{$')
ATTR = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*)\s*=\s*(?P<value>.+)$")


def parse(text: str) -> list[Block]:
    """Alloy's statements, one a line (as these files are written): `name "label" {`, `name {`,
    `attr = value` (a value may span lines until its brackets close), and `}`."""
    clean = strip_comments(text)
    check_balance(clean)
    root = Block("<root>", None)
    stack = [root]
    lines = iter(enumerate(clean.splitlines(), 1))
    for number, raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line == "}":
            assert len(stack) > 1, f"line {number}: stray }}"
            stack.pop()
            continue
        if m := BLOCK_OPEN.match(line):
            block = Block(m["name"], m["label"])
            stack[-1].children.append(block)
            stack.append(block)
            continue
        m = ATTR.match(line)
        assert m, f"line {number}: neither a block nor an attribute: {raw!r}"
        assert len(stack) > 1, f"line {number}: attribute outside a block"
        value = m["value"]
        while depth(value) > 0:  # a list or object over several lines
            value += "\n" + next(lines)[1]
        assert depth(value) == 0, f"line {number}: brackets of {m['key']} do not close"
        assert m["key"] not in stack[-1].attrs, f"line {number}: {m['key']} set twice"
        stack[-1].attrs[m["key"]] = value.strip().rstrip(",")
    assert len(stack) == 1, f"block {stack[-1].name} not closed"
    return root.children


def depth(value: str) -> int:
    d = 0
    for m in TOKEN.finditer(value):
        d += 1 if m["open"] else -1 if m["close"] else 0
    return d


def walk(blocks: list[Block]) -> list[Block]:
    out = []
    for b in blocks:
        out.append(b)
        out += walk(b.children)
    return out


def test_parser_rejects_broken_files() -> None:
    with pytest.raises(AssertionError):
        parse('loki.write "x" {\n  endpoint {\n    url = "http://a"\n}\n')
    with pytest.raises(AssertionError):
        parse('loki.write "x" {\n  url "http://a"\n}\n')
    with pytest.raises(AssertionError):
        parse('loki.write "x" {\n  a = [1, 2\n}\n')
    assert parse('a.b "c" {\n  x = "//not a comment" // a comment\n}\n')[0].attrs["x"] == '"//not a comment"'


def test_every_scenario_has_a_config_and_a_readme() -> None:
    folders = {p.parent.name for p in CONFIGS}
    assert folders == {"scrape-metrics", "ship-mail-logs", "syslog-relay"}
    for folder in folders:
        readme = (ALLOY / folder / "README.md").read_text()
        assert "config.alloy" in readme and len(readme) > 300


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_config_is_well_formed_with_real_components(path: Path) -> None:
    top = parse(path.read_text())
    assert top
    defined = set()
    for block in top:
        assert block.name in KNOWN_COMPONENTS, f"{block.name} is not an Alloy component we know"
        assert block.label, f"{block.name} needs a label"
        assert (block.name, block.label) not in defined, f"{block.name} {block.label} defined twice"
        defined.add((block.name, block.label))
        for child in walk(block.children):
            assert child.label is None and child.name in KNOWN_BLOCKS, f"{child.name} inside {block.name}"
    # every reference names a component defined in this file
    text = strip_comments(path.read_text())
    for ref in re.findall(r"\b((?:prometheus|loki|local|discovery)(?:\.[a-z_]+)+)\.([a-z_]+)\.(receiver|targets|rules|output)\b",
                          text):
        assert (ref[0], ref[1]) in defined, f"{path.name}: {'.'.join(ref)} refers to an undefined component"
    for block in top:
        if "forward_to" in block.attrs:
            assert block.attrs["forward_to"].startswith("["), block.name
            # a loki.relabel kept only for its `rules` export forwards nowhere
            used_for_rules = f"{block.name}.{block.label}.rules" in text
            assert "receiver" in block.attrs["forward_to"] or used_for_rules, f"{block.name} forwards nowhere"


def service_urls(path: Path) -> list[str]:
    text = strip_comments(path.read_text())
    urls = [u for u in re.findall(r'"(https?://[^"]+)"', text) if urlsplit(u).netloc == SERVICE_HOST]
    scrape = [b for b in parse(path.read_text()) if b.name == "prometheus.scrape"]
    for b in scrape:
        if SERVICE_HOST in b.attrs["targets"]:
            urls.append(f"http://{SERVICE_HOST}{b.attrs.get('metrics_path', '/metrics').strip(chr(34))}")
    return urls


def test_every_url_on_the_service_is_routed() -> None:
    routes = router_paths()
    seen = set()
    for path in CONFIGS:
        for url in service_urls(path):
            p = urlsplit(url).path
            assert any(route_regex(r).match(p) for r in routes), f"{path.parent.name}: {p} is not a route"
            seen.add(p)
    assert seen == {"/metrics", "/loki/api/v1/push"}


def test_scenarios_do_what_they_say() -> None:
    by_folder = {p.parent.name: {(b.name, b.label): b for b in parse(p.read_text())} for p in CONFIGS}
    scrape = by_folder["scrape-metrics"]
    job = next(b for (n, _), b in scrape.items() if n == "prometheus.scrape")
    assert job.attrs["job_name"] == '"postfix-insights"'  # alerts/ select on this job
    assert any(n == "prometheus.remote_write" for n, _ in scrape)

    ship = by_folder["ship-mail-logs"]
    match = next(b for (n, _), b in ship.items() if n == "local.file_match")
    assert '"__path__"         = "/var/log/mail.log*"' in match.attrs["path_targets"]
    assert '"__path_exclude__" = "/var/log/mail.log?*"' in match.attrs["path_targets"]
    write = next(b for (n, _), b in ship.items() if n == "loki.write")
    assert "host = constants.hostname" in write.attrs["external_labels"]
    assert write.children[0].attrs["bearer_token"] == 'sys.env("POSTFIX_INSIGHTS_TOKEN")'

    relay = by_folder["syslog-relay"]
    source = next(b for (n, _), b in relay.items() if n == "loki.source.syslog")
    formats = {(c.attrs["protocol"], c.attrs["syslog_format"]) for c in source.children if c.name == "listener"}
    assert formats == {('"tcp"', '"rfc5424"'), ('"udp"', '"rfc3164"')}
    relabel = next(b for (n, _), b in relay.items() if n == "loki.relabel")
    targets = {c.attrs["target_label"] for c in relabel.children}
    assert targets == {'"host"', '"app"'}  # what the push endpoint rebuilds the syslog header from
