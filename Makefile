# Two commands matter: `make run` (demo, or LOG=/var/log/mail.log) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PI     := $(VENV)/bin/postfix-insights
PYTHON ?= python3

.PHONY: setup run test system-deps plugin-test bench clean

$(VENV)/.installed: pyproject.toml setup.py $(wildcard exporter/parser/*.c)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# the pages' charting library, vendored from the npm registry (no CDN at run time)
UPLOT := datasource_api/static/vendor/uPlot.iife.min.js
$(UPLOT): webui/package.json webui/package-lock.json webui/vendor.mjs
	npm --prefix webui ci --no-audit --no-fund --loglevel=error
	npm --prefix webui run build --silent

setup: $(VENV)/.installed $(UPLOT)

## make run [LOG="/var/log/mail.log*"]: ingest LOG (default: a generated demo log), show what it found, serve it on :8080
run: setup
	$(PI) demo $(LOG)

## Debian packages the tests use (postfix, prometheus, logger); needs root, done by CI too
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then bash .ci/install-system-deps.sh; \
	 else echo "not root or no apt-get: tests needing postfix/prometheus are skipped"; fi

test: system-deps setup plugin-test
	$(PY) -m pytest -q

## the Grafana plugin: typecheck, jest tests, production build
plugin-test:
	cd grafana-plugin && npm ci --no-audit --no-fund --loglevel=error && npm run typecheck && npm test && npm run build

bench: setup
	$(PY) bench/benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info webui/node_modules grafana-plugin/node_modules grafana-plugin/dist datasource_api/static/vendor
