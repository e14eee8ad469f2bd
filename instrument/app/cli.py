"""`latent-snare` command line. Each subcommand imports what it needs when it runs,
so playing and rendering never pay for torch's import."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from ..config import LOOP_BPM_RANGE
from ..errors import UserError
from ..model.knobs import CC_MAX, CC_MIN
from ..paths import REPO_DIR

DEFAULT_CORPUS_DIR = REPO_DIR / "data" / "corpus"
DEFAULT_ZOO_DIR = REPO_DIR / "runs" / "zoo"
TRAINING_MODULES = ("torch", "tqdm")  # the [train] extra; playing and rendering never import them
TRAIN_INSTALL = "make setup-train (or: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && pip install -e '.[train]')"


# argparse names a type function that raises ValueError ("invalid _cc value"): these say what is allowed.


def _number(text: str, what: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None


def _cc(text: str) -> float:
    value = _number(text, f"a knob position is a number {CC_MIN}..{CC_MAX}")
    if not CC_MIN <= value <= CC_MAX:
        raise argparse.ArgumentTypeError(f"CC must be in range {CC_MIN}..{CC_MAX}, got {text}")
    return value


def _finite(text: str) -> float:
    value = _number(text, "a latent coordinate is a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a latent coordinate must be a finite number, got {text}")
    return value


def _velocity(text: str) -> int:
    value = _number(text, "velocity is a whole number 1..127", int)
    if not 1 <= value <= 127:
        raise argparse.ArgumentTypeError(f"velocity must be in range 1..127, got {text}")
    return value


MIDI_API_HELP = (
    "the MIDI system to open ports with: auto (ALSA's sequencer, or JACK's where there is none and a JACK "
    "server runs; CoreMIDI on macOS), alsa, jack or coremidi"
)


def _version() -> str:
    from importlib.metadata import version

    import soundfile

    # The file parser's version matters when a crafted file is reported against it.
    return (
        f"latent-snare {version('latent-snare')} "
        f"(libsndfile {soundfile.__libsndfile_version__} reads dropped and uploaded files, in a child process)"
    )


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="model name in models/ or path to its .safetensors/.json (default: from config)",
    )


def _socket_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the control socket (default: latent-snare-UID.sock in "
        "$XDG_RUNTIME_DIR or /tmp); a second instrument needs its own, and its own --virtual-port",
    )


# --- model side ---------------------------------------------------------------------------


def cmd_corpus(args) -> int:
    from ..training.corpus import build_corpus

    files = build_corpus(
        args.out, args.manifest, cache_dir=args.cache, sources=args.sources, progress=not args.no_progress
    )
    units = {f.kit for f in files}
    val = sum(f.split == "val" for f in files)
    print(
        f"corpus: {len(files)} files from {len(units)} units in {args.out} ({val} held out for validation); "
        f"manifest {args.manifest}"
    )
    return 0


def cmd_train(args) -> int:
    from ..training.dataset import load_dataset
    from ..training.evaluate import evaluate_model
    from ..training.recipes import fit, recipe_for
    from ..training.train import DATA_N_SAMPLES, MODEL_N_SAMPLES, MODEL_SAMPLE_RATE

    recipe = recipe_for(args.arch, MODEL_N_SAMPLES, args.epochs)
    data = load_dataset(args.data, MODEL_SAMPLE_RATE, DATA_N_SAMPLES, all_files=args.all_files)
    print(f"{args.data}: {data.found}")
    print(
        f"training {recipe.name} on {len(data.train)} snares ({len(data.val)} held out) for up to {recipe.epochs} epochs"
    )
    out = fit(recipe, data, args.out / recipe.name, device=args.device)
    evaluate_model(out, data)
    print(f"saved {out} and {out.with_suffix('.json').name}; play it with: latent-snare run --model {out}")
    return 0


def cmd_zoo(args) -> int:
    from ..training.dataset import load_dataset
    from ..training.evaluate import evaluate_model
    from ..training.recipes import all_recipes, fit
    from ..training.train import DATA_N_SAMPLES, MODEL_N_SAMPLES, MODEL_SAMPLE_RATE, SEED_EPOCHS, seed_recipes

    recipes = (
        seed_recipes(MODEL_N_SAMPLES, args.epochs or SEED_EPOCHS)
        if args.seed_only
        else all_recipes(MODEL_N_SAMPLES, args.epochs)
    )
    if args.only:
        recipes = [r for r in recipes if r.name in args.only]
    data = load_dataset(args.data, MODEL_SAMPLE_RATE, DATA_N_SAMPLES, all_files=args.all_files)
    print(f"{args.data}: {data.found}")
    print(f"zoo: {len(recipes)} models on {len(data.train)} snares ({len(data.val)} held out)")
    for recipe in recipes:
        out = fit(recipe, data, args.out / recipe.name, device=args.device)
        evaluate_model(out, data)
    return 0


def cmd_evaluate(args) -> int:
    from ..training.dataset import load_dataset
    from ..training.evaluate import evaluate_zoo
    from ..training.train import DATA_N_SAMPLES, MODEL_SAMPLE_RATE

    data = load_dataset(args.data, MODEL_SAMPLE_RATE, DATA_N_SAMPLES, all_files=args.all_files)
    print(f"{args.data}: {data.found}")
    evaluate_zoo(args.zoo, data, card=args.card, ship_dir=args.ship, second=args.second)
    return 0


REACH_TOLERANCE = 1e-3  # of the knob box's size: a point encode printed (4 decimals) is inside


def within_reach(model, latent):
    """`latent` as float32 if the knobs reach it, else a one-line error with the box they reach."""
    import numpy as np

    point = np.asarray(latent, dtype=np.float64)
    knobs = model.knobs
    reached = knobs.cc_to_latent(*knobs.latent_to_cc(point)).astype(np.float64)
    size = float(np.max(np.abs(knobs.hi - knobs.lo)))
    if np.max(np.abs(reached - point)) > REACH_TOLERANCE * size:
        corners = np.array([knobs.cc_to_latent(x, y) for x in (CC_MIN, CC_MAX) for y in (CC_MIN, CC_MAX)])
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        raise UserError(
            f"--latent {latent[0]:g} {latent[1]:g}: outside what {model.name}'s knobs reach "
            f"(within x {lo[0]:.3f}..{hi[0]:.3f}, y {lo[1]:.3f}..{hi[1]:.3f}); use --cc X Y for knob positions"
        )
    return point.astype(np.float32)


def cmd_render(args) -> int:
    import soundfile as sf

    from ..config import load_config
    from ..files.saving import render_snare, write_format, write_snare
    from ..model.file import load_model

    # A wrong name or folder is told before the model loads.
    if args.out.is_dir():
        raise UserError(f"{args.out}: is a folder; give a file name ending in .wav, .flac or .ogg")
    write_format(args.out)
    if not args.out.parent.is_dir():
        raise UserError(f"{args.out}: no such folder {args.out.parent} (render writes into an existing folder)")
    config = load_config(args.config)
    model = load_model(args.model, config.model)
    if not 0 <= args.variant < model.n_variants:
        raise UserError(f"--variant {args.variant}: {model.name} has round robins 0..{model.n_variants - 1}")
    latent = model.knobs.cc_to_latent(*args.cc) if args.cc else within_reach(model, args.latent)
    c = config
    wave = render_snare(model, latent, args.velocity, c.voices.velocity_range_db, c.audio.ceiling_db, args.variant)
    try:
        meta = write_snare(args.out, wave, model.sample_rate, model, latent)
    except (OSError, sf.LibsndfileError) as err:
        raise UserError(f"{args.out}: cannot write: {getattr(err, 'strerror', None) or err}") from err
    print(
        f"{args.out}: {model.name} latent ({latent[0]:.4f}, {latent[1]:.4f}) cc ({meta['cc'][0]}, {meta['cc'][1]}) velocity {args.velocity} variant {args.variant}"
    )
    return 0


def cmd_encode(args) -> int:
    from ..config import load_config
    from ..files.audio import load_snare
    from ..model.file import load_model

    model = load_model(args.model, load_config(args.config).model)
    wave = load_snare(args.input, model.sample_rate, model.n_samples)
    latent = model.encode(wave)
    cc = list(model.knobs.latent_to_cc_int(latent))
    if args.json:
        print(json.dumps({"latent": [float(latent[0]), float(latent[1])], "cc": cc, "model": model.name}))
    else:
        print(f"{args.input}: latent ({latent[0]:.4f}, {latent[1]:.4f})  cc ({cc[0]}, {cc[1]})  [{model.name}]")
    return 0


# --- service side -------------------------------------------------------------------------


def cmd_run(args) -> int:
    from .service import run_service

    return run_service(args)


def cmd_serve(args) -> int:
    from .serve.gunicorn import run_serve

    return run_serve(args)


def cmd_devices(args) -> int:
    from .devices import print_devices

    print_devices(args.midi_api)
    return 0


def cmd_pack(args) -> int:
    from ..config import load_config
    from ..files.pack import INDEX_NAME, MAP_NAME, render_pack
    from ..model.file import load_model

    # The map is labelled with the mapping asked for (--config, else the defaults), never with what
    # one controller learned: a pack is shared.
    config = load_config(args.config, learned=False)
    model = load_model(args.model, config.model)
    rows = render_pack(model, args.grid, args.outdir, config, args.velocity)
    print(
        f"{args.outdir}: {len(rows)} snares from {model.name} ({args.grid}x{args.grid} over the knobs), {INDEX_NAME}, "
        f"{MAP_NAME} (labelled CC {config.midi.cc_x} and CC {config.midi.cc_y}, from {args.config or 'config/default.yaml'})"
    )
    return 0


def cmd_site(args) -> int:
    from ..config import load_config
    from .site import write_site

    config = load_config(args.config, learned=False)  # a public page: never one player's learned knobs
    site = write_site(args.outdir, config, args.model, progress=lambda line: print(line, flush=True))
    print(
        f"{args.outdir}: a static site of {len(site['files']) + 1} files, {site['bytes'] / 1e6:.1f} MB "
        f"(try it: python3 -m http.server -d {args.outdir} 8000, then open http://localhost:8000/)"
    )
    return 0


def cmd_history(args) -> int:
    from ..config import load_config
    from ..files.saving import History

    folder = Path(load_config(args.config).save.folder).expanduser()
    history = History(folder)
    if not history.entries:
        print(f"{folder}: nothing saved yet (press s, or the save button: CC 86 by default)")
    for e in history.entries:
        print(f"#{e.number:<4d} {e.time}  {e.model:<14s} CC ({e.cc[0]:3d}, {e.cc[1]:3d})  {e.file}")
    return 0


def cmd_remote(args) -> int:
    """Commands answered by the running instrument over its control socket."""
    from .control import send_command

    if args.command == "learn":
        for target in args.targets:
            what = "knob" if target in ("x", "y") else "button, pad or key"
            print(f"learn {target}: move the {what} for {target} now (within {args.timeout:g} s)...", flush=True)
            print(
                send_command(
                    "learn", timeout_s=args.timeout + 5, socket_file=args.socket, target=target, wait_s=args.timeout
                )
            )
        return 0
    if args.command == "status" and args.json:
        print(json.dumps(send_command("state", socket_file=args.socket)))
        return 0
    print(send_command(args.command, socket_file=args.socket, **args.request(args)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latent-snare",
        description="Play the snare: a map of real snares (the model's 2-D latent plane) under two MIDI knobs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("--version", action="version", version=_version(), help="the version, and its file reader's")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(command_parsers=commands.choices)

    def add_command(name, help):
        """A command whose one-line help is also the first line of its own -h."""
        return commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")

    p = add_command("run", help="run the instrument: MIDI in, snares out")
    p.add_argument("--config", type=Path, metavar="PATH", help="YAML laid over config/default.yaml")
    p.add_argument(
        "--midi-api",
        choices=["auto", "alsa", "jack", "coremidi"],
        help=MIDI_API_HELP + " (default: the config's midi.api)",
    )
    p.add_argument("--virtual-port", metavar="NAME", help='virtual MIDI input name ("" for none)')
    p.add_argument("--audio-device", metavar="NAME", help="output device name (see `latent-snare devices`)")
    p.add_argument("--blocksize", type=int, metavar="N", help="frames per audio callback (portaudio)")
    p.add_argument(
        "--audio-backend", choices=("auto", "jack", "portaudio"), help="jack: notes play in the cycle they arrive in"
    )
    p.add_argument("--web-port", type=int, metavar="PORT", help="the control page's port (0: any free port)")
    _model_arg(p)
    p.add_argument("--no-status", action="store_true", help="no live status line (for logs and services)")
    p.add_argument(
        "--loop",
        nargs="?",
        type=float,
        const=0.0,
        metavar="BPM",
        help="start with the loop on (at BPM, or the config's tempo)",
    )
    _socket_arg(p)
    p.set_defaults(func=cmd_run)

    p = add_command(
        "serve", help="the web application: the instrument in visitors' browsers (no sound card, JACK or MIDI)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 needs --public-name)"
    )
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes under gunicorn (about one per core)"
    )
    p.add_argument(
        "--public-name",
        action="append",
        metavar="NAME",
        help="a host name visitors use (repeatable); Host and Origin must match",
    )
    p.add_argument("--encodes-per-minute", type=int, default=10, metavar="N", help="per client and worker (default 10)")
    p.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default="",
        help="proxies whose X-Forwarded-For names the visitor: addresses or networks, comma-separated, or '*' "
        "(default none: every client is counted by its own address)",
    )
    p.add_argument("--no-access-log", action="store_true", help="do not write the access log (on by default)")
    p.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="YAML laid over config/default.yaml (models, MIDI mapping, upload cap)",
    )
    p.set_defaults(func=cmd_serve)

    p = add_command(
        "pack", help="render an N x N grid of snares over both knobs' travel (CC 0..127 each) into a folder of WAVs"
    )
    _model_arg(p)
    p.add_argument("--config", type=Path, metavar="PATH", help="YAML laid over config/default.yaml")
    p.add_argument("--grid", type=int, default=5, metavar="N", help="N x N snares, N from 2 to 32 (default 5)")
    p.add_argument(
        "--velocity",
        type=_velocity,
        default=127,
        metavar="V",
        help="1..127 (default 127): every snare as a hit this hard",
    )
    p.add_argument("outdir", type=Path, metavar="OUTDIR", help="the folder to write into (made if missing)")
    p.set_defaults(func=cmd_pack)

    p = add_command(
        "site", help="write the web page as static files (it decodes in the visitor's browser and works offline)"
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="a model the site offers (repeatable; the first is the default; default: the config's programs)",
    )
    p.add_argument(
        "--config", type=Path, metavar="PATH", help="YAML laid over config/default.yaml (MIDI mapping, loop, levels)"
    )
    p.add_argument("outdir", type=Path, metavar="OUTDIR", help="a new or empty folder, or an earlier site to replace")
    p.set_defaults(func=cmd_site)

    p = add_command("history", help="list the saved snares (numbers for `recall`)")
    p.add_argument("--config", type=Path, metavar="PATH", help="YAML laid over config/default.yaml")
    p.set_defaults(func=cmd_history)

    # Talking to the running instrument (over its control socket): each builds its request from the arguments.
    def remote(name, help, request=lambda args: {}):
        p = add_command(name, help=help)
        _socket_arg(p)
        p.set_defaults(func=cmd_remote, request=request)
        return p

    remote("save", "save the snare the running instrument plays now")
    remote(
        "recall", "move the running instrument back to saved snare N (see `history`)", lambda a: {"number": a.number}
    ).add_argument("number", type=int, metavar="N", help="the saved snare's number, as `history` lists it")
    remote(
        "drop",
        "move the running instrument to the snare closest to an audio file",
        lambda a: {"path": str(Path(a.file).resolve())},
    ).add_argument("file", metavar="FILE", help="an audio file (WAV, FLAC, AIFF or OGG)")
    p = remote(
        "loop",
        "turn the running instrument's loop on or off (with nothing: toggle it)",
        lambda a: {"on": {"on": True, "off": False}.get(a.state), "bpm": a.bpm},
    )
    p.add_argument(
        "state",
        nargs="?",
        choices=["on", "off", "toggle"],
        default="toggle",
        metavar="on|off|toggle",
        help="with nothing, toggle: on if it was off, off if it was on",
    )
    p.add_argument("--bpm", type=float, help="tempo without MIDI clock, {:g}..{:g}".format(*LOOP_BPM_RANGE))
    remote(
        "model",
        "switch the running instrument to a model, by name or program number (from 0, as MIDI "
        "program change sends it); with no argument, list the programs",
        lambda a: {"which": int(a.which) if a.which and a.which.isdigit() else a.which},
    ).add_argument(
        "which", nargs="?", metavar="NAME|N", help="a model's name (as the list shows it) or its program number"
    )
    p = remote("learn", "MIDI learn: assign knobs and buttons by moving them (saved in your user config)")
    p.add_argument(
        "targets",
        nargs="*",
        choices=["x", "y", "loop", "save"],
        default=["x", "y"],
        metavar="TARGET",
        help="x, y, loop, save (default: x y)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each control")
    remote(
        "status",
        "where the running instrument is: model, knobs, voices, own xruns (its dropouts: audio that came late)",
    ).add_argument("--json", action="store_true", help="the full state as one JSON object")

    p = add_command("devices", help="list audio outputs and MIDI inputs")
    p.add_argument("--midi-api", choices=["auto", "alsa", "jack", "coremidi"], default="auto", help=MIDI_API_HELP)
    p.set_defaults(func=cmd_devices)

    p = add_command("render", help="write one decoded snare to a WAV, FLAC or Ogg file")
    _model_arg(p)
    p.add_argument("--config", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--cc", nargs=2, type=_cc, metavar=("X", "Y"), help=f"knob positions {CC_MIN}..{CC_MAX}")
    where.add_argument(
        "--latent",
        nargs=2,
        type=_finite,
        metavar=("X", "Y"),
        help="a point of the model's map (its latent plane) within the knobs' reach (as `encode` prints; a point outside is refused "
        "with the range)",
    )
    p.add_argument(
        "--velocity",
        type=_velocity,
        default=127,
        metavar="V",
        help="1..127 (default 127): a softer hit is quieter and darker",
    )
    p.add_argument(
        "--variant", type=int, default=0, help="which round robin, from 0 (default 0): each hit of a drum differs"
    )
    p.add_argument("out", type=Path, metavar="OUT", help="a .wav or .flac (24-bit) or .ogg file in an existing folder")
    p.set_defaults(func=cmd_render)

    p = add_command(
        "encode",
        help="print the knob positions whose snare sounds closest to a sample (and that point of the model's map)",
    )
    _model_arg(p)
    p.add_argument("--config", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help='one JSON object: {"latent": [x, y], "cc": [x, y]}')
    p.add_argument("input", type=Path, metavar="IN.wav", help="the sample: WAV, FLAC, AIFF or OGG, any rate")
    p.set_defaults(func=cmd_encode)

    p = add_command(
        "corpus",
        help="rebuild the snare corpus from Debian packages (Hydrogen kits, samples, soundfonts via fluidsynth)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_CORPUS_DIR,
        help=f"corpus folder (default {DEFAULT_CORPUS_DIR.relative_to(REPO_DIR)})",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        default=REPO_DIR / "models" / "corpus.csv",
        help="where to write the committed manifest",
    )
    p.add_argument("--cache", type=Path, help="keep the downloaded .deb files here (reused on the next build)")
    p.add_argument("--sources", nargs="+", metavar="PACKAGE", help="only these Debian packages (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_corpus)

    def add_training_args(p):
        p.add_argument(
            "--data",
            type=Path,
            default=DEFAULT_CORPUS_DIR,
            help="folder of snares (WAV/FLAC/AIFF, any rate); subfolders are kits",
        )
        p.add_argument("--out", type=Path, default=DEFAULT_ZOO_DIR, help="where models and checkpoints go")
        p.add_argument(
            "--epochs",
            type=int,
            help="epochs per model, passes over the data (default: the seed's 700 for dense models; "
            "300 for envelope models, which stop early on the held-out kits)",
        )
        p.add_argument(
            "--device",
            choices=["auto", "cpu", "cuda"],
            default="auto",
            help="where to train: auto (an NVIDIA GPU if torch sees one, else the CPU), cpu or cuda",
        )
        p.add_argument(
            "--all-files",
            action="store_true",
            help="also train on files named as other drums (kick, hat, tom...); "
            "by default only snares, rims, claps and files whose names say nothing",
        )

    p = add_command("train", help="train one model on a folder of snares (resumes if interrupted)")
    add_training_args(p)
    p.add_argument(
        "--arch",
        default="env",
        help="env (an envelope snare: noise and partials shaped by the model; the shipped default's recipe), "
        "env-small (the same, smaller), small|med|big-relu|tanh|sig (the first nine models, dense "
        "autoencoders: the seed's nine), med-tanh-spec, med-tanh-vae",
    )
    p.set_defaults(func=cmd_train)

    p = add_command(
        "zoo",
        help="train every model: the first nine dense models (the seed's nine), their variants and the envelope snares",
    )
    add_training_args(p)
    p.add_argument("--seed-only", action="store_true", help="only the first nine dense models (the seed's nine)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these models")
    p.set_defaults(func=cmd_zoo)

    p = add_command("evaluate", help="evaluate a folder of models on held-out kits and write the model card table")
    p.add_argument(
        "--zoo",
        type=Path,
        default=DEFAULT_ZOO_DIR,
        help=f"the trained models (default {DEFAULT_ZOO_DIR.relative_to(REPO_DIR)})",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_CORPUS_DIR,
        help="the snares they were trained on (its held-out kits are measured)",
    )
    p.add_argument(
        "--all-files", action="store_true", help="as `train --all-files`: the same files the models were trained on"
    )
    p.add_argument(
        "--card", type=Path, default=REPO_DIR / "models" / "README.md", help="the model card whose table is rewritten"
    )
    p.add_argument("--ship", type=Path, help="copy the chosen default model (and the map picture) here, e.g. models/")
    p.add_argument("--second", metavar="NAME", help="also ship this model (program change 1 plays it)")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # told with the command's own usage, not the top level's
        args.command_parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="latent-snare: %(levelname)s: %(message)s"
    )
    try:
        return args.func(args)
    except UserError as err:
        print(f"latent-snare: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latent-snare: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as err:
        if err.name not in TRAINING_MODULES:
            raise  # a bug, or a broken install: keep the traceback
        print(
            f"latent-snare: error: `{args.command}` needs the training extra ({err.name} is not installed); "
            f"install it with: {TRAIN_INSTALL}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
