"""What an agent of each kind is configured with, checked before anything is queued.

A battle stores its agent's kind (``model``, ``http`` or ``python``) and, for the kinds that
need one, a JSON object (the ``agent_target`` column). ``parse_target`` checks that object and
returns it in canonical form (sorted keys, defaults filled in), so the same configuration is
stored the same way whatever edge it came from; the targets read it back with ``load_*``.

Problems are ``TargetConfigError`` naming the part at fault (``request``, ``response``,
``headers``...), so a form or the CLI can put the message at its own field or option.

Secrets: a header value refers to an environment variable as ``${NAME}``; only that text is
stored. The value is read when the request is sent (``resolve_headers``), never before.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("model", "http", "python")
METHODS = ("POST", "PUT", "PATCH")
SESSIONS = ("stateless", "stateful")
PLACEHOLDERS = ("message", "messages", "session_id")

MAX_URL_CHARS = 2_000
MAX_TEMPLATE_CHARS = 64_000
MAX_PATH_CHARS = 200
MAX_HEADERS = 20
MAX_HEADER_CHARS = 4_000
MAX_TOOLS = 32
MAX_TOOLS_CHARS = 256_000
MAX_BODY_BYTES = 1_000_000  # a request we send, and a reply we read, at most
MAX_TOOL_ROUNDS = 4  # model calls in one agent turn that may ask for tools before it must answer

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_SENSITIVE = re.compile(r"auth|key|token|secret|cookie|passw|session", re.IGNORECASE)
_CALLABLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INDEX = re.compile(r"\[(\d+)\]")


class TargetConfigError(ValueError):
    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


# -- http ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpConfig:
    url: str
    request: str  # the body template, with {{message}}, {{messages}}, {{session_id}}
    response: str  # the dotted path to the reply in the response's JSON
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()  # values as given: ${NAME} stays a reference
    session: str = "stateless"

    @property
    def stateful(self) -> bool:
        return self.session == "stateful"

    @property
    def path(self) -> tuple[str, ...]:
        return parse_path(self.response)

    def to_data(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "request": self.request,
            "response": self.response,
            "session": self.session,
        }


def check_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TargetConfigError("url", "is required: the endpoint to send each message to")
    url = value.strip()
    if len(url) > MAX_URL_CHARS:
        raise TargetConfigError("url", f"is too long (at most {MAX_URL_CHARS} characters)")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetConfigError("url", "must be an http:// or https:// URL, for example http://127.0.0.1:8080/chat")
    if parts.username or parts.password:
        raise TargetConfigError("url", "must not carry a user or password; send them in a header from ${NAME}")
    return url


def fill(template: str, *, message: str, messages: Sequence[Mapping[str, Any]], session_id: str) -> str:
    """The template with each placeholder replaced by its JSON value (a string keeps its quotes)."""
    values = {"message": message, "messages": list(messages), "session_id": session_id}
    return str(_PLACEHOLDER.sub(lambda match: json.dumps(values[match.group(1)], ensure_ascii=False), template))


def check_template(template: Any) -> str:
    if not isinstance(template, str) or not template.strip():
        raise TargetConfigError("request", 'is required: a JSON body such as {"message": {{message}}}')
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TargetConfigError("request", f"is too long (at most {MAX_TEMPLATE_CHARS} characters)")
    names = _PLACEHOLDER.findall(template)
    unknown = sorted({name for name in names if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join("{{" + name + "}}" for name in PLACEHOLDERS)
        raise TargetConfigError("request", f"has an unknown placeholder {{{{{unknown[0]}}}}}; use {known}")
    if "message" not in names and "messages" not in names:
        raise TargetConfigError(
            "request", "must contain {{message}} or {{messages}}, or the agent never sees the attack"
        )
    sample = fill(template, message="hi", messages=[{"role": "user", "content": "hi"}], session_id="s")
    try:
        json.loads(sample)
    except ValueError as error:
        hint = ""
        if re.search(r'"\{\{\s*\w+\s*\}\}"', template):
            hint = ' (a placeholder stands for a JSON value with its quotes: write {{message}}, not "{{message}}")'
        raise TargetConfigError("request", f"is not JSON once its placeholders are filled: {error}{hint}") from None
    return template


def parse_path(text: str) -> tuple[str, ...]:
    """``data.text``, ``choices.0.message.content``, ``$.choices[0].message.content`` as parts."""
    path = text.strip()
    if path.startswith("$"):
        path = path[1:].removeprefix(".")
    path = _INDEX.sub(r".\1", path)
    if not path:
        raise TargetConfigError("response", "is empty: name where the reply is, for example data.text")
    parts = tuple(path.split("."))
    if any(not part or any(c in part for c in "[]$ \t") for part in parts):
        raise TargetConfigError(
            "response", f"{text!r} can never match: write a dotted path such as data.text or choices.0.message.content"
        )
    return parts


def check_path(path: Any) -> str:
    if not isinstance(path, str) or not path.strip():
        raise TargetConfigError("response", "is required: where the reply is in the response, for example data.text")
    if len(path) > MAX_PATH_CHARS:
        raise TargetConfigError("response", f"is too long (at most {MAX_PATH_CHARS} characters)")
    parse_path(path)
    return path.strip()


def extract(data: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` in ``data``; ``LookupError`` naming where the path stopped."""
    value = data
    for depth, part in enumerate(path):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(path[:depth]) or "the top level"
            raise LookupError(f"the response has no {'.'.join(path)} (nothing at {part!r} under {where})")
    return value


def env_references(value: str) -> list[str]:
    return _ENV_REF.findall(value)


def check_headers(headers: Any, *, check_env: bool = True) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        items = list(headers.items())
    elif isinstance(headers, (list, tuple)):
        items = [split_header(h) if isinstance(h, str) else tuple(h) for h in headers]
    else:
        raise TargetConfigError("headers", 'must be an object such as {"Authorization": "Bearer ${MY_KEY}"}')
    if len(items) > MAX_HEADERS:
        raise TargetConfigError("headers", f"too many (at most {MAX_HEADERS})")
    checked = []
    for name, value in items:
        checked.append(_check_header(str(name).strip(), value, check_env))
    return tuple(checked)


def split_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` as a pair."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise TargetConfigError("headers", f"{text[:60]!r} is not 'Name: value'")
    return name.strip(), value.strip()


def _check_header(name: str, value: Any, check_env: bool) -> tuple[str, str]:
    if not _HEADER_NAME.match(name):
        raise TargetConfigError("headers", f"{name[:60]!r} is not a valid header name")
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS or any(c in value for c in "\r\n\x00"):
        raise TargetConfigError("headers", f"{name}: the value must be one line of text")
    references = env_references(value)
    for variable in references:
        if not _ENV_NAME.match(variable):
            raise TargetConfigError("headers", f"{name}: ${{{variable}}} is not an environment variable name")
        if check_env and variable not in os.environ:
            raise TargetConfigError(
                "headers", f"{name}: the environment variable {variable} is not set (export it, then start again)"
            )
    if not references and _SENSITIVE.search(name) and value:
        raise TargetConfigError(
            "headers",
            f"{name} looks like a secret: put it in an environment variable and write ${{NAME}}, "
            f"for example '{name}: Bearer ${{SUPPORT_BOT_KEY}}' (only the name is stored)",
        )
    return name, value


def resolve_headers(headers: Sequence[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The headers to send, with each ``${NAME}`` read from the environment now, and the
    secret values (to scrub from any error text)."""
    secrets: list[str] = []

    def value_of(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:  # set where the battle was checked, not where it runs
            raise TargetConfigError("headers", f"the environment variable {match.group(1)} is not set in this worker")
        secrets.append(value)
        return value

    return {name: _ENV_REF.sub(value_of, value) for name, value in headers}, secrets


def load_http(data: Mapping[str, Any], *, check_env: bool = True) -> HttpConfig:
    """The settings of an http agent; ``check_env`` False where they are only read back (a
    header's variable is looked up when the request is sent, in the process that sends it)."""
    unknown = sorted(set(data) - {"url", "method", "headers", "request", "response", "session"})
    if unknown:
        raise TargetConfigError(unknown[0], "is not a setting of an http agent")
    method = str(data.get("method") or "POST").strip().upper()
    if method not in METHODS:
        raise TargetConfigError("method", "must be one of " + ", ".join(METHODS))
    session = str(data.get("session") or "stateless").strip().lower()
    if session not in SESSIONS:
        raise TargetConfigError("session", "must be stateless or stateful")
    return HttpConfig(
        url=check_url(data.get("url")),
        request=check_template(data.get("request")),
        response=check_path(data.get("response")),
        method=method,
        headers=check_headers(data.get("headers"), check_env=check_env),
        session=session,
    )


# -- python --------------------------------------------------------------------------------


def check_callable(text: Any) -> str:
    if not isinstance(text, str) or not _CALLABLE.match(text.strip()):
        raise TargetConfigError("callable", "must be module:function, for example my_agent.app:reply")
    return text.strip()


def load_python(data: Mapping[str, Any]) -> str:
    unknown = sorted(set(data) - {"callable"})
    if unknown:
        raise TargetConfigError(unknown[0], "is not a setting of a python agent")
    return check_callable(data.get("callable"))


# -- model tools ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    schema: dict[str, Any]  # the OpenAI tool definition sent to the model
    result: Any = "ok"  # the canned result
    rules: tuple[tuple[dict[str, Any], Any], ...] = ()  # (arguments subset, result), first match wins

    def answer(self, arguments: Mapping[str, Any]) -> str:
        result = next((result for match, result in self.rules if _subset(match, arguments)), self.result)
        return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def _subset(match: Mapping[str, Any], arguments: Mapping[str, Any]) -> bool:
    return all(key in arguments and arguments[key] == value for key, value in match.items())


def load_tools(entries: Any) -> tuple[Tool, ...]:
    if isinstance(entries, Mapping) and set(entries) == {"tools"}:
        entries = entries["tools"]
    if not isinstance(entries, list) or not entries:
        raise TargetConfigError("tools", "must be a JSON list of tool definitions (OpenAI function schema)")
    if len(entries) > MAX_TOOLS:
        raise TargetConfigError("tools", f"too many tools (at most {MAX_TOOLS})")
    tools = [_tool(number, entry) for number, entry in enumerate(entries, 1)]
    names = [tool.name for tool in tools]
    if len(set(names)) != len(names):
        raise TargetConfigError("tools", "two tools have the same name")
    return tuple(tools)


def _tool(number: int, entry: Any) -> Tool:
    where = f"tool {number}"
    if not isinstance(entry, Mapping):
        raise TargetConfigError("tools", f"{where} is not a JSON object")
    unknown = sorted(set(entry) - {"type", "function", "result", "rules"})
    if unknown:
        raise TargetConfigError("tools", f"{where}: {unknown[0]!r} is not known (type, function, result, rules)")
    function = entry.get("function")
    if entry.get("type", "function") != "function" or not isinstance(function, Mapping):
        raise TargetConfigError("tools", f'{where} must be {{"type": "function", "function": {{"name": ...}}}}')
    name = function.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise TargetConfigError("tools", f"{where}: the name must be 1 to 64 letters, digits, _ or -")
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, Mapping):
        raise TargetConfigError("tools", f"{name}: parameters must be a JSON schema object")
    rules = entry.get("rules") or []
    if not isinstance(rules, list) or not all(
        isinstance(rule, Mapping) and isinstance(rule.get("match"), Mapping) and "result" in rule for rule in rules
    ):
        raise TargetConfigError("tools", f'{name}: rules must be a list of {{"match": {{...}}, "result": ...}}')
    schema = {"type": "function", "function": {**function, "parameters": dict(parameters)}}
    return Tool(
        name,
        schema,
        entry.get("result", "ok"),
        tuple((dict(rule["match"]), rule["result"]) for rule in rules),
    )


def tools_data(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    return [
        {
            **tool.schema,
            "result": tool.result,
            **({"rules": [{"match": m, "result": res} for m, res in tool.rules]} if tool.rules else {}),
        }
        for tool in tools
    ]


def load_model(data: Mapping[str, Any]) -> tuple[Tool, ...]:
    unknown = sorted(set(data) - {"tools"})
    if unknown:
        raise TargetConfigError(unknown[0], "is not a setting of a model agent")
    return load_tools(data.get("tools")) if data.get("tools") is not None else ()


# -- any kind ------------------------------------------------------------------------------


def parse_target(kind: str, target: Any) -> str | None:
    """The kind's configuration checked and as canonical JSON text (None: a plain model)."""
    if kind not in KINDS:
        raise TargetConfigError("kind", "must be one of " + ", ".join(KINDS))
    data = _as_object(target)
    if kind == "model":
        tools = load_model(data) if data else ()
        return _canonical({"tools": tools_data(tools)}) if tools else None
    if data is None:
        what = "url, request and response" if kind == "http" else "callable"
        raise TargetConfigError("target", f"an {kind} agent needs its settings ({what})")
    if kind == "http":
        return _canonical(load_http(data).to_data())
    return _canonical({"callable": load_python(data)})


def _as_object(target: Any) -> dict[str, Any] | None:
    if target is None or target == "":
        return None
    if isinstance(target, str):
        if len(target) > MAX_TOOLS_CHARS:
            raise TargetConfigError("target", f"is too long (at most {MAX_TOOLS_CHARS} characters)")
        try:
            target = json.loads(target)
        except ValueError as error:
            raise TargetConfigError("target", f"is not JSON: {error}") from None
    if not isinstance(target, Mapping):
        raise TargetConfigError("target", "must be a JSON object")
    return dict(target)


def _canonical(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def describe(kind: str, target: str | None) -> str | None:
    """What answers for an agent of ``kind``, as the ``agent_model`` column and the lists name it:
    the endpoint (without its query string) or the callable; None for a model."""
    data = loads(target)
    if kind == "http" and data.get("url"):
        parts = urllib.parse.urlsplit(str(data["url"]))
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if kind == "python" and data.get("callable"):
        return f"python:{data['callable']}"
    return None


# A form edits the settings as one value a widget, named ``<kind>_<setting>``.
FORM_DEFAULTS: dict[str, str] = {
    "http_url": "",
    "http_method": "POST",
    "http_request": '{"conversation": {{messages}}, "session_id": {{session_id}}}',
    "http_response": "",
    "http_headers": "",  # one "Name: value" a line
    "http_session": "stateless",
    "python_callable": "",
    "model_tools": "",  # the tools as indented JSON
}


def form_values(target: Any) -> dict[str, str]:
    """Saved settings (JSON text or data) as the values of the form's widgets (``FORM_DEFAULTS``)."""
    try:
        settings = loads(target) if isinstance(target, str) else dict(target or {})
    except ValueError:
        settings = {}
    values = dict(FORM_DEFAULTS)
    for name in ("url", "method", "request", "response", "session"):
        if settings.get(name):
            values[f"http_{name}"] = str(settings[name])
    values["http_headers"] = "\n".join(f"{n}: {v}" for n, v in (settings.get("headers") or {}).items())
    values["python_callable"] = str(settings.get("callable") or "")
    values["model_tools"] = json.dumps(settings["tools"], indent=2) if settings.get("tools") else ""
    return values


def kind_label(profile: Mapping[str, Any]) -> str:
    """`` · HTTP`` or `` · Python`` after a profile's name; nothing for a model."""
    return {"http": " · HTTP", "python": " · Python"}.get(str(profile.get("kind") or "model"), "")


def loads(target: str | None) -> dict[str, Any]:
    """A stored configuration back as data."""
    value = json.loads(target) if target else {}
    return value if isinstance(value, dict) else {}
