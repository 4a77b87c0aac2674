# mailroom: the two set-up commands are `make demo` and `make test` (see README.md).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: demo test bench-log bench-pull bench-engine qtt system-deps clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

system-deps:  ## what the tests need from Debian's packages (Java and Maven for Kafka, ...): scripts/deps/*.sh
	@for f in scripts/deps/*.sh; do bash "$$f" || exit 1; done

demo: $(STAMP)  ## set up and run the demo on the embedded log
	$(VENV)/bin/mailroom demo

test: $(STAMP) system-deps  ## set up and run the whole test suite (starts and stops a local Kafka broker)
	$(PY) -m pytest

bench-log: $(STAMP) system-deps  ## log throughput: embedded and Kafka beside their raw limits
	$(PY) bench/log_bench.py

bench-pull: $(STAMP)  ## pull-query latency: a key lookup on 100k keys over HTTP (p50/p99) beside the HTTP floor
	$(PY) bench/pull_bench.py $(BENCH_ARGS)

bench-engine: $(STAMP) system-deps  ## engine end to end (3 workloads) on both logs beside Kafka Streams, Quix Streams, Faust
	$(PY) bench/engine_bench.py $(BENCH_ARGS)

qtt: $(STAMP)  ## run ksqlDB's public conformance cases (../shared/qtt); record newly passing ones
	$(VENV)/bin/mailroom qtt ../shared/qtt/query-validation-tests/ -q --udf-dir tests/functions/qtt_udfs \
	  --report bench/results/qtt.json --record-passing tests/sql/qtt_passing.txt

clean:  ## remove the venv, caches and local data
	rm -rf $(VENV) .cache .mailroom .pytest_cache
