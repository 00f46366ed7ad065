# Idempotent set-up into a project-local virtual environment, then the job.
#   make demo   transcribe the bundled recording (installs the beam-search extra first: the
#               offline demo model decodes with the n-gram LM it ships)
#   make test   run the whole test suite (installs the beam-search extra first)
#   make install-lm   pyctcdecode + kenlm for `transcribe --decoder beam --lm` (numpy kept)
#   make docs   regenerate docs/cli.md from the commands' --help (a test fails when it is stale)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch (this machine takes it from a local wheel). A GPU user installs
# their own torch build into $(VENV) first; an importable torch is then left as it is.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.w2v-installed
LM_STAMP := $(VENV)/.w2v-lm-installed
DEMO_AUDIO := w2v_cli/assets/audio/synth-hibari-4350-9170-0007.flac

.PHONY: install install-lm demo test docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# pyctcdecode declares numpy<2 (it runs on numpy 2): the script installs it with --no-deps,
# builds kenlm from its sdist (about a minute, once) and fails if numpy moved.
install-lm: $(LM_STAMP)

$(LM_STAMP): $(STAMP) scripts/install_lm.sh
	bash scripts/install_lm.sh $(VENV)
	touch $(LM_STAMP)

demo: install install-lm
	$(VENV)/bin/w2v transcribe $(DEMO_AUDIO)

test: install install-lm
	HF_HUB_OFFLINE=1 $(PY) -m pytest

docs: install
	$(PY) scripts/cli_docs.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
