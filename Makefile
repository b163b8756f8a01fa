# Two entry points, both self-installing into ./.venv:
#   make serve   serve the default models on http://127.0.0.1:8000 (make serve HOST=0.0.0.0
#                PORT=8080 to choose; HEADSTART_HOST / HEADSTART_PORT are honoured when set).
#                With both variants of model_repository/mnist present (they are committed), it
#                installs the service alone, no torch, and trains nothing; without them it
#                installs the train extra and builds them first (headstart build --if-missing)
#   make models  install the train extra and rebuild the committed default models in
#                model_repository/mnist with the default recipe (replacing both variants)
#   make test    install the test tools, lint, type-check and run the test suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= $(or $(HEADSTART_HOST),127.0.0.1)
PORT   ?= $(or $(HEADSTART_PORT),8000)

SERVE_STAMP := $(VENV)/.serve-installed
TRAIN_STAMP := $(VENV)/.train-installed
DEV_STAMP   := $(VENV)/.dev-installed

# The default models, where the service looks for them: both variants' manifest and graph.
MODELS_ROOT    := $(or $(HEADSTART_MODEL_REPOSITORY),model_repository)
DEFAULT_MODELS := $(foreach v,pretrained baseline,$(foreach f,manifest.json model.onnx,\
                      $(MODELS_ROOT)/mnist/$(v)/$(f)))

.PHONY: serve models test test-fast system-packages lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The service alone: what serving the committed models needs (no torch). The train and dev
# installs hold it too, and touch its stamp. --no-compile: the first start compiles only the
# modules it imports, not every module of every package.
$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e .
	touch $@

$(TRAIN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train]'
	touch $(SERVE_STAMP) $@

# The wheelhouse holds the image's wheels at the locked versions (deploy/constraints.txt),
# torch's CPU build included: the container smoke test builds a torch-free environment
# from it with no package index, and the image test hands it to the image build.
# Every wheel is pinned, so the wheels are made once per machine, in a folder of
# WHEEL_CACHE named by a digest of the pins, the requirements and the Python, and a fresh
# clone links them (copies them across file systems) instead of downloading 340 MB again.
WHEEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/headstart/wheelhouse

$(DEV_STAMP): pyproject.toml deploy/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
	$(BIN)/python deploy/requirements.py train postgres > $(VENV)/image-requirements.txt
	@key=$$(cat deploy/constraints.txt $(VENV)/image-requirements.txt | $(BIN)/python -c \
		'import hashlib, sys, sysconfig; print(hashlib.sha256(sys.stdin.buffer.read() + \
		sys.version.encode() + sysconfig.get_platform().encode()).hexdigest()[:16])') && \
	cached=$(WHEEL_CACHE)/$$key && \
	if [ ! -d $$cached ]; then \
		echo "making the wheelhouse in $$cached" && rm -rf $$cached.partial && \
		$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --wheel-dir $$cached.partial \
			-c deploy/constraints.txt -r $(VENV)/image-requirements.txt setuptools && \
		mv $$cached.partial $$cached; \
	fi && \
	rm -rf $(VENV)/wheelhouse && \
	{ cp -al $$cached $(VENV)/wheelhouse 2>/dev/null || cp -a $$cached $(VENV)/wheelhouse; }
	touch $(SERVE_STAMP) $(TRAIN_STAMP) $@

# headstart says what went wrong in one line (a busy port exits 75) and make fails with it.
SERVE := $(BIN)/headstart serve --host $(HOST) --port $(PORT)

ifeq ($(wildcard $(DEFAULT_MODELS)),$(strip $(DEFAULT_MODELS)))
serve: $(SERVE_STAMP)
	@$(SERVE)
else
serve: $(TRAIN_STAMP)
	$(BIN)/headstart build --if-missing
	@$(SERVE)
endif

# headstart build trains both variants first, then exports each beside the old one and swaps
# it in once it has passed its checks: an interrupted rebuild leaves every variant whole.
models: $(TRAIN_STAMP)
	$(BIN)/headstart build --replace --model-repository model_repository

test: system-packages lint typecheck pytest

# Debian programs the suites drive for real (see tests/system/packages.txt).
system-packages:
	tests/system/install.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy's cache lives outside the clone: it checks every entry against its file's contents, so
# a fresh clone reuses what an earlier one checked (48 s cold, 3 s from the cache here).
MYPY_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/headstart/mypy

typecheck: $(DEV_STAMP)
	$(BIN)/mypy --cache-dir $(MYPY_CACHE)

# --durations=30: every run says where its time went.
pytest: $(DEV_STAMP)
	$(BIN)/pytest --durations=30

# The inner loop: everything but the suites that drive real system programs (containers,
# browsers, databases, fuzzers, bombs).
test-fast: $(DEV_STAMP)
	$(BIN)/pytest -m 'not system' -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
