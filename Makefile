# dama_det: `make test` and `make demo` create/refresh the virtual environment .venv
# on first use, then run. Re-running reinstalls nothing unless setup.py or the install
# script changed.
#
#   make test                 lint (ruff) and run the test suite
#   make demo                 the main job on the built-in synthetic data
#   make venv                 only create/refresh the environment
#   make TORCH="torch torchvision --index-url ..." venv   pick another torch build

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.dama_det_installed
DEMO_OUT ?= outputs/demo
PYTEST_ARGS ?=

.PHONY: venv test demo clean benchmarks

venv: $(STAMP)

$(STAMP): setup.py tools/install_detectron2.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev,slurm]"
	$(PY) tools/install_detectron2.py
	@touch $(STAMP)

# ruff lints first (config: pyproject.toml); a lint error fails the target.
# pytest's exit code 5 (no test collected) is turned into a failure.
test: $(STAMP)
	$(VENV)/bin/ruff check dama_det tests tools benchmarks
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(VENV)/bin/dama-det demo --out $(DEMO_OUT)

benchmarks: $(STAMP)
	for b in benchmarks/*_speed.py benchmarks/pretrain_profile.py benchmarks/compile_trial.py; do $(PY) $$b || exit 1; done
	$(PY) benchmarks/collect_results.py

clean:
	rm -rf $(VENV) .cache build *.egg-info
