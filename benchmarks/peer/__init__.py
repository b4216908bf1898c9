"""The peer of `make bench`: the same echo as a Django team would otherwise build it.

Django REST framework with djangorestframework-api-key: a bearer key checked by its
HasAPIKey permission against its APIKey table on PostgreSQL, a DRF view parsing and
rendering JSON. It runs from its own virtual environment (.venv-bench, installed from
benchmarks/requirements-peer.lock) and its own database, so it never becomes a dependency
of the dashboard.
"""
