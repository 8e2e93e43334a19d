"""An answer as an attacker compares it: status, headers, body. Minus the request's
own id (X-Request-Id: random per request, so it tells one account from another
no more than it tells two requests apart)."""

import httpx

PER_REQUEST_HEADERS = frozenset({"x-request-id"})


def headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_REQUEST_HEADERS}


def answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    return response.status_code, headers(response), response.content
