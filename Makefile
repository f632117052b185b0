# The README's two commands are `make demo` and `make test`; everything else is behind them.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test worker web migrate clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# Migrates, makes the demo dataset, starts the web server and a worker together; Ctrl-C stops both.
demo: setup
	$(PY) manage.py demo

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

migrate: setup
	$(PY) manage.py migrate --noinput

worker: setup
	$(VENV)/bin/celery -A fer_site worker -Q cpu,gpu -c 1 --loglevel INFO

web: setup
	$(PY) manage.py runserver

clean:
	rm -rf $(VENV) var staticfiles
