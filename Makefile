# Two commands do everything:  make book   and   make test
# PROFILE=ci|demo|paper selects the profile (default demo).
PROFILE ?= demo
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test run venv lint clean chromium

# (Re)install when requirements.txt or pyproject.toml change, or when .venv is missing.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mrsisr)"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/mrsisr run --profile $(PROFILE)

book: $(STAMP)
	$(BIN)/mrsisr run --profile $(PROFILE)
	$(BIN)/mrsisr book --profile $(PROFILE)

# The browser test needs Debian's chromium; install it when missing and we may (root).
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf _build book/executed
