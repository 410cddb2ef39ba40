# Two commands do everything on a fresh machine with only Python:
#   make run    creates .venv from requirements.txt when missing, then runs the main job
#   make test   the same venv, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
WORKDIR ?= workdir/default
CONFIG ?= configs/default.py
PY := $(VENV)/bin/python
# glibc malloc that keeps freed memory instead of returning it to the OS every step: CPU training
# and decoding run 1.3-1.4x faster (benchmarks/train_bench.py --plain_malloc shows the difference).
# The one definition is launch/glibc_tunables (also read by launch/local.sh and benchmarks/common.py).
GLIBC_TUNABLES ?= $(shell cat launch/glibc_tunables)
STAMP := $(VENV)/.requirements.stamp

.PHONY: run test bench venv clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

run: $(STAMP)
	GLIBC_TUNABLES=$(GLIBC_TUNABLES) $(PY) -m songglm_jax.main --config=$(CONFIG) --workdir=$(WORKDIR)

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	@for b in benchmarks/*_bench.py; do case $$b in *quality_bench.py|*ablation_bench.py|*infill_bench.py) \
	  echo "== $$b: skipped (trains models or needs a trained workdir: run it on its own, README)"; continue;; \
	  *scale_bench.py) echo "== $$b: skipped (prepares 61k synthetic songs, ~20 min: run it on its own, README)"; continue;; esac; \
	  echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
