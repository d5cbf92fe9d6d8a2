"""Run `postfix-insights serve` as a subprocess on free loopback ports, as an operator would."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Service:
    def __init__(self, tmp: Path, db: Path, args: list[str], config: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        cmd = [sys.executable, "-m", "exporter.cli", "serve", "--db", str(db), "--listen", f"127.0.0.1:{self.port}",
               "--year", "2026", "--timezone", "UTC", *args]
        if config is not None:
            cfg = tmp / f"config-{self.port}.toml"
            cfg.write_text(config)
            cmd += ["--config", str(cfg)]
        self.log = open(tmp / f"serve-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}")
            try:
                status, body = http_get(self.url + "/healthz", 1)
                if status == 200:
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not become healthy")

    def health(self) -> dict:
        return json.loads(http_get(self.url + "/healthz")[1])

    def metrics_text(self) -> str:
        return http_get(self.url + "/metrics")[1].decode()

    def wait_idle(self, lines: int, timeout: float = 120) -> None:
        """Until the service has read `lines` lines in total and committed them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if metric_sum(self.metrics_text(), "postfix_insights_lines_read_total") >= lines:
                time.sleep(0.3)
                return
            time.sleep(0.2)
        raise AssertionError(f"service did not read {lines} lines in {timeout} s")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
