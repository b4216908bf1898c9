"""A curl command as printed in the docs, read into the request it sends (the README's and
the API reference's examples are run as printed: tests/api/test_*_examples.py)."""

from __future__ import annotations


def curl_request(words: list[str], *, base: str) -> tuple[str, str, dict[str, str], str]:
    """(method, path, headers, body) of `curl …` split into words; the URL must start with
    `base`, which is cut off. `-d` without `-X` is a POST, as curl sends it."""
    method, url, headers, body = "", "", {}, ""
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(": ")
            headers[name] = value
        elif word == "-d":
            body = next(rest)
        else:
            url = word
    assert url.startswith(base), words
    return method or ("POST" if body else "GET"), url.removeprefix(base), headers, body
