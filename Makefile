# Two commands matter: `make run` (demo, or LOG=/var/log/mail.log) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PI     := $(VENV)/bin/postfix-insights
PYTHON ?= python3

.PHONY: setup run test system-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

## make run [LOG="/var/log/mail.log*"]: ingest LOG (default: a generated demo log) and show what it found
run: setup
	$(PI) demo $(LOG)

## Debian packages the tests use (postfix, prometheus, logger); needs root, done by CI too
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then bash .ci/install-system-deps.sh; \
	 else echo "not root or no apt-get: tests needing postfix/prometheus are skipped"; fi

test: setup system-deps
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
