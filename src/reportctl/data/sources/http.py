"""The ``http`` source: records from a JSON API, retried on transient failures."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import ConfigDict, Field, field_validator

from reportctl.data.sources.base import CacheOption, SourceContext, UncheckedColumns, cache_field
from reportctl.errors import SourceError, first_line
from reportctl.net import exception_chain
from reportctl.secrets import SecretError, redact, resolve_secrets
from reportctl.spec.models import SourceOptions
from reportctl.spec.types import PositiveDuration

if TYPE_CHECKING:
    import polars as pl
    import requests

_PARAMETER = re.compile(r"^:(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_RETRIED_STATUSES = frozenset({429, *range(500, 600)})
_MAX_REDIRECTS = 10
# Sent only to the origin they were configured for, like the headers whose value holds a ${secret:...}.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class HttpOptions(SourceOptions):
    """Options of the ``http`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["http"] = Field(description="Reads a list of records from a JSON HTTP API.")
    url: str = Field(description="An http or https URL; it may contain ${secret:NAME}.")
    method: Literal["GET", "POST"] = Field(default="GET", description="The HTTP method.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers; values may contain ${secret:NAME}, e.g. for a token.",
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Query-string values; ':name' sends the value of parameter 'name', others are literal.",
    )
    body: Any = Field(
        default=None,
        alias="json",
        description="A JSON request body; a string ':name' is replaced by the value of parameter 'name'.",
    )
    records: str | None = Field(
        default=None,
        description="Dotted path to the list of records in the response, e.g. data.items; "
        "by default the response itself must be that list.",
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=30), description="Limit for connecting and for each wait on the server."
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries with backoff on connection errors, 429 and 5xx responses.",
    )
    follow_redirects: Literal["same-origin", "any", "none"] = Field(
        default="same-origin",
        description="Which redirects to follow: same-origin (same scheme, host and port), any (secret-bearing "
        "headers are dropped on another origin) or none.",
    )
    cache: CacheOption = cache_field()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith("${") and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"expected an http:// or https:// URL, got '{value}'")
        return value


class HttpSource:
    """Calls one endpoint and turns its JSON records into a table, nested objects flattened to a.b columns."""

    PLUGIN_NAME: ClassVar[str] = "http"
    Options: ClassVar[type[SourceOptions]] = HttpOptions

    def __init__(self, name: str, options: HttpOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    def describe(self) -> str:
        return f"http {self.options.method} {shown_url(self.options.url)}"

    def known_schema(self) -> pl.Schema | None:
        return None

    def probe_schema(self) -> pl.Schema:
        """The columns of the records the API answers with now: one request (``validate --connect``)."""
        return self.fetch().collect_schema()

    def unchecked_columns(self) -> UncheckedColumns:
        return UncheckedColumns("url", "an API's records are known only once it answers", "asks the API once")

    def cache_identity(self) -> dict[str, Any]:
        options = self.options.model_dump(mode="json", exclude={"description", "cache", "timeout", "retries"})
        bound = {}
        for name, value in self.options.params.items():
            match = _PARAMETER.match(value) if isinstance(value, str) else None
            if match:
                bound[match["name"]] = self._parameter(match["name"], f"params.{name}")
        for name in _body_parameters(self.options.body):
            bound[name] = self._parameter(name, "json")
        return {**options, "parameters": bound}

    def fetch(self) -> pl.LazyFrame:
        import polars as pl

        records = self._records(self.request_json())
        try:
            return pl.json_normalize(records, separator=".", infer_schema_length=None).lazy()
        except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
            raise self._error(f"cannot turn the records into a table: {first_line(str(exc), 'unknown error')}") from exc

    def _error(self, cause: str) -> SourceError:
        return SourceError(self.name, self.describe(), redact(cause))

    def request_json(self) -> Any:
        """The decoded JSON body of a successful response; sources built on this one (prometheus) call it."""
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        options = self.options
        try:
            url = resolve_secrets(options.url)
            headers = {name: resolve_secrets(value) for name, value in options.headers.items()}
            params = {name: self._param(name, value) for name, value in options.params.items()}
            body = self._bind_body(options.body)
        except SecretError as exc:
            raise self._error(str(exc)) from exc
        retry = Retry(
            total=options.retries,
            connect=options.retries,
            # A server too slow to answer once is rarely faster next time; retrying multiplies the wait.
            read=0,
            status=options.retries,
            other=0,
            backoff_factor=0.5,
            status_forcelist=_RETRIED_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        with requests.Session() as session:
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            response = self._follow(session, url, headers, params, body)
            with response:
                if not 200 <= response.status_code < 300:
                    status = f"{response.status_code} {response.reason or ''}".strip()
                    raise self._error(self.answer_error(response) or f"HTTP {status} from {shown_url(response.url)}")
                try:
                    return response.json()
                except (requests.JSONDecodeError, requests.RequestException) as exc:
                    kind = response.headers.get("Content-Type", "no content type")
                    raise self._error(f"the response is not valid JSON ({kind}): {exc}") from exc

    def answer_error(self, response: requests.Response) -> str | None:
        """The API's own message in an error answer, for the error line; None: the HTTP status says it. Sources
        built on this one (prometheus) read their API's error format here."""
        return None

    def _follow(
        self, session: requests.Session, url: str, headers: dict[str, str], params: dict[str, str], body: Any
    ) -> requests.Response:
        """The first response that is not a redirect, following redirects here rather than in requests: requests
        strips only Authorization on another host, and its errors name the first URL, not the one that failed."""
        import requests

        options = self.options
        seconds = options.timeout.total_seconds()
        secret = {n.lower() for n, v in options.headers.items() if "${secret:" in v} | _CREDENTIAL_HEADERS
        method, current, query, home = options.method, url, params or None, _origin(url)
        visited: set[str] = set()
        for _ in range(_MAX_REDIRECTS + 1):
            sent = (
                headers if _origin(current) == home else {n: v for n, v in headers.items() if n.lower() not in secret}
            )
            try:
                response = session.request(
                    method,
                    current,
                    headers=sent,
                    params=query,
                    json=body,
                    timeout=(seconds, seconds),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise self._error(self._transport_problem(exc, current)) from exc
            if not response.is_redirect:
                return response
            response.close()
            here = response.url
            target = urljoin(here, response.headers["Location"])
            visited.add(here)
            moved = f"{shown_url(here)} redirects to {shown_url(target)}"
            if urlsplit(target).scheme not in ("http", "https"):
                raise self._error(f"{moved}, which is not an http or https URL")
            if options.follow_redirects == "none":
                raise self._error(f"{moved}; set follow_redirects: same-origin or any to follow it")
            if options.follow_redirects == "same-origin" and _origin(target) != _origin(here):
                raise self._error(
                    f"{moved}, another origin ({_shown_origin(here)} -> {_shown_origin(target)}); "
                    "set follow_redirects: any to follow it"
                )
            if target in visited:
                raise self._error(f"redirect loop: {moved}, which was already visited")
            if _origin(target) != _origin(here):
                # the jar matches cookies by host, not port or scheme: none set by one origin goes to another
                session.cookies.clear()
            if response.status_code in (301, 302, 303) and method == "POST":
                # as browsers do: the body was meant for the first URL; 307 and 308 ask for both to be kept
                method, body = "GET", None
            current, query = target, None
        raise self._error(f"more than {_MAX_REDIRECTS} redirects, the last {moved}")

    def _param(self, name: str, value: str | float | bool) -> str:
        if not isinstance(value, str):
            return _query_text(value)
        bound = _PARAMETER.match(value)
        if bound is None:
            return resolve_secrets(value)
        return _query_text(self._parameter(bound["name"], f"params.{name}"))

    def _parameter(self, name: str, where: str) -> Any:
        if name not in self.context.parameters:
            raise self._error(f"{where} uses :{name} but the spec has no parameter {name}")
        return self.context.parameters[name]

    def _bind_body(self, value: Any, where: str = "json") -> Any:
        """The body with ':name' strings replaced by parameter values and secrets resolved."""
        if isinstance(value, dict):
            return {k: self._bind_body(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._bind_body(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            bound = _PARAMETER.match(value)
            return _json_value(self._parameter(bound["name"], where)) if bound else resolve_secrets(value)
        return value

    def _transport_problem(self, exc: Exception, url: str) -> str:
        """One line for a failure below HTTP: refused, timed out, unknown host, TLS."""
        import socket

        import requests
        from urllib3 import exceptions as u3

        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return "the url is not a valid http or https URL"
        parts = urlsplit(url)
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        chain = exception_chain(exc)
        # Checked before timeouts: urllib3's NewConnectionError subclasses ConnectTimeoutError.
        if any(isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e) for e in chain):
            return f"connection refused by {where}"
        if any(isinstance(e, u3.NameResolutionError | socket.gaierror) for e in chain):
            return f"unknown host {parts.hostname}"
        if any(isinstance(e, u3.TimeoutError | TimeoutError) for e in chain):
            return f"timed out after {self.options.timeout.total_seconds():g}s"
        if any(isinstance(e, u3.SSLError) for e in chain):
            return f"TLS handshake with {where} failed"
        if any(isinstance(e, u3.ProtocolError) for e in chain):
            return f"{where} closed the connection without a valid HTTP response"
        return f"request to {where} failed: {type(exc).__name__}"

    def _records(self, payload: Any) -> list[dict[str, Any]]:
        path = self.options.records
        node, walked = payload, list[str]()
        for key in path.split(".") if path else ():
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                where = f"'{'.'.join(walked)}'" if walked else "the top level"
                found = ", ".join(map(str, node)) if isinstance(node, dict) else f"none, it is {_json_kind(node)}"
                raise self._error(f"response has no key '{path}'; keys at {where}: {found}")
            walked.append(key)
        if not isinstance(node, list):
            hint = f"keys: {', '.join(map(str, node))}" if isinstance(node, dict) else "set records to its path"
            what = f"'{path}' in the response" if path else "the response"
            raise self._error(f"{what} is {_json_kind(node)}, not a list of records ({hint})")
        for index, record in enumerate(node):
            if not isinstance(record, dict):
                raise self._error(f"record {index} is {_json_kind(record)}, not an object")
        return node


def shown_url(url: str) -> str:
    """``url`` without credentials, query string or fragment, which may hold secrets."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return redact(url.split("?", 1)[0])
    return redact(f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}")


def _origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port: what must match for a redirect to stay on the same origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _shown_origin(url: str) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal | timedelta):
        return str(value)
    return value


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _body_parameters(value: Any) -> list[str]:
    """The parameter names a request body binds (':name' strings), in order."""
    if isinstance(value, dict):
        return [name for item in value.values() for name in _body_parameters(item)]
    if isinstance(value, list):
        return [name for item in value for name in _body_parameters(item)]
    match = _PARAMETER.match(value) if isinstance(value, str) else None
    return [match["name"]] if match else []
