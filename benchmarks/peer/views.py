"""The echo as a DRF view, answered in the dashboard's invoke shape.

Authentication is the HasBearerAPIKey permission from the settings (REST_FRAMEWORK), as a
project using djangorestframework-api-key sets it once for every view.
"""

from __future__ import annotations

import itertools
import time

from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

# Execution ids as the dashboard shows them; a per-process count stands in for the row id.
_executions = itertools.count(1)


@api_view(["POST"])
def invoke(request: Request, name: str) -> Response:
    """Echo {"prompt": …}; a body without a string prompt is a 400, as DRF would say it."""
    started = time.perf_counter()
    prompt = request.data.get("prompt") if isinstance(request.data, dict) else None
    if not isinstance(prompt, str):
        return Response({"prompt": ["must be a string."]}, status=status.HTTP_400_BAD_REQUEST)
    return Response(
        {
            "output": prompt,
            "execution": {
                "id": f"exec_{next(_executions)}",
                "status": "success",
                "durationMs": round((time.perf_counter() - started) * 1000, 3),
            },
        }
    )
