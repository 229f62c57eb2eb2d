# The two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-images demo bench clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes; the project itself is an editable install.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

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
	$(PY) tests/bench/batching.py
	$(PY) tests/bench/quantization.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
