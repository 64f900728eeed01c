# The two commands of the README contract:
#   make demo   create .venv if needed, then run the demo campaign end to end (CPU, no weights)
#   make test   create .venv if needed, then run the test suite
# A second run installs nothing new: .venv/.installed is newer than pyproject.toml and constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# System tools the tests and exporters use (Debian packages), installed when missing.
SYSTOOLS := ffprobe:ffmpeg chromium:chromium chromedriver:chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)

.PHONY: demo test env sysdeps bench clean

demo: $(STAMP) sysdeps
	$(BIN)/ray32 demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

sysdeps:
	@missing=""; for pair in $(SYSTOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

bench: $(STAMP) sysdeps
	$(BIN)/python bench/shot_decode.py

clean:
	rm -rf $(VENV) build .pytest_cache
