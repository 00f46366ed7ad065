# Idempotent set-up into a project-local virtual environment, then the job.
#   make demo   transcribe the bundled recording
#   make test   run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch (this machine takes it from a local wheel). A GPU user installs
# their own torch build into $(VENV) first; an importable torch is then left as it is.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.w2v-installed
DEMO_AUDIO := w2v_cli/assets/audio/librispeech-1272-128104-0000.flac

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/w2v transcribe $(DEMO_AUDIO)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
