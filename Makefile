# Set-up and everyday commands. `make demo` and `make test` work from a fresh clone with only
# Python 3.11, Java and gcloud installed: everything else is installed here.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.installed
FFMPEG_DEV = libavcodec-dev libavformat-dev libavfilter-dev libavdevice-dev libswresample-dev libswscale-dev libavutil-dev
BROWSER    = chromium chromium-driver

.PHONY: demo test install sysdeps bench models models-check clean flink-deps flink-up flink-down

demo: install
	$(PY) -m csadetect demo

test: install flink-deps
	$(PY) -m pytest tests

# A real Flink cluster on localhost (docs/deploy.md, "Flink"): Flink 1.19 from PyPI, Beam's Flink
# job server + KafkaIO and a Kafka broker from Maven Central, fetched once into .cache/flink
# (CSADETECT_FLINK_CACHE moves it). Without Maven or the registries the Flink tests skip and say why.
flink-deps: install
	@$(PY) -m csadetect.cluster fetch || echo "flink-deps: not fetched (see above); the Flink tests will skip"

# JobManager, TaskManager, Beam's job server, expansion service, Python worker pool and Kafka, as
# processes; `up` prints the addresses and the pipeline flags, `down` stops them by PID (.flink/cluster.json)
flink-up: flink-deps
	$(PY) -m csadetect.cluster up

flink-down:
	@test -x $(PY) && $(PY) -m csadetect.cluster down || true

# FFmpeg's development packages (vpdq builds from source against them) and the ffmpeg CLI
# (generates the benign demo/test videos); Debian's headless Chromium and its WebDriver (the review
# console's browser tests). Installed with apt-get when missing (needs root).
sysdeps:
	@if ! pkg-config --exists libavcodec libavformat libswscale 2>/dev/null || ! command -v ffmpeg >/dev/null; then \
		echo "installing FFmpeg development packages (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq pkg-config ffmpeg $(FFMPEG_DEV) >/dev/null; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing Chromium and its WebDriver for the console's browser tests (apt-get)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BROWSER) >/dev/null; \
	fi

$(STAMP): requirements.txt requirements-dev.txt setup.py csadetect/signals/_mih.c csadetect/media/_pdq.c | sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel 'setuptools==80.9.0'
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

install: sysdeps $(STAMP)

bench: install
	$(PY) -m benchmarks.bench_known
	$(PY) -m benchmarks.bench_robustness
	$(PY) -m benchmarks.bench_models

# Retrain the reference models (CPU, fixed seeds, reproducible; benign synthetic data only), and
# redraw the demo's pictures of the classifier's proxy class (csadetect/models/reference/demo).
# `make models MODELS_DIR=DIR` writes them elsewhere; `make models-check` retrains into a
# temporary folder and compares with the shipped ones (training/check_reproduction.py; ~15 min).
MODELS_DIR ?= csadetect/models/reference
models: install
	$(PY) -m training.train_grooming --out $(MODELS_DIR)/grooming
	$(PY) -m training.train_embedding --out $(MODELS_DIR)/embedding
	$(PY) -m training.train_classifier --out $(MODELS_DIR)/classifier --embedding $(MODELS_DIR)/embedding
	$(PY) -m training.classifier_corpus --demo-pictures $(MODELS_DIR)/demo

models-check: install
	rm -rf .models-check
	$(MAKE) models MODELS_DIR=.models-check
	$(PY) -m training.check_reproduction --retrained .models-check

clean:
	rm -rf $(VENV) out .demo build dist *.egg-info .flink .models-check
