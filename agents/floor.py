"""The benchmark's floor: the echo agent with no authentication and no usage log.

Mounted only when BENCHMARK_FLOOR_ENDPOINT is on (`make bench` sets it). It does the
same agent work as /v1/agents/{name}/invoke, so the difference between the two is what
authentication and usage logging cost.
"""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.api import execution_summary
from agents.models import Agent
from agents.runtime import agent_invoke


@csrf_exempt
@require_POST
def invoke_unauthenticated(request: HttpRequest, project: str, name: str) -> HttpResponse:
    agent = Agent.objects.filter(project__slug=project, name=name).first()
    if agent is None:
        raise Http404
    body = json.loads(request.body)
    execution = agent_invoke(agent=agent, payload={"prompt": body["prompt"]})
    return JsonResponse({"output": execution.output, "execution": execution_summary(execution)})
