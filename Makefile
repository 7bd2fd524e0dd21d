# Two commands do everything:  make book   and   make test
# PROFILE=ci|demo|paper selects the profile (default demo).
PROFILE ?= demo
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test run venv lint clean

# (Re)install when requirements.txt or pyproject.toml change, or when .venv is missing.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/mrsisr run --profile $(PROFILE)

book: $(STAMP)
	$(BIN)/mrsisr run --profile $(PROFILE)
	$(BIN)/mrsisr book --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf _build book/executed
