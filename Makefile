# sigmabatch — `make help` lists the targets. Everything runs from ./.venv, created on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,deploy,report,chart

.DEFAULT_GOAL := help

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

.PHONY: help install run test lint format workflows check-generated bench clean report-screenshot
help: ## show this help (coloured on a terminal only)
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on=$$'\033[36m'; off=$$'\033[0m'; else on=; off=; fi; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	awk -v on="$$on" -v off="$$off" 'BEGIN{FS=":.*?## "}{printf "  %s%-16s%s %s\n", on, $$1, off, $$2}'

install: $(STAMP) ## create .venv and install sigmabatch with its dev/deploy extras

run: $(STAMP) ## run the whole pipeline on the embedded default (SQLite, local artifacts, synthetic data)
	$(BIN)/sigmabatch run

test: $(STAMP) ## run the test suite (PostgreSQL at 127.0.0.1:5432 required when CI=true)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP) ## ruff over the code
	$(BIN)/ruff check phases shared workflows tests bench

format: $(STAMP) ## apply ruff's fixes
	$(BIN)/ruff check --fix phases shared workflows tests

workflows: $(STAMP) ## render the Argo manifests into charts/sigmabatch/files
	$(BIN)/python -m workflows.argo render --out charts/sigmabatch/files

check-generated: $(STAMP) ## fail when the committed Argo manifests differ from what the code renders
	$(BIN)/python -m workflows.argo check --out charts/sigmabatch/files

# A small synthetic pipeline in var/report-demo (kept between calls), its report, and a full-page PNG.
REPORT_DEMO := var/report-demo
REPORT_ENV := PYTHONPATH=$(CURDIR) SIGMABATCH_DATABASE_URL=sqlite:///$(CURDIR)/$(REPORT_DEMO)/sigmabatch.db \
	SIGMABATCH_ARTIFACTS=$(CURDIR)/$(REPORT_DEMO)/artifacts SIGMABATCH_PROVIDER=synthetic \
	SIGMABATCH_NOW=2026-11-27T18:00:00-05:00 SIGMABATCH_DEFAULT_SESSIONS=60 SIGMABATCH_SYNTHETIC_SYMBOLS=30
report-screenshot: $(STAMP) ## render a synthetic run's report and screenshot it with headless Chromium (var/report.png)
	@mkdir -p $(REPORT_DEMO)
	@test -f $(REPORT_DEMO)/sigmabatch.db || $(REPORT_ENV) $(BIN)/python -m shared.cli run --no-progress
	$(REPORT_ENV) $(BIN)/python -m shared.cli report --out var/report.html
	$(BIN)/python -m shared.report.screenshot var/report.html var/report.png

bench: $(STAMP) ## benchmark S/M/L universes (PostgreSQL at 127.0.0.1:5432) + kernels vs old loops; < 30 min
	OPENBLAS_NUM_THREADS=1 PYTHONPATH=. $(BIN)/python -m bench $(BENCH_ARGS)

clean: ## remove the local database, artifacts and run logs (var/)
	rm -rf var
