"""Store each shipped model's landmarks (where it puts its training snares) in models/NAME.json.

    .venv/bin/python scripts/landmarks.py [--data data/corpus] [NAME ...]

The pages draw them as faint dots on the pad and name the nearest under the point. Run it after
shipping a model trained on another corpus (the training's ship step does it for the models it
ships). Encoding takes a few seconds a snare: a few minutes a model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from instrument.files.landmarks import corpus_landmarks, write_landmarks  # noqa: E402
from instrument.model.file import available_models, load_model  # noqa: E402
from instrument.training.dataset import load_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="models in models/ (default: all)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "corpus", help="the training corpus folder")
    args = parser.parse_args(argv)
    for name in args.names or available_models():
        model = load_model(name)
        data = load_dataset(args.data, model.sample_rate, model.n_samples)
        trained_on = model.meta.get("corpus", {}).get("sha256")
        if trained_on and trained_on != data.corpus_hash:
            sys.exit(f"{model.name} was trained on another corpus than {args.data} (its sha256 differs); not written")
        print(f"{model.name}: encoding the training drums of {args.data}…", flush=True)
        landmarks = corpus_landmarks(
            model, data.train, lambda done, total: print(f"  {done}/{total}", end="\r", flush=True)
        )
        write_landmarks(model.path.with_suffix(".json"), landmarks)
        print(f"{model.name}: {len(landmarks)} landmarks written to {model.path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
