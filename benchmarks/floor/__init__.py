"""The floor of `make bench`: bare Django answering the echo, with nothing else to do.

No middleware, no installed apps, no database: what Django itself (URL resolving, a
request and a response object, JSON in and out) costs under gunicorn. The API path of the
dashboard cannot be faster than this on the same server and Python, so the ratio to it
says how much of the cost is ours.
"""
