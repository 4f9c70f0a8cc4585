# mtkd: every target installs what it needs into .venv first (re-installed when pyproject.toml changes).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
PARAMS    ?= params/embedded.yaml
RUN       ?= outputs/embedded
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: study conditions test test-fast lab bench bench-quick bench-precision docs pictures clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e ".[test,ray]"   # no setuptools banner about editable installs
	$(BIN)/python -m ipykernel install --sys-prefix --name mtkd --display-name "mtkd (.venv)" >/dev/null
	@touch $(STAMP)

## make study: the embedded default study, end to end, offline, on CPU
study: $(STAMP)
	$(BIN)/mtkd run $(PARAMS)

## make conditions: when does multi-teacher pay? The default study's tasks with a grid of conditions
conditions: $(STAMP)
	$(BIN)/mtkd run params/conditions.yaml

## make test: the whole test suite (installs the browser for the UI tests when missing)
test: $(STAMP)
	@command -v chromium >/dev/null || bash scripts/install-chromium.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## make test-fast: the unit tests of every layer alone (no smoke study, no browser; ~1-2 min on 2 cores)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests --ignore=tests/e2e -m "not slow and not browser" $(PYTEST_ARGS)

## make lab: JupyterLab on the project's kernel and notebooks
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

## make bench / bench-quick: speed side by side with the peers (see benchmarks/README.md)
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --full
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

## make bench-precision: the embedded study in bf16 (the default) and in fp32, compared (~1 h on 2 cores)
bench-precision: $(STAMP)
	$(BIN)/mtkd run params/embedded.yaml
	$(BIN)/mtkd run params/embedded.yaml --set precision=fp32 --set run_name=embedded-fp32
	$(BIN)/python benchmarks/precision.py outputs/embedded-fp32 outputs/embedded --out benchmarks/precision-embedded.json

## make docs [RUN=outputs/embedded]: README's and docs/findings.md's tables from a finished run (and the
## small result files they quote, kept in docs/results/embedded)
docs: $(STAMP)
	$(BIN)/mtkd docs $(RUN)

## make pictures [RUN=outputs/embedded]: the README's images (headline figure, explorer) from a finished run
pictures: $(STAMP)
	@command -v chromium >/dev/null || bash scripts/install-chromium.sh
	$(BIN)/python scripts/pictures.py $(RUN) --out docs/img

clean-venv:
	rm -rf $(VENV)
