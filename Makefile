# The README's first two commands: `make demo` (the embedded default, end to end) and `make test`.
# Both create the virtual environment on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: venv demo test test-fast test-e2e test-slurm lint report

SETUP := $(VENV)/.setup-complete
MKL_DISPATCH := $(VENV)/lib/libmolmix_mkl_intel_dispatch.so

# The stamp is written last: a step that failed (pip, apt, WordNet, the compiler) runs again next time.
$(SETUP): requirements.lock pyproject.toml tools/apt_install.sh tools/install_wordnet.sh tools/mkl_intel_dispatch.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	tools/install_wordnet.sh $(VENV)
	command -v cc >/dev/null || tools/apt_install.sh gcc
	cc -shared -fPIC -nostdlib -O2 -o $(MKL_DISPATCH) tools/mkl_intel_dispatch.c
	touch $@

venv: $(SETUP)

demo: venv
	$(BIN)/snakemake --workflow-profile profiles/cpu --cores $(CORES)
	$(BIN)/snakemake --workflow-profile profiles/cpu --cores $(CORES) --report results/report.html
	@echo "Done. Report: results/report.html; tables: results/tables/<dataset>/; figures: results/figures/<dataset>/"

lint: venv
	$(BIN)/ruff check workflow tests bench tools
	$(BIN)/ruff format --check workflow tests bench tools
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --cores 1

test: lint
	tools/apt_install.sh qemu-user  # tests/test_environment.py emulates other CPU kinds
	tools/slurm_install.sh  # tests/test_slurm.py starts a single-node SLURM cluster
	$(BIN)/pytest -q

test-fast: venv
	$(BIN)/pytest -q -m "not slow"

test-e2e: venv
	$(BIN)/pytest -q -m e2e

# profiles/slurm on a single-node SLURM cluster that the test starts and stops (as root; docs/cluster.md).
test-slurm: venv
	tools/slurm_install.sh
	$(BIN)/pytest -q tests/test_slurm.py

report: venv
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

# The paper configuration rehearsed on 2 CPU cores, offline (docs/paper-scale.md, "Rehearsal of the paper
# configuration"): builds the stand-ins under resources/rehearsal/, then runs configs/rehearsal.yaml.
.PHONY: rehearsal
rehearsal: venv
	$(BIN)/python -m molmix.rehearsal --run --cores $(CORES)
