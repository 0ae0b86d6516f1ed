# The two commands a new machine needs: `make run` and `make test`. Both set up .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The coqui-tts registration tooling (torch) lives in its own environment: serving never needs it.
COQUI_VENV := .venv-coqui
COQUI_STAMP := $(COQUI_VENV)/.installed

.PHONY: run test lint bench clean coqui chromium cluster-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# torchaudio 2.11's native libraries are CUDA builds that cannot load beside the CPU torch
# 2.13; its extension is optional and VITS inference/export only need the pure-Python part.
$(COQUI_STAMP): pyproject.toml coqui-constraints.txt
	$(PYTHON) -m venv $(COQUI_VENV)
	$(COQUI_VENV)/bin/pip install --quiet -c coqui-constraints.txt -e '.[coqui]'
	rm -f $(COQUI_VENV)/lib/python3.11/site-packages/torchaudio/lib/*.so
	touch $(COQUI_STAMP)

coqui: $(COQUI_STAMP)

# The service on the embedded default: one process, bundled voice, SQLite, local folders
# under ~/.voicepocket; an API key for owner "demo" is written to ~/.voicepocket/demo.key.
run: $(STAMP)
	$(BIN)/voicepocket serve

# Browser tests drive Debian's chromium (never a browser download).
chromium:
	command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The cluster tests start their own redis-server (on a Unix socket only) and run Ray in a
# private network namespace (unshare, ip).
cluster-tools:
	command -v redis-server >/dev/null && command -v unshare >/dev/null && command -v ip >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		redis-server iproute2 util-linux >/dev/null; }

test: $(STAMP) $(COQUI_STAMP) chromium cluster-tools
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/voicepocket/pool.py src/voicepocket/voices
	$(BIN)/pytest --durations=15

bench: $(STAMP) $(COQUI_STAMP)
	$(BIN)/voicepocket bench
	$(BIN)/voicepocket bench --suite seed

clean:
	rm -rf $(VENV) $(COQUI_VENV)
