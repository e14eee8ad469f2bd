"""`latent-snare site OUTDIR`: the web page as a folder of static files, for any static host.

The page is serve's own (app/serve/static), marked as a static site so that it fetches files
instead of asking an API, and it decodes every snare in the visitor's tab. A service worker
(sw.js) keeps it working offline once loaded. A folder that holds anything but an earlier
site is refused: nothing the user made is overwritten.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import UserError
from ..model.file import available_models, load_model
from .serve.app import ASSETS, HERE
from .serve.page import models_json, settings_json
from .serve.snares import Served

MARKER = "site.json"  # lists the site's files; its presence marks a folder as ours to replace
SITE_META = '<meta name="latent-snare-site" content="static">'


def write_site(outdir: Path, config, model_names: list[str] | None = None, progress=print) -> dict:
    """Write the site for `model_names` (default: the config's programs, else every model; the
    first is the default) into `outdir`; returns site.json's content."""
    earlier = _earlier_site(outdir)  # refused before any work if the folder is not ours
    names = model_names or list(config.midi.programs) or [config.model, *available_models()]
    served: dict[str, Served] = {}
    for name in names:
        model = load_model(name, config.model)
        if model.name in served:
            continue
        entry = Served.of(model)
        if entry.spec is None:
            raise UserError(
                f"{model.name}: the page cannot decode this model family in the browser "
                "(the seed's dense models); pick envelope models with --model, or use `serve`"
            )
        served[model.name] = entry
    files: dict[str, bytes] = {}
    for url, (path, _kind) in ASSETS.items():
        if url != "/":
            files[url.lstrip("/")] = path.read_bytes()
    files["index.html"] = _static_page(ASSETS["/"][0].read_text()).encode()
    default = next(iter(served))
    files["settings.json"] = json.dumps(settings_json(config, list(served))).encode()
    files["models.json"] = json.dumps(models_json(_Listing(served, default))).encode()
    from ..files.latent_map import pad_picture

    for name, entry in served.items():
        files[f"models/{name}.safetensors"] = entry.weights
        files[f"models/{name}.browser.json"] = entry.spec
        progress(f"drawing the map of {name}…")
        files[f"map/{name}.png"] = pad_picture(entry.model)
    version = hashlib.sha256(b"".join(hashlib.sha256(files[k]).digest() for k in sorted(files))).hexdigest()[:16]
    worker = (HERE / "static" / "sw.js").read_text()
    files["sw.js"] = worker.replace('const VERSION = "dev";', f'const VERSION = "{version}";', 1).encode()
    site = {"format": "latent-snare-site", "version": version, "files": sorted(k for k in files if k != "sw.js")}
    files[MARKER] = json.dumps(site, indent=1).encode()
    _remove(outdir, earlier)  # only now: a site that fails to build leaves the earlier one whole
    for relative, body in files.items():
        path = outdir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    site["bytes"] = sum(len(body) for body in files.values())
    return site


class _Listing:
    """What models_json reads from a Snares: the served models and the default's name."""

    def __init__(self, served: dict[str, Served], default: str):
        self.served, self.default = served, default


def _static_page(html: str) -> str:
    """serve's page, marked as the static site, with every URL relative (a site may live in a
    sub-folder of its host)."""
    if "/static/" not in html or "<head>" not in html:
        raise RuntimeError("the page's HTML no longer has the shape the site writer expects")
    return html.replace("<head>", f"<head>\n{SITE_META}", 1).replace('"/static/', '"static/')


def _earlier_site(outdir: Path) -> list[str]:
    """The files of the earlier site in `outdir` (none for a new or empty folder); UserError for
    a folder that holds anything else."""
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"{outdir}: not a folder")
    if not outdir.parent.is_dir():
        raise UserError(f"{outdir}: no such folder {outdir.parent} (site writes into an existing folder)")
    if not outdir.is_dir() or not any(outdir.iterdir()):
        return []
    try:
        return [*json.loads((outdir / MARKER).read_text())["files"], "sw.js", MARKER]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{outdir}: not empty and not a Latent Snare site; give a new or empty folder") from None


def _remove(outdir: Path, files: list[str]) -> None:
    """Remove an earlier site's own files (only those its site.json listed, inside `outdir`)."""
    outdir.mkdir(exist_ok=True)
    for relative in files:
        path = (outdir / relative).resolve()
        if path.is_file() and path.is_relative_to(outdir.resolve()):
            path.unlink()
