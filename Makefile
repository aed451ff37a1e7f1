# The two commands of the README: `make demo` and `make test`.
# Both create .venv and install the project with its test extras when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[worker,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/journey demo

# lint first: it takes well under a second, and a finding fails the run before the tests
test: $(STAMP)
	$(BIN)/ruff check streams agents schemas tests bench tools
	tools/ensure-promtool
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check streams agents schemas tests bench tools

bench: $(STAMP)
	$(BIN)/python bench/replay_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
