# make demo / make test bootstrap .venv from nothing (python3 -m venv + pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test test-fast lint format docs demo bench figures screenshots clean test-latest

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint docs
	$(BIN)/python -m pytest

# the docs site (mkdocs.yml, docs/) into .site/: a broken link or a page left out of nav fails it
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

demo: $(STAMP)
	$(BIN)/bpstudy sweep quickstart --workers 2

bench: $(STAMP)
	$(BIN)/python benchmarks/train_step.py

# the PNGs and tables of README.md and docs/studies.md (about 5 minutes; work folder .figures-work/)
figures: $(STAMP)
	$(BIN)/python docs/make_figures.py --work .figures-work

# the dashboard screenshots of README.md and docs/dashboard.md, from the browser test
# (tests/test_dashboard.py, headless Debian chromium; about 1.5 minutes)
screenshots: $(STAMP)
	$(BIN)/python docs/make_screenshots.py

# the fast tests and the MLflow-internals tests against the newest releases of our main
# dependencies, past pyproject's upper bounds (a separate .venv-latest; a few minutes)
LATEST := .venv-latest
test-latest:
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -e '.[test]'
	$(LATEST)/bin/python -m pip install --quiet --upgrade optuna mlflow hydra-core numpy SQLAlchemy
	$(LATEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(optuna|mlflow|hydra-core|numpy|sqlalchemy) '
	$(LATEST)/bin/python -m pytest -m "not slow" tests/test_points.py tests/test_mlflow_internals.py
	$(LATEST)/bin/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .venv-latest outputs multirun .pytest_cache .ruff_cache .figures-work .site
