"""Model strings: ``provider/model`` (litellm's naming), plus ``sim/<role>?params``.

Parsing and checking a model string must not import litellm (the UI validates forms
with it), so the providers we know and the environment variable each one reads its key
from are listed here.
"""

from __future__ import annotations

import functools
import math
import os
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field

# provider -> environment variables that can hold its key (first found wins).
# An empty tuple: the provider needs no key (local servers).
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "sim": (),
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
    "cohere": ("COHERE_API_KEY",),
    "perplexity": ("PERPLEXITYAI_API_KEY",),
    "azure": ("AZURE_API_KEY",),
    "ollama": (),
    "ollama_chat": (),
    "hosted_vllm": (),
    "lm_studio": (),
}

SIM_ROLES = ("agent", "adversary", "judge", "writer")

_FAULTS = {"fail_429": (0.0, 1.0), "fail_500": (0.0, 1.0), "timeout": (0.0, 1.0)}
_COMMON = {
    "latency_ms": (0.0, 600_000.0),
    "jitter_ms": (0.0, 600_000.0),
    "retry_after": (0.0, 600.0),
    "price_in": (0.0, 1000.0),
    "price_out": (0.0, 1000.0),
    **_FAULTS,
}
# The techniques the sim laboratory tells apart (GOAT's seven and the template strategies):
# ``sim/agent?weak=hypothetical:0.5`` concedes with 0.5 to a message that uses one.
SIM_TECHNIQUES = (
    "refusal_suppression",
    "dual_response",
    "response_priming",
    "persona_modification",
    "hypothetical",
    "topic_splitting",
    "opposite_intent",
    "direct",
    "escalation",
    "roleplay",
    "authority",
)
SIM_PARAMS: dict[str, dict[str, tuple[float, float]]] = {
    "agent": {
        "concede": (0.0, 1.0),
        "harden": (0.0, 1.0),
        "seed": (-(2**62), 2**62),
        **{f"weak_{t}": (0.0, 1.0) for t in SIM_TECHNIQUES},
        **_COMMON,
    },
    "adversary": dict(_COMMON),
    "judge": {"fpr": (0.0, 1.0), "fnr": (0.0, 1.0), "garble": (0.0, 1.0), **_COMMON},
    "writer": dict(_COMMON),
}
SIM_DEFAULTS: dict[str, float] = {
    "concede": 0.1,
    "harden": 0.0,
    "latency_ms": 0.0,
    "jitter_ms": 0.0,
    "retry_after": 1.0,
    "price_in": 0.15,  # fictional $ per million tokens, so that cost features have numbers
    "price_out": 0.6,
    "fail_429": 0.0,
    "fail_500": 0.0,
    "timeout": 0.0,
    "fpr": 0.0,
    "fnr": 0.0,
    "garble": 0.0,
}

_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+/[A-Za-z0-9_.:/@\-]+(\?[A-Za-z0-9_.=&:,\-]*)?$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.:/@?=&,\-]")
NAME_RULE = (
    "write provider/model with letters, digits and - _ . : / @ (sim/ models may add ?key=value, "
    "joined by &: sim/agent?concede=0.2&latency_ms=50)"
)

# Zero-width format characters. Text copied from a web page brings them along (a page may
# put U+2060 into a web address to keep it from becoming a link): every input field
# removes them (``sparring.validation``), so what was pasted means what it shows.
INVISIBLE_FORMAT = re.compile("[\u200b-\u200d\u2060\ufeff]")

NO_JUDGE = "none"  # the judge model of a battle decided by its success checks alone (no judge call)


def strip_invisible(text: str) -> str:
    """``text`` without zero-width spaces, joiners, word joiners and byte-order marks."""
    return INVISIBLE_FORMAT.sub("", text)


class ModelError(ValueError):
    """A model string that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class ModelRef:
    raw: str
    provider: str
    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def is_sim(self) -> bool:
        return self.provider == "sim"

    def param(self, key: str) -> float:
        return self.params.get(key, SIM_DEFAULTS[key])


def parse_model(raw: str) -> ModelRef:
    """Parse and check a model string; raise ``ModelError`` with a fix-it message."""
    if isinstance(raw, str) and len(raw) <= 300:
        return _parse_cached(raw)
    return _parse(raw)


@functools.lru_cache(maxsize=2048)
def _parse_cached(raw: str) -> ModelRef:
    # Every model call parses its model string: cache it (errors are not cached).
    return _parse(raw)


def _parse(raw: str) -> ModelRef:
    text = raw.strip()
    if not text:
        raise ModelError("Enter a model, for example sim/agent or openai/gpt-4o-mini.")
    if len(text) > 300:
        raise ModelError("Model names are at most 300 characters.")
    if "/" not in text and all(_NAME_CHARS.fullmatch(char) for char in text):
        # Suggest the user's own name only when its characters are allowed.
        raise ModelError(f"Write the model as provider/model, for example openai/{text}.")
    if not _NAME.match(text):
        raise ModelError(_not_a_name(text))
    provider, rest = text.split("/", 1)
    if provider not in PROVIDER_KEYS:
        known = ", ".join(sorted(PROVIDER_KEYS))
        raise ModelError(f"Unknown provider '{provider}'. Known providers: {known}.")
    if provider != "sim":
        if "?" in rest:
            raise ModelError("Only sim/ models take ?parameters.")
        return ModelRef(text, provider, rest)
    name, _, query = rest.partition("?")
    if name not in SIM_ROLES:
        raise ModelError(f"Unknown sim model 'sim/{name}'. Sim models: " + ", ".join(f"sim/{r}" for r in SIM_ROLES))
    return ModelRef(text, provider, name, _sim_params(name, query))


def _not_a_name(text: str) -> str:
    strays = list(dict.fromkeys(char for char in text if not _NAME_CHARS.fullmatch(char)))
    found = f" (it contains {', '.join(_describe(char) for char in strays[:3])})" if strays else ""
    return f"'{text[:60]}' is not a model name{found}: {NAME_RULE}."


def _describe(char: str) -> str:
    """A character as a user can find it: itself if visible, else its code point and name."""
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def _sim_params(role: str, query: str) -> dict[str, float]:
    allowed = SIM_PARAMS[role]
    params: dict[str, float] = {}
    for key, values in urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if key == "weak" and role == "agent" and len(values) == 1:
            params.update(_weak(values[0], allowed))
            continue
        if key not in allowed:
            raise ModelError(f"sim/{role} has no parameter '{key}'. It takes: {', '.join(sorted(allowed))}.")
        if len(values) != 1:
            raise ModelError(f"Give '{key}' once.")
        try:
            value = float(values[0])
        except ValueError:
            raise ModelError(f"'{key}' must be a number, not '{values[0][:20]}'.") from None
        low, high = allowed[key]
        if not math.isfinite(value) or not low <= value <= high:
            raise ModelError(f"'{key}' must be between {low:g} and {high:g}.")
        params[key] = value
    if query and not params and "=" not in query:
        raise ModelError(f"Write sim parameters as key=value, for example sim/{role}?latency_ms=200.")
    return params


def _weak(text: str, allowed: dict[str, tuple[float, float]]) -> dict[str, float]:
    """``weak=TECHNIQUE:q[,TECHNIQUE:q]`` as ``weak_TECHNIQUE`` parameters."""
    found: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        technique, colon, number = part.partition(":")
        if not colon or f"weak_{technique}" not in allowed:
            raise ModelError(f"Write weak=TECHNIQUE:probability; techniques: {', '.join(SIM_TECHNIQUES)}.")
        try:
            value = float(number)
        except ValueError:
            raise ModelError(f"weak: '{number[:20]}' must be a number between 0 and 1.") from None
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise ModelError("weak: each probability must be between 0 and 1.")
        found[f"weak_{technique}"] = value
    return found


def check_key_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ModelError("The key must be named by an environment variable such as MY_OPENAI_KEY (A-Z, 0-9, _).")
    return name


def missing_key(ref: ModelRef, api_key_env: str | None = None, api_base: str | None = None) -> str | None:
    """A message if the key this model needs is not in the environment, else None."""
    if api_key_env:
        return None if os.environ.get(api_key_env) else f"The environment variable {api_key_env} is not set."
    candidates = PROVIDER_KEYS[ref.provider]
    if not candidates or api_base:
        return None
    if any(os.environ.get(name) for name in candidates):
        return None
    return f"{ref.provider} needs an API key: set {candidates[0]} in the environment of the app and the workers."


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else model
