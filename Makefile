# goalloc: entry points for a fresh machine. `make test`, `make demo`.
#
# venv   .venv with the build and test tools (once; rm -rf .venv to redo)
# deps   Debian packages the tests use (apt-get, when root and any is missing)
# build  pip install --no-build-isolation -e . : the cffi extension
#        goalloc_ffi/_goalloc*.so plus goalloc_ffi/libgoalloc{,-debug}.so
#        (setup.py); redone when csrc/ or the build files change
# test   pytest (extra arguments: PYTEST_ARGS=...)
# demo   goalloc demo
#
# GOALLOC_DEBUG=0..3 sets GA_DEBUG of the test extension (default 2).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BUILD := build
PYTEST_ARGS ?=
GOALLOC_DEBUG ?= 2
export GOALLOC_DEBUG

VENV_PACKAGES := 'setuptools>=64' wheel 'cffi>=1.17' 'click>=8' 'rich>=13' 'pytest>=7' 'hypothesis>=6'
DEBIAN_PACKAGES := sqlite3 lua5.4 git perl bash gcc libc6-dev valgrind

VENV_STAMP := $(VENV)/.goalloc-venv-stamp
BUILD_STAMP := $(BUILD)/.build-stamp
BUILD_CONFIG := $(BUILD)/.build-config
# csrc itself: its mtime changes when a file is added or removed.
BUILD_INPUTS := csrc $(wildcard csrc/* goalloc_ffi/_build.py goalloc_ffi/_cdef.h \
	goalloc_ffi/_flags.py setup.py pyproject.toml)

.PHONY: all venv deps build test demo clean FORCE
all: build

venv: $(VENV_STAMP)

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install $(VENV_PACKAGES)
	touch $@

deps:
	@if ! command -v dpkg-query >/dev/null; then \
		echo "warning: no dpkg-query; make sure these are installed: $(DEBIAN_PACKAGES)" >&2; exit 0; \
	fi; \
	missing=; \
	for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "warning: missing Debian packages:$$missing (as root: make deps); some tests may fail or skip" >&2; exit 0; \
	fi; \
	echo "deps: installing$$missing"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

build: $(BUILD_STAMP)

# Rewritten only when the build configuration changes, so that a different
# GOALLOC_DEBUG rebuilds the extension.
$(BUILD_CONFIG): FORCE
	@mkdir -p $(BUILD)
	@echo "GOALLOC_DEBUG=$(GOALLOC_DEBUG)" | cmp -s - $@ || echo "GOALLOC_DEBUG=$(GOALLOC_DEBUG)" > $@

$(BUILD_STAMP): $(VENV_STAMP) $(BUILD_CONFIG) $(BUILD_INPUTS) | deps
	$(VENV)/bin/pip install --no-build-isolation -e .
	touch $@

test: venv deps build
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: venv deps build
	$(VENV)/bin/goalloc demo

clean:
	rm -rf $(BUILD) *.egg-info .hypothesis .pytest_cache
	rm -f goalloc_ffi/_goalloc*.so goalloc_ffi/_goalloc.c goalloc_ffi/_goalloc.o goalloc_ffi/libgoalloc*.so
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

FORCE:
