"""The HTTP API's parameters: text from a request -> a checked value, or ParamError with one line.

Every reason names the parameter and what is allowed. A model is only ever a name looked up in
the worker's list of loaded models: a value that looks like a path is refused before any lookup.
"""

from __future__ import annotations

import math
import re

from ...model.knobs import CC_MAX, CC_MIN

MAX_NUMBER_CHARS = 24  # "63.999999999" fits; a megabyte of digits does not reach float()
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PACK_GRID_RANGE = (2, 8)  # a web pack is at most 64 snares; the command line goes to 32


class ParamError(ValueError):
    """A bad request parameter; str() is the one-line reason sent with the 400."""


def cc(query, key: str) -> float:
    """A knob position CC_MIN..CC_MAX (a decimal number; fractions allowed, as `render --cc`)."""
    text = query.get(key)
    if text is None:
        raise ParamError(f"{key} is required: a knob position {CC_MIN}..{CC_MAX}")
    value = _float(text, key, f"a knob position {CC_MIN}..{CC_MAX}")
    if not CC_MIN <= value <= CC_MAX:
        raise ParamError(f"{key}={_shown(text)}: out of range; allowed {CC_MIN}..{CC_MAX}")
    return value


def integer(query, key: str, lo: int, hi: int, default: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_NUMBER_CHARS):
        raise ParamError(f"{key}={_shown(text)}: not a whole number; allowed {lo}..{hi}")
    value = int(text)
    if not lo <= value <= hi:
        raise ParamError(f"{key}={value}: out of range; allowed {lo}..{hi}")
    return value


def velocity(query) -> int:
    return integer(query, "velocity", 1, 127, 127)


def variant(query, n_variants: int) -> int:
    """Which round robin of the model's (0 when absent)."""
    return integer(query, "variant", 0, n_variants - 1, 0)


def model(query, names: list[str], default: str) -> str:
    """A model name from `names` (the worker's loaded models); `default` when the parameter is absent."""
    text = query.get("model")
    if text is None:
        return default
    if "/" in text or "\\" in text or ".." in text or text.startswith(("~", ".")):
        raise ParamError(f"model={_shown(text)}: a model is a name, not a path; one of {', '.join(names)}")
    if not MODEL_NAME.fullmatch(text) or text not in names:
        raise ParamError(f"model={_shown(text)}: unknown model; one of {', '.join(names)}")
    return text


def only(query, allowed: tuple[str, ...]) -> None:
    """Refuse parameters the endpoint does not know (a typo would otherwise silently play the default)."""
    for key in query:
        if key not in allowed:
            raise ParamError(f"{_shown(key)}: unknown parameter; allowed {', '.join(allowed)}")


def _float(text: str, key: str, allowed: str) -> float:
    try:
        if len(text) > MAX_NUMBER_CHARS:
            raise ValueError
        value = float(text)
    except ValueError:
        raise ParamError(f"{key}={_shown(text)}: not a number; allowed {allowed}") from None
    if not math.isfinite(value):
        raise ParamError(f"{key}={_shown(text)}: not a finite number; allowed {allowed}")
    return value


def _shown(text: str) -> str:
    """A request value quoted for an error line: printable, bounded."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return repr(text if len(text) <= 40 else text[:40] + "…")
