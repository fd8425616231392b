"""The HTTP client for Contractor's task API (``/api/v1/subcontractor/``).

Transport errors, 5xx and 429 raise ``Unavailable`` (try again later); 409 raises ``Stale``
(the task moved on: drop the answer); 401 raises ``Unauthorized`` (the token: keep answers and
try later, an operator may fix it); any other 4xx raises ``Rejected`` (drop the answer).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from subcontractor.config import ContractorConfig

__all__ = ["Client", "Rejected", "Stale", "Task", "Unauthorized", "Unavailable"]

PREFIX = "/api/v1/subcontractor"


class Unavailable(Exception):
    """Contractor could not be reached or failed; nothing is known to have changed."""


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Stale(Rejected):
    pass


class Unauthorized(Rejected):
    pass


@dataclass(frozen=True)
class Task:
    task_id: int
    job_id: int
    module: str
    function: str
    cookie: str
    lease: str
    attempt: int
    parameters: dict[str, Any]
    lease_seconds: float | None  # how long the lease lasts, by Contractor's clock

    @classmethod
    def from_json(cls, raw: dict[str, Any], server_now: dt.datetime | None) -> Task:
        lease_seconds = None
        if server_now is not None:
            expires = dt.datetime.fromisoformat(raw["lease_expires_at"])
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=dt.UTC)
            lease_seconds = (expires - server_now).total_seconds()
        parameters = raw.get("parameters")
        return cls(
            task_id=int(raw["task_id"]),
            job_id=int(raw["job_id"]),
            module=str(raw["module"]),
            function=str(raw["function"]),
            cookie=str(raw["cookie"]),
            lease=str(raw["lease"]),
            attempt=int(raw["attempt"]),
            parameters=parameters if isinstance(parameters, dict) else {"value": parameters},
            lease_seconds=lease_seconds,
        )


def _ssl_context(config: ContractorConfig) -> ssl.SSLContext | bool:
    if not config.verify_tls:
        return False
    if config.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(config.ca_bundle))
    return True


class Client:
    def __init__(
        self, config: ContractorConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.url,
            verify=_ssl_context(config),
            # HTTP(S)_PROXY, ALL_PROXY, NO_PROXY; a transport given (in-process) is used as is
            trust_env=transport is None,
            timeout=config.request_timeout,
            headers={"Authorization": f"Bearer {config.token}"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(
        self, path: str, body: dict[str, Any], *, seconds: float | None = None
    ) -> httpx.Response:
        try:
            response = await self._http.post(
                f"{PREFIX}/{path}",
                json=body,
                timeout=seconds if seconds is not None else self.config.request_timeout,
            )
        except httpx.HTTPError as error:
            raise Unavailable(f"{type(error).__name__}: {error}") from None
        _raise_for(response)
        return response

    async def poll(self, site: str, modules: list[str], max_tasks: int, wait: float) -> list[Task]:
        response = await self._post(
            "poll",
            {"site": site, "modules": modules, "max_tasks": max_tasks, "wait": wait},
            seconds=wait + self.config.request_timeout,
        )
        now = _server_time(response)
        return [Task.from_json(raw, now) for raw in response.json()["tasks"]]

    async def boot(self, body: dict[str, Any]) -> Any:
        """The boot data answer for ``body`` (``{site, since, cursor, limit, wait}``); a
        ``wait`` long-poll is given that long beyond the request timeout."""
        wait = float(body.get("wait") or 0)
        response = await self._post("boot", body, seconds=wait + self.config.request_timeout)
        try:
            return response.json()
        except ValueError:
            raise Unavailable("the boot data answer is not JSON") from None

    async def leases(self, site: str, leases: list[dict[str, Any]]) -> dict[str, Any]:
        """Report the DHCP leases of ``site`` (``{site, added, updated}`` back)."""
        answer: dict[str, Any] = (
            await self._post("leases", {"site": site, "leases": leases})
        ).json()
        return answer

    async def result(self, task_id: int, cookie: str, lease: str, data: dict[str, Any]) -> None:
        await self._post(
            "result", {"task_id": task_id, "cookie": cookie, "lease": lease, "data": data}
        )

    async def error(
        self, task_id: int, cookie: str, lease: str, message: str, *, retryable: bool
    ) -> None:
        await self._post(
            "error",
            {
                "task_id": task_id,
                "cookie": cookie,
                "lease": lease,
                "message": message[:2000],
                "retryable": retryable,
            },
        )

    async def heartbeat(self, task_id: int, lease: str) -> None:
        await self._post("heartbeat", {"task_id": task_id, "lease": lease})

    async def check(self) -> str:
        """Reach the task API and prove the token, changing nothing: the OpenAPI document,
        then a heartbeat for a task that cannot exist (404 means the token was accepted)."""
        try:
            response = await self._http.get(f"{PREFIX}/openapi.json")
        except httpx.HTTPError as error:
            raise Unavailable(f"{type(error).__name__}: {error}") from None
        _raise_for(response)
        try:
            title = response.json()["info"]["title"]
        except (ValueError, KeyError, TypeError):
            raise Rejected(response.status_code, "this is not Contractor's task API") from None
        try:
            await self.heartbeat(0, "check")
        except Rejected as error:
            if error.status != 404:
                raise
        return str(title)


def _server_time(response: httpx.Response) -> dt.datetime | None:
    date = response.headers.get("date")
    if not date:
        return None
    try:
        return email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    if status >= 500 or status == 429:
        raise Unavailable(f"HTTP {status}")
    try:
        error = response.json()["error"]
        message = f"{error.get('code', '')}: {error['message']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        message = response.text
    message = message[:500]
    if status == 409:
        raise Stale(status, message)
    if status == 401:
        raise Unauthorized(status, message)
    raise Rejected(status, message)
