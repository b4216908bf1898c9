"""The echo, answered as the dashboard's POST /v1/agents/{name}/invoke answers it."""

from __future__ import annotations

import itertools
import json
import time

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

# Execution ids as the dashboard shows them; a per-process count stands in for the row id.
_executions = itertools.count(1)


def invoke(request: HttpRequest, name: str) -> HttpResponse:
    """Parse {"prompt": …} and echo it, in the dashboard's answer shape."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    started = time.perf_counter()
    prompt = json.loads(request.body)["prompt"]
    return JsonResponse(
        {
            "output": prompt,
            "execution": {
                "id": f"exec_{next(_executions)}",
                "status": "success",
                "durationMs": round((time.perf_counter() - started) * 1000, 3),
            },
        }
    )
