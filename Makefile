# statewall: every target sets up what it needs (venv, Python packages, Debian tools when root).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEBS    := conntrack iptables tcpdump iproute2 socat iputils-ping vsftpd tftpd-hpa tftp-hpa \
           lftp curl procps tmux postgresql ipset
PYTEST_ARGS ?=

.PHONY: all setup debs demo test typecheck bench clean

all: test

$(STAMP): pyproject.toml setup.py src/statewall/_speedups.c src/statewall/_chains.c src/statewall/_speedups.h
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP) debs

# Debian tools for the kernel-differential tests: installed only when root and missing.
debs:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	      || echo "warning: could not install$$missing; the tests that need them say so"; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/python -m statewall.demo

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .hypothesis
