# goalloc: entry points for a fresh machine. `make test`, `make demo`.
#
# venv   .venv with the build and test tools (once; rm -rf .venv to redo)
# deps   Debian packages the tests use (apt-get, when root and any is missing)
# build  pip install --no-build-isolation -e . : the cffi extension
#        goalloc_ffi/_goalloc*.so plus goalloc_ffi/libgoalloc{,-debug,-nostats}.so
#        (setup.py); redone when csrc/ or the build files change
# test   pytest (extra arguments: PYTEST_ARGS=...)
# demo   goalloc demo
# bench  goalloc bench, the benchmark suite (bench/README.md; BENCH_ARGS=...,
#        e.g. BENCH_ARGS='--quick -a glibc,goalloc')
# bench-deps  Debian packages of the peers and programs the suite runs (root)
# bench-instructions  instructions per malloc+free pair under callgrind
# bench-ffi  pytest-benchmark of the C loops of csrc/benchloops.c (FFI)
# stress the long stress runs under LD_PRELOAD (tests/c): stress.c for
#        STRESS_SECONDS (60) plus 15 s on the debug library (GA_DEBUG=3:
#        lock ownership, a check after every fold) and 15 s with
#        GOALLOC=harden=1, fork_alloc.c
#        with 1000 forks (200 on the debug library), thread_exit.c with 10 000 threads (8 and 64 at a
#        time), mem_pressure.c for 10 cycles, remote_release.c for 30 000
#        generations of owners (3000 on the debug library); each bounded by a timeout
# fuzz   atheris over the FFI heap (tests/fuzz/fuzz_heap.py) for
#        FUZZ_SECONDS (240); installs atheris into .venv; crash inputs go
#        to build/fuzz-artifacts/, the corpus to build/fuzz-corpus/;
#        FUZZ_GOALLOC=key=val,... sets options of the heap (mcache_keep=...)
#
# GOALLOC_DEBUG=0..3 sets GA_DEBUG of the test extension (default 2).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BUILD := build
PYTEST_ARGS ?=
BENCH_ARGS ?=
GOALLOC_DEBUG ?= 2
export GOALLOC_DEBUG

VENV_PACKAGES := 'setuptools>=64' wheel 'cffi>=1.17' 'click>=8' 'rich>=13' 'pytest>=7' 'hypothesis>=6' \
	'matplotlib>=3.5' 'numpy>=1.21' 'pytest-benchmark>=4' 'protobuf>=4' 'pyelftools>=0.29'
DEBIAN_PACKAGES := sqlite3 lua5.4 git perl bash gcc g++ libc6-dev valgrind python3.11 libpython3.11-testsuite \
	binutils golang-go heaptrack
BENCH_DEBIAN_PACKAGES := libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 redis-server lua5.4 sqlite3 valgrind

VENV_STAMP := $(VENV)/.goalloc-venv-stamp
BUILD_STAMP := $(BUILD)/.build-stamp
BUILD_CONFIG := $(BUILD)/.build-config
# csrc itself: its mtime changes when a file is added or removed.
BUILD_INPUTS := csrc $(wildcard csrc/* goalloc_ffi/_build.py \
	goalloc_ffi/_flags.py setup.py pyproject.toml)

.PHONY: all venv deps build test demo bench bench-deps bench-instructions bench-ffi stress fuzz clean FORCE
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

bench: venv deps build
	$(VENV)/bin/goalloc bench $(BENCH_ARGS)

bench-deps:
	@missing=; \
	for p in $(BENCH_DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "bench-deps: all installed"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "bench-deps: missing$$missing; as root: make bench-deps" >&2; exit 1; \
	fi; \
	echo "bench-deps: installing$$missing"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing

bench-instructions: venv deps build
	$(VENV)/bin/goalloc bench --instructions $(BENCH_ARGS)

bench-ffi: venv deps build
	$(VENV)/bin/python -m pytest -p no:cacheprovider bench/bench_ffi.py $(PYTEST_ARGS)

clean:
	rm -rf $(BUILD) *.egg-info .hypothesis .pytest_cache
	rm -f goalloc_ffi/_goalloc*.so goalloc_ffi/_goalloc.c goalloc_ffi/_goalloc.o goalloc_ffi/libgoalloc*.so
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

FORCE:

# ---- stress and fuzz (issue 6) ---------------------------------------------

STRESS_SECONDS ?= 60
FUZZ_SECONDS ?= 240
FUZZ_GOALLOC ?=
STRESS_DIR := $(BUILD)/stress
STRESS_PROGRAMS := $(addprefix $(STRESS_DIR)/,stress fork_alloc thread_exit mem_pressure remote_release)
STRESS_TIMEOUT := 1200

$(STRESS_DIR)/%: tests/c/%.c
	@mkdir -p $(STRESS_DIR)
	cc -O1 -g -pthread -Wall -Wextra -Werror -o $@ $<

# Each run: the command, its output, its duration; any failure or time-out
# (exit 124) stops the target with that status.
stress: venv deps build $(STRESS_PROGRAMS)
	@set -e; \
	release=$$($(VENV)/bin/goalloc lib); debug=$$($(VENV)/bin/goalloc lib --debug); \
	run() { lib=$$1; opts=$$2; shift 2; echo "== GOALLOC=$$opts LD_PRELOAD=$$lib $$*"; \
		start=$$(date +%s); \
		timeout -k 10 $(STRESS_TIMEOUT) env GOALLOC=$$opts LD_PRELOAD=$$lib "$$@"; \
		echo "== $$(basename $$1): $$(( $$(date +%s) - start )) s"; }; \
	run $$release "" $(STRESS_DIR)/stress -s $(STRESS_SECONDS) -q; \
	run $$debug "" $(STRESS_DIR)/stress -s 15 -q; \
	run $$release harden=1 $(STRESS_DIR)/stress -s 15 -q; \
	run $$release "" $(STRESS_DIR)/fork_alloc 1000; \
	run $$debug "" $(STRESS_DIR)/fork_alloc 200; \
	run $$release "" $(STRESS_DIR)/thread_exit 10000 8; \
	run $$release "" $(STRESS_DIR)/thread_exit 10000 64; \
	run $$release "" $(STRESS_DIR)/mem_pressure 256 10; \
	run $$release "" $(STRESS_DIR)/remote_release -i 30000 -w 8 -l; \
	run $$debug "" $(STRESS_DIR)/remote_release -i 3000 -w 8 -l; \
	echo "stress: all runs passed"

fuzz: venv deps build
	@$(VENV)/bin/python -c 'import atheris' 2>/dev/null || $(VENV)/bin/python -m pip install 'atheris>=2.3'
	@mkdir -p $(BUILD)/fuzz-corpus $(BUILD)/fuzz-artifacts
	FUZZ_GOALLOC='$(FUZZ_GOALLOC)' $(VENV)/bin/python tests/fuzz/fuzz_heap.py -max_total_time=$(FUZZ_SECONDS) -max_len=512 \
		-print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz-artifacts/ $(BUILD)/fuzz-corpus
