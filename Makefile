# Quick start: `make demo` runs the product on embedded servers; `make test` runs the suite.
# Both create .venv from requirements.lock the first time (Python 3.11+, no root needed).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TRAIN_STAMP := $(VENV)/.installed-train
TEST_STAMP := $(VENV)/.installed-test
SOURCE ?=
PYTEST_ARGS ?=

.PHONY: venv venv-train venv-test demo test test-fast test-deps bench clean

venv: $(STAMP)

venv-train: $(TRAIN_STAMP)

venv-test: $(TEST_STAMP)

# Production pins (requirements.lock: the services, no TensorFlow) for the product; training
# pins (TensorFlow, tf2onnx) for `python -m training`; test-only pins on top for `make test`.
$(TRAIN_STAMP): $(STAMP) requirements-train.lock
	$(BIN)/python -m pip install -q -r requirements-train.lock
	touch $(TRAIN_STAMP)

$(TEST_STAMP): $(TRAIN_STAMP) requirements-test.lock
	$(BIN)/python -m pip install -q -r requirements-test.lock
	touch $(TEST_STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"' \
		|| { echo "error: $(PYTHON) is older than 3.11; run make PYTHON=python3.11 ..." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(BIN)/moodstream demo $(if $(SOURCE),--source '$(SOURCE)',)

test-deps:
	@sh scripts/ensure_test_deps.sh

test: venv-test test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: venv-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
