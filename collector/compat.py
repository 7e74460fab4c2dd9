"""What older and newer LiteLLM releases leave out of, or guess in, the logging payload.

The mapping reads LiteLLM's standard logging object; across the supported releases (README:
"Install") some of its fields are missing or mean something else. Each function here fills one
such gap from what the payload does carry, so a row looks the same whichever release wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# LiteLLM's own codes (litellm_core_utils/error_normalization.py, from 1.104 on): releases before
# it carry no `normalized_error`, and a dashboard grouping errors by it must not show them apart.
_MESSAGE_CODES = (
    (
        re.compile(r"budget has been exceeded|max budget|crossed budget", re.I),
        "429_BUDGET_EXCEEDED",
    ),
    (
        re.compile(r"no healthy deployments?|no deployments available", re.I),
        "429_NO_HEALTHY_DEPLOYMENTS",
    ),
    (
        re.compile(r"context window|context length|(prompt|input) is too long", re.I),
        "400_CONTEXT_WINDOW_EXCEEDED",
    ),
    (
        re.compile(r"missing required parameter|field required", re.I),
        "400_MISSING_REQUIRED_PARAMETER",
    ),
    (re.compile(r"overloaded|unable to process your request", re.I), "503_PROVIDER_OVERLOADED"),
    (
        re.compile(
            r"connection error|APIConnectionError|TransferEncodingError|payload is not completed"
            r"|connection reset|peer closed connection|incomplete chunked read",
            re.I,
        ),
        "500_PROVIDER_CONNECTION_ERROR",
    ),
    (re.compile(r"timed? ?out", re.I), "408_UPSTREAM_TIMEOUT"),
)
_CLASS_CODES = {
    "BudgetExceededError": "429_BUDGET_EXCEEDED",
    "RateLimitError": "429_RATE_LIMIT_EXCEEDED",
    "AuthenticationError": "401_AUTHENTICATION_FAILED",
    "PermissionDeniedError": "403_PERMISSION_DENIED",
    "ContextWindowExceededError": "400_CONTEXT_WINDOW_EXCEEDED",
    "ContentPolicyViolationError": "400_CONTENT_POLICY_VIOLATION",
    "GuardrailRaisedException": "400_CONTENT_POLICY_VIOLATION",
    "BlockedPiiEntityError": "400_CONTENT_POLICY_VIOLATION",
    "UnsupportedParamsError": "400_INVALID_PARAMETER_VALUE",
    "NotFoundError": "404_RESOURCE_NOT_FOUND",
    "Timeout": "408_UPSTREAM_TIMEOUT",
    "MidStreamFallbackError": "500_ROUTER_FALLBACK_FAILURE",
    "APIConnectionError": "500_PROVIDER_CONNECTION_ERROR",
    "ServiceUnavailableError": "503_PROVIDER_OVERLOADED",
    "InternalServerError": "500_PROVIDER_INTERNAL_ERROR",
    "BadGatewayError": "500_PROVIDER_INTERNAL_ERROR",
    "BadRequestError": "400_INVALID_REQUEST",
    "UnprocessableEntityError": "400_INVALID_REQUEST",
}
_STATUS_CODES = {
    "400": "400_INVALID_REQUEST",
    "401": "401_AUTHENTICATION_FAILED",
    "403": "403_PERMISSION_DENIED",
    "404": "404_RESOURCE_NOT_FOUND",
    "408": "408_UPSTREAM_TIMEOUT",
    "422": "400_INVALID_PARAMETER_VALUE",
    "429": "429_RATE_LIMIT_EXCEEDED",
    "500": "500_PROVIDER_INTERNAL_ERROR",
    "502": "500_PROVIDER_INTERNAL_ERROR",
    "503": "503_PROVIDER_OVERLOADED",
    "504": "408_UPSTREAM_TIMEOUT",
    "529": "503_PROVIDER_OVERLOADED",
}


def derive_normalized_error(error_class: str | None, error_code: str | None, message: Any) -> str:
    """LiteLLM's `normalized_error` for a release that does not send one, in LiteLLM's order:
    the message's tell-tale phrases, then the exception class, then the HTTP status."""
    text = message if isinstance(message, str) else ""
    if text:
        for pattern, code in _MESSAGE_CODES:
            if pattern.search(text):
                return code
    if error_code == "529":
        return "503_PROVIDER_OVERLOADED"
    return _CLASS_CODES.get(error_class or "") or _STATUS_CODES.get(
        error_code or "", "UNCLASSIFIED"
    )


#: Providers whose streams always end with the provider's own usage: LiteLLM never has to guess.
ALWAYS_STREAM_USAGE = frozenset(
    {"anthropic", "bedrock", "bedrock_converse", "vertex_ai", "vertex_ai_beta", "gemini"}
)


def stream_usage_estimated(usage: Mapping[str, Any], model_parameters: Any, provider: Any) -> bool:
    """True when a stream's token counts are LiteLLM's tokenizer guess, not the provider's count.

    An OpenAI-style stream reports usage only when asked (`stream_options.include_usage`). Without
    it, LiteLLM releases before 1.104 and from 1.109 on fill the counts with a tokenizer estimate
    (1.104-1.108 leave them 0). The estimate carries no prompt details, which a provider's own
    usage does; priced as if metered it would hide that the call's real cost is unknown.
    """
    if not usage or provider in ALWAYS_STREAM_USAGE:
        return False
    if usage.get("prompt_tokens_details"):
        return False
    options = model_parameters.get("stream_options") if isinstance(model_parameters, dict) else None
    return not (isinstance(options, dict) and options.get("include_usage"))


def original_group_from_previous(previous: Any, trace_id: Any) -> Any:
    """The model group a request first asked for, on a fallback's row from a release that does not
    send `original_model_group` (before ~1.9x): the Router's `previous_models` breadcrumbs. That
    list is the Router's, shared by all its requests, so only entries of this request's trace
    count; the earliest is the group the request was made for."""
    if not isinstance(previous, list) or not trace_id:
        return None
    for entry in previous:
        if isinstance(entry, dict) and entry.get("litellm_trace_id") == trace_id:
            md = entry.get("metadata")
            group = md.get("model_group") if isinstance(md, dict) else None
            return group or entry.get("model")
    return None


def router_deployment_model(model: Any, deployment: Any) -> Any:
    """The model a Router row names, as 1.86 and later name it: the deployment's
    `litellm_params.model` with its provider prefix ("openai/gpt-4o-mini"). 1.80 sends the bare
    name ("gpt-4o-mini"; measured on 1.80.7), so one deployment would show as two models across
    an upgrade. Only a deployment that is exactly the bare name behind a provider prefix counts:
    an alias (`azure/my-deployment` serving `gpt-4o`) is another name, not a prefix."""
    if (
        isinstance(model, str)
        and model
        and isinstance(deployment, str)
        and deployment.endswith("/" + model)
        and "/" not in deployment[: -len(model) - 1]
    ):
        return deployment
    return model


# LiteLLM's own tell-tale phrases (litellm_core_utils/exception_mapping_utils.py): a plain 400
# carrying one of them is what its exception mapping files under the subclass.
_CONTEXT_PHRASES = re.compile(
    r"maximum context length is|exceed context limit|maximum context limit"
    r"|longer than the model's context length|prompt is too long|context_length_exceeded",
    re.I,
)
_POLICY_PHRASES = re.compile(
    r"content_policy_violation|rejected as a result of (our|the) safety system"
    r"|content filtering policy|content_filter_policy|violating our usage policy",
    re.I,
)


def refine_bad_request(error_class: str | None, message: Any) -> str | None:
    """The 400 subclass a plain `BadRequestError` stands for, from its message.

    Which 400s LiteLLM files under a subclass varies by release: before ~1.9x Anthropic's
    context-length error, and before ~1.9x and again from 1.109 OpenAI's content-filter
    rejection, come as plain BadRequestErrors. A dashboard grouping by error class must not
    split one kind of failure by LiteLLM release, so the row names the subclass either way."""
    if error_class != "BadRequestError" or not isinstance(message, str):
        return error_class
    if _CONTEXT_PHRASES.search(message):
        return "ContextWindowExceededError"
    if _POLICY_PHRASES.search(message):
        return "ContentPolicyViolationError"
    return error_class
