# Two commands for a fresh clone: `make run` and `make test`. Everything else is for deploys,
# CI and benchmarks. Only Python >= 3.12 and make are needed; the rest goes into .venv.

SHELL := /bin/bash
# The first Python >= 3.12 on PATH (pyenv's shims honour .python-version).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
BIND_HOST ?= 127.0.0.1
DEV_ENV := DEBUG=true

.PHONY: run test serve install lint check bench clean

$(BIN)/.installed: requirements-dev.lock
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.12 or newer is needed (python3 --version)."; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	@touch $@

install: $(BIN)/.installed

## make run: set up and serve the dashboard on SQLite at http://127.0.0.1:$(PORT)
## The scheduler (detection every minute, reminders, partitions, pruning) runs beside it and
## stops with it. A process of its own, not a thread of runserver: the autoreloader would
## restart a thread mid-job on every saved file.
## Mail links (sign-up's confirmation, resets, invitations) point at that port too, unless
## DASHBOARD_URL says otherwise.
## With REDIS_URL, `manage.py ingest_usage` runs beside it too, as under `make serve`:
## otherwise the calls' usage and executions would wait on the stream, never shown.
run: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	@export DASHBOARD_URL="$${DASHBOARD_URL:-http://127.0.0.1:$(PORT)}"; \
	$(DEV_ENV) $(BIN)/python manage.py run_scheduler & pids=$$!; \
	if [ -n "$$REDIS_URL" ]; then \
		$(DEV_ENV) $(BIN)/python manage.py ingest_usage & pids="$$pids $$!"; \
	fi; \
	trap 'kill $$pids 2>/dev/null; wait $$pids' EXIT; \
	$(DEV_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

## make test: the whole suite, browser tests included (they skip when Chromium is missing)
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make serve: production-style (gunicorn, DEBUG off, whitenoise) on $PORT
## Beside gunicorn, and stopped with it: `manage.py run_scheduler` (the scheduled jobs; safe
## on every instance at once; SCHEDULER=off leaves them to cron) and, with REDIS_URL,
## `manage.py ingest_usage` (the usage stream's writer). The access log's path is redacted
## of tokens (gunicorn.conf.py).
## gunicorn runs in the background of the recipe's shell, which waits for it: a SIGTERM to
## make alone (an orchestrator signals PID 1, nothing else) reaches that shell, and its
## traps hand the SIGTERM on to all three. With gunicorn in the foreground the shell's trap
## stopped the ingest and the scheduler and left gunicorn serving, parented to init.
## Any of the three that stops on its own (killed, crashed) stops the others and fails make:
## gunicorn alone served on without its usage written or its jobs run. (`wait -n` needs
## bash 4.3; macOS's bash 3.2 waits for gunicorn alone, as before.)
serve: install
	DEBUG=false $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	DEBUG=false $(BIN)/python manage.py migrate --noinput
	@pids=""; \
	if [ -n "$$REDIS_URL" ]; then \
		DEBUG=false $(BIN)/python manage.py ingest_usage & pids="$$pids $$!"; \
	fi; \
	if [ "$${SCHEDULER:-on}" != "off" ]; then \
		DEBUG=false $(BIN)/python manage.py run_scheduler & pids="$$pids $$!"; \
	fi; \
	trap 'kill $$pids 2>/dev/null; wait $$pids' EXIT; \
	trap 'exit 143' TERM; trap 'exit 130' INT; \
	host='$(BIND_HOST)'; host="$${host#[}"; host="$${host%]}"; host="$${host:-127.0.0.1}"; \
	if [[ $$host == *:* ]]; then host="[$$host]"; fi; \
	$(BIN)/gunicorn reminix_dashboard.wsgi:application --bind "$$host:$(PORT)" \
		--workers $${WEB_CONCURRENCY:-2} --access-logfile - --access-logformat '%(h)s "%(m)s %(U)s" %(s)s %(M)sms' \
		& pids="$$pids $$!"; \
	if (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 403 )); then wait -n; else wait $$!; fi; \
	status=$$?; echo "make serve: a process of the three ended (status $$status); stopping the rest" >&2; \
	exit $$(( status ? status : 1 ))

## make lint: ruff (style and bugs), import-linter (the layers between apps), mypy (types)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## make check: migrations in step with models, and Django's deploy checks under production settings
check: install
	$(DEV_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=false SECRET_KEY=check-deploy-$$(date +%s)-not-a-real-secret-but-long-enough-to-pass \
		TOKEN_HASH_KEY=check-deploy-token-hash-key-long-enough-for-the-check ALLOWED_HOSTS=dashboard.example.com \
		DASHBOARD_URL=https://dashboard.example.com REDIS_URL=redis://127.0.0.1:6379/0 \
		EMAIL_URL=smtp+tls://mailer:check-only@smtp.example.com:587 SECURITY_CONTACT=security@example.com \
		TRUSTED_PROXIES=10.0.0.0/8 DEFAULT_FROM_EMAIL='Reminix <no-reply@dashboard.example.com>' \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) staticfiles .pytest_cache

# The bench's peer (Django REST framework + djangorestframework-api-key) has a venv of its own,
# so it never becomes a dependency of the dashboard.
BENCH_VENV := .venv-bench

$(BENCH_VENV)/.installed: benchmarks/requirements-peer.lock
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.12 or newer is needed (python3 --version)."; exit 1; fi
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet --require-hashes -r benchmarks/requirements-peer.lock
	@touch $@

## make bench: the API path vs bare Django (floor) and DRF + drf-api-key (peer), on PostgreSQL
## (options: make bench BENCH_ARGS="--workers 2 --rows 100000"; benchmarks/run.py --help)
bench: install $(BENCH_VENV)/.installed
	$(BIN)/python benchmarks/run.py --peer-python $(BENCH_VENV)/bin/python
