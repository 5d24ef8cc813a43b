# iP-VAE neuromorphic toolkit. `make demo` and `make test` each work on a fresh clone on their own.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The pretrained default shipped in the repository (see pretrained/README.md).
PRETRAINED := pretrained/mnist_k512
DEMO_OUT := out/demo

.PHONY: setup test test-default-threads test-1thread test-slow demo train pretrained bench results results-report results-spread results-quick lint clean

# Find a Python 3.10 (lava-nc 0.10 and lava-dl 0.6 require it): a python3.10 that runs, else pyenv's.
define find_python310
$(shell \
  if python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then command -v python3.10; \
  elif command -v pyenv >/dev/null 2>&1; then \
    for p in $$(ls -d "$$(pyenv root)"/versions/3.10*/bin/python3.10 2>/dev/null | sort -V -r); do \
      "$$p" -c 'import sys' >/dev/null 2>&1 && { echo "$$p"; break; }; done; \
  fi)
endef

setup: $(STAMP)

$(STAMP): pyproject.toml
	@PY310="$(call find_python310)"; \
	if [ -z "$$PY310" ]; then \
	  echo "error: no Python 3.10 found (lava-nc 0.10.0 needs 3.10). Install it, e.g. 'pyenv install 3.10.13', or put python3.10 on PATH." >&2; exit 1; fi; \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$PY310"; "$$PY310" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip check
	@touch $(STAMP)

# The suite must pass at any thread count (float reductions, and with them the last bits of training, change
# with it): `make test` runs it with the default threads (one per core) and again with one thread.
test: test-default-threads test-1thread

test-default-threads: setup
	$(PY) -m pytest -q

test-1thread: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

demo: setup
	$(VENV)/bin/ipvae demo $(PRETRAINED) --out $(DEMO_OUT)

# The exact commands that produced the shipped pretrained model, six chained stages (pretrained/README.md);
# it trains into runs/ so the shipped copy is never overwritten. Stage 6 moves the start to the dense side of
# the fixed point (init_start_u; docs/sparsity.md) before its epoch, so the code does not get denser with t.
pretrained: setup
	$(VENV)/bin/ipvae train --config pretrained/mnist_k512.json --out runs/mnist_k512_stage1
	$(VENV)/bin/ipvae train --config pretrained/mnist_k512.stage2.json --out runs/mnist_k512_stage2
	$(VENV)/bin/ipvae train --config pretrained/mnist_k512.stage3.json --out runs/mnist_k512_stage3
	$(VENV)/bin/ipvae train --config pretrained/mnist_k512.stage4.json --out runs/mnist_k512_stage4
	$(VENV)/bin/ipvae train --config pretrained/mnist_k512.stage5.json --out runs/mnist_k512_stage5
	$(VENV)/bin/ipvae train --config pretrained/mnist_k512.stage6.json --out runs/mnist_k512

train: setup
	$(VENV)/bin/ipvae train --data mnist --out runs/mnist

bench: setup
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/quantization.py
	$(PY) benchmarks/lava_speed.py
	$(PY) benchmarks/pruning.py
	$(PY) benchmarks/energy.py

# The paper's six experiments at the headline budget, LONG (ipvae/paper/budget.py: every MNIST model 10 epochs,
# one seed), then docs/results.md and README's headline block from their JSON. Resumable across sessions:
# models with done.json and finished parts in runs/bench-long are reused, an interrupted model resumes from its
# train state. Two halves of the model table train side by side, one core and one thread each
# (OMP_NUM_THREADS=1: two processes of 2 OpenMP threads on 2 cores spin against each other and run tens of
# times slower); the last `paper all` finds every part done and assembles the six experiments over all models.
RESULTS_HALF_A := ipvae igrelu pc lca gvae_conv
RESULTS_HALF_B := igvae pvae_conv iai
define paper_halves
	@export OMP_NUM_THREADS=1; \
	$(VENV)/bin/ipvae paper all --budget $(1) --out $(2) --models $(RESULTS_HALF_A) & half_a=$$!; \
	$(VENV)/bin/ipvae paper all --budget $(1) --out $(2) --models $(RESULTS_HALF_B); half_b=$$?; \
	wait $$half_a && [ $$half_b -eq 0 ]
	OMP_NUM_THREADS=1 $(VENV)/bin/ipvae paper all --budget $(1) --out $(2)
endef

# The experiments' JSON, figures and Markdown (not the models) are committed in PAPER_LONG, so that
# `make results-report` rewrites docs/results.md and README's headline without rerunning anything.
PAPER_LONG := benchmarks/results/paper_long
PAPER_EXPERIMENTS := mnist natural convergence rotation novel features
results: setup
	$(call paper_halves,long,runs/bench-long)
	rm -rf $(PAPER_LONG) && mkdir -p $(PAPER_LONG) && cp -p runs/bench-long/manifest.json $(PAPER_LONG)/
	for name in $(PAPER_EXPERIMENTS); do mkdir -p $(PAPER_LONG)/$$name && \
	  cp -p runs/bench-long/$$name/*.json runs/bench-long/$$name/*.md runs/bench-long/$$name/*.png $(PAPER_LONG)/$$name/; done
	$(MAKE) results-report

results-report: setup
	$(VENV)/bin/ipvae paper report --budget long --out $(PAPER_LONG) --report docs/results.md --headline README.md

# The short budget FULL (1 epoch, 3 seeds): the seed-to-seed spread beside the one-seed headline.
results-spread: setup
	$(call paper_halves,full,runs/bench)
	$(VENV)/bin/ipvae paper report --budget full --out runs/bench --report docs/results-spread.md

# The same at the smoke budget (minutes, one seed): docs/results-quick.md, labelled as not results.
results-quick: setup
	$(VENV)/bin/ipvae paper all --quick --out runs/bench-quick
	$(VENV)/bin/ipvae paper report --quick --out runs/bench-quick --report docs/results-quick.md

lint: setup
	$(PY) -m compileall -q ipvae train export lava_models tests sim_tests hw_tests benchmarks

clean:
	rm -rf out runs .pytest_cache
