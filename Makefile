# The two commands a new machine needs: `make run` and `make test`. Both set up .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/voicepocket say "Hello! VoicePocket is speaking, in the bundled voice." -o hello.wav

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/voicepocket/pool.py src/voicepocket/voices
	$(BIN)/pytest --durations=15

bench: $(STAMP)
	$(BIN)/voicepocket bench

clean:
	rm -rf $(VENV)
