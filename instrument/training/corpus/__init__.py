"""The snare corpus: every free snare-family one-shot that Debian's packages ship.

`latent-snare corpus` (`build_corpus`) downloads the packages with
`apt-get download`, unpacks them with `dpkg -x` (nothing is installed), and
gathers snares, rimshots, side sticks and claps (never rolls):

- Hydrogen drum kits (hydrogen-drumkits, -effects, hydrogen-data), picked by
  instrument names in drumkit.xml;
- sample folders picked by file name (lmms-common, chuck-data, exadrums,
  scratch), FreePats' GUS drum patches and STK's snare raw wave;
- the drum presets (bank 128) of four soundfonts (GeneralUser GS 1.47 from
  minuet-data, TimGM6mb, csound's sf_GMbank, denemo's A320U) on GM notes
  37-40 at velocities 127, 80 and 40, rendered through the FluidSynth CLI
  (`apt-get install --no-install-recommends fluidsynth`), see soundfont.py.

Every hit is written as a mono 24-bit WAV to `<out>/<unit>/<name>.wav`, after
near-duplicates across and within packages are dropped (dedupe.py). The
manifest (manifest.py) gives each file its package, unit, instrument,
licence (drumkit.xml, else the package's debian/copyright), split and
sha256. Whole units (kits, presets, sample folders) are the split unit.

Reserved evaluation sources (FluidR3 and its relatives, AVL drums, Sonic Pi,
FoxDot) are refused wherever a package, path or soundfont name is seen
(debian.check_allowed).
"""

from .build import build_corpus
from .debian import RESERVED_PACKAGES, ReservedSourceError, check_allowed
from .manifest import HOLDOUT_KITS, MANIFEST_FIELDS, CorpusFile, corpus_hash, read_manifest, sha256_of, write_manifest

__all__ = [
    "build_corpus",
    "check_allowed",
    "RESERVED_PACKAGES",
    "ReservedSourceError",
    "HOLDOUT_KITS",
    "MANIFEST_FIELDS",
    "CorpusFile",
    "corpus_hash",
    "read_manifest",
    "sha256_of",
    "write_manifest",
]
