"""Configuration: YAML (safe_load only) -> frozen, validated dataclasses.

`config/default.yaml` holds every key with a comment. A user file needs only
the keys it changes; it is laid over the defaults. Unknown keys, wrong types
and out-of-range values fail with one line naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .paths import DEFAULT_CONFIG_PATH

MIDI_APIS = ("auto", "alsa", "jack", "coremidi")
LOOP_BPM_RANGE = (20.0, 400.0)  # the loop's own tempo, wherever it is set (config, page, control socket)


def _spec(*, range=None, choices=None, doc=""):
    return {"range": range, "choices": choices, "doc": doc}


@dataclass(frozen=True)
class MidiConfig:
    api: str = field(default="auto", metadata=_spec(choices=MIDI_APIS))
    virtual_port: str = "Latent Snare"
    # Hardware inputs by name pattern. On JACK they match hardware ports only (the physical flag, or
    # a2j's ALSA bridge), so other programs' outputs never play the snare unless named below.
    inputs: tuple = ("*",)
    software_inputs: tuple = ()  # JACK: other programs' MIDI outputs to connect, by name pattern
    exclude: tuple = ("*Through*", "*Latent Snare*")
    channel: Any = field(default="omni", metadata=_spec(doc="omni or 1..16"))
    cc_x: int = field(default=74, metadata=_spec(range=(0, 119)))
    cc_y: int = field(default=75, metadata=_spec(range=(0, 119)))
    trigger_notes: tuple = (37, 38, 39, 40)
    reconnect_s: float = field(default=1.0, metadata=_spec(range=(0.1, 60.0)))
    # Program change N plays the Nth of these models (names in models/ or paths); [] = every model in models/.
    programs: tuple = ()


@dataclass(frozen=True)
class AudioConfig:
    backend: str = field(default="auto", metadata=_spec(choices=("auto", "jack", "portaudio")))
    device: str = ""
    block_size: int = field(default=128, metadata=_spec(range=(16, 4096)))
    channels: int = field(default=2, metadata=_spec(range=(1, 2)))
    gain_db: float = field(default=0.0, metadata=_spec(range=(-60.0, 12.0)))
    ceiling_db: float = field(default=-1.0, metadata=_spec(range=(-24.0, -0.1)))
    limiter_release_ms: float = field(default=80.0, metadata=_spec(range=(1.0, 2000.0)))
    # Run the audio cycle (JACK or PortAudio) in a process of its own, which no other Python thread can stall;
    # false runs the same cycle in this process.
    separate_process: bool = True


MAX_ROUND_ROBINS = 4  # a kit holds 3 velocity layers x this many variants: rt/layout.py sizes its slots so


@dataclass(frozen=True)
class VoiceConfig:
    polyphony: int = field(default=16, metadata=_spec(range=(1, 128)))
    mode: str = field(default="oneshot", metadata=_spec(choices=("oneshot", "choke")))
    steal_fade_ms: float = field(default=5.0, metadata=_spec(range=(0.5, 50.0)))
    velocity_range_db: float = field(default=30.0, metadata=_spec(range=(0.0, 96.0)))
    round_robins: int = field(default=4, metadata=_spec(range=(1, MAX_ROUND_ROBINS)))


NO_CONTROL = -1  # a trigger CC or note that is not assigned


@dataclass(frozen=True)
class LoopConfig:
    enabled: bool = False
    bpm: float = field(default=120.0, metadata=_spec(range=LOOP_BPM_RANGE))
    steps_per_beat: int = field(default=4, metadata=_spec(range=(1, 8)))
    velocity: int = field(default=100, metadata=_spec(range=(1, 127)))
    toggle_cc: int = field(default=85, metadata=_spec(range=(NO_CONTROL, 119)))
    toggle_note: int = field(default=NO_CONTROL, metadata=_spec(range=(NO_CONTROL, 127)))


@dataclass(frozen=True)
class SaveConfig:
    folder: str = "~/Music/Latent Snare"
    cc: int = field(default=86, metadata=_spec(range=(NO_CONTROL, 119)))
    note: int = field(default=NO_CONTROL, metadata=_spec(range=(NO_CONTROL, 127)))
    drop_folder: str = "~/Music/Latent Snare/drop"


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=8765, metadata=_spec(range=(0, 65535)))  # 0: any free port
    max_upload_mb: float = field(default=20.0, metadata=_spec(range=(0.1, 200.0)))


@dataclass(frozen=True)
class Config:
    model: str = "env"
    midi: MidiConfig = MidiConfig()
    audio: AudioConfig = AudioConfig()
    voices: VoiceConfig = VoiceConfig()
    loop: LoopConfig = LoopConfig()
    save: SaveConfig = SaveConfig()
    web: WebConfig = WebConfig()

    def with_overrides(self, **dotted: Any) -> Config:
        """Override keys given as {'audio.block_size': 64}; None values are skipped; validated like the file."""
        raw = dataclasses.asdict(self)
        for key, value in dotted.items():
            if value is None:
                continue
            node = raw
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
        return _build(Config, raw, "", "command line")


def _check_scalar(value: Any, f: dataclasses.Field, key: str, origin: str) -> Any:
    spec = f.metadata or {}
    expected = type(f.default)
    if key == "midi.channel":
        if value == "omni" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16):
            return value
        raise UserError(f"{origin}: {key} must be 'omni' or a channel 1..16, got {value!r}")
    if expected is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{origin}: {key} must be a list, got {value!r}")
        if key == "midi.trigger_notes" and not all(type(n) is int and 0 <= n <= 127 for n in value):
            raise UserError(f"{origin}: {key} must be a list of notes 0..127, got {value!r}")
        if key != "midi.trigger_notes" and not all(isinstance(n, str) and n for n in value):
            raise UserError(f"{origin}: {key} must be a list of names, got {value!r}")
        return tuple(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise UserError(f"{origin}: {key} must be {expected.__name__}, got {value!r}")
    if spec.get("choices") and value not in spec["choices"]:
        raise UserError(f"{origin}: {key} must be one of {', '.join(spec['choices'])}, got {value!r}")
    if spec.get("range"):
        lo, hi = spec["range"]
        if not lo <= value <= hi:
            raise UserError(f"{origin}: {key} must be in range {lo}..{hi}, got {value!r}")
    return value


def _build(cls, raw: Any, prefix: str, origin: str):
    if not isinstance(raw, dict):
        raise UserError(f"{origin}: {prefix or 'the file'} must be a mapping of keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        key = f"{prefix}{sorted(map(str, unknown))[0]}"
        raise UserError(f"{origin}: unknown key {key!r}; allowed here: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(f.default):
            values[name] = _build(type(f.default), raw[name], f"{key}.", origin)
        else:
            values[name] = _check_scalar(raw[name], f, key, origin)
    return cls(**values)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"{path}: cannot read config: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)  # never yaml.load: a !!python tag must not construct objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)  # where the parser gave up (0-based)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from err
    return {} if data is None else data


def user_config_path() -> Path:
    """Where MIDI learn keeps what it learned: laid over the defaults, under any --config file."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "latent-snare" / "config.yaml"


def load_config(path: str | Path | None = None, user_path: Path | None = None, *, learned: bool = True) -> Config:
    """The defaults file, then the user file (MIDI learn's, if present), then `path` (if given).

    learned=False leaves the user file out: what one player learned on their controller is theirs,
    not every visitor's of the web application nor a sample pack's labels. A `path` that names the
    user file still reads it."""
    raw = _read_yaml(DEFAULT_CONFIG_PATH)
    config = _build(Config, raw, "", str(DEFAULT_CONFIG_PATH))
    user_file = Path(user_path or user_config_path())
    for layer in ([user_file] if learned else []) + ([Path(path)] if path is not None else []):
        if layer is user_file and not layer.exists():
            continue  # no user file yet: nothing learned
        over = _read_yaml(layer)
        if not isinstance(over, dict):
            raise UserError(f"{layer}: the file must be a mapping of keys, got {over!r}")
        raw = _merge(raw, over)
        config = _build(Config, raw, "", str(layer))  # checked as each layer is added, so an error names its file
    return config


def save_user_settings(settings: dict[str, Any], user_path: Path | None = None) -> Path:
    """Write dotted keys ({'midi.cc_x': 21}) into the user file, keeping what else it holds; atomic."""
    path = Path(user_path or user_config_path())
    current = _read_yaml(path) if path.exists() else {}
    if not isinstance(current, dict):
        current = {}
    for key, value in settings.items():
        node = current
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    _build(Config, _merge(_read_yaml(DEFAULT_CONFIG_PATH), current), "", str(path))  # never write what would not load
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# Written by latent-snare (MIDI learn). Laid over config/default.yaml.\n"
        + yaml.safe_dump(current, sort_keys=False)
    )
    os.replace(tmp, path)
    return path
