# The two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lock lint test test-images demo bench clean

install: $(STAMP)

# Re-installs only when pyproject.toml or the lock changes; the project itself is an editable
# install, its dependencies at the lock's exact versions (pyproject.toml has only ranges).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[test,lint]'
	touch $(STAMP)

# A new lock: the newest releases within pyproject.toml's ranges (torch stays at the CPU build
# this machine kind has on disk), installed into a scratch venv and frozen.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q --disable-pip-version-check -e '.[test,lint]' 'torch==2.13.0'
	{ sed -n '1,2p' requirements.lock; .venv-lock/bin/pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install
	$(PY) -m pytest

# The slow image check: `lepton build` of functions/digits with buildah, served from the image.
test-images: install
	LEPTON_IMAGE_TESTS=1 $(PY) -m pytest -m images

demo: install
	$(PY) examples/demo.py

bench: install
	$(PY) tests/bench/runtime_overhead.py
	$(PY) tests/bench/cold_start.py
	$(PY) tests/bench/router_overhead.py
	$(PY) tests/bench/bucket_throughput.py
	$(PY) tests/bench/events.py
	$(PY) tests/bench/jobs.py
	$(PY) tests/bench/websocket.py
	$(PY) tests/bench/scale.py
	$(PY) tests/bench/burst.py
	$(PY) tests/bench/log_overhead.py
	$(PY) tests/bench/batching.py
	$(PY) tests/bench/quantization.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
