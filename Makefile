# The two commands the README gives: `make demo` (the lab, end to end) and `make test`.
# Both install what they need: Debian packages (scripts/install-deps.sh) and a venv.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: test demo deps venv lint unit bench clean rules

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

deps:
	./scripts/install-deps.sh

lint: venv
	$(BIN)/ruff check .
	MYPY=$(BIN)/mypy ./scripts/typecheck.sh

# three workers on two cores: the namespace and lab tests (one worker, see tests/conftest.py) mostly
# wait for keepalived, Prometheus and Alertmanager while the two others use the cores
unit: venv
	$(BIN)/pytest -q -n 3 --dist loadgroup

test: deps venv lint unit

demo: deps venv
	$(BIN)/mxha lab demo

rules: venv
	$(BIN)/python -m mxha.alerts.generate
	$(BIN)/python -m mxha.dashboards.build

bench: deps venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
