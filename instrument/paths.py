"""Where the repository's own folders are: the shipped models, the default config, training data."""

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_DIR / "models"
DEFAULT_CONFIG_PATH = REPO_DIR / "config" / "default.yaml"
