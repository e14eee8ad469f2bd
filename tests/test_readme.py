"""The command reference (docs/commands.md) lists every command and every flag that `--help` shows,
and the README stays a front door that links every moved section."""

import argparse
import re
import subprocess

from instrument.app.cli import build_parser
from instrument.paths import REPO_DIR


def commands_section() -> str:
    return (REPO_DIR / "docs" / "commands.md").read_text()


def visible_options(parser: argparse.ArgumentParser) -> list[str]:
    return [
        a.option_strings[-1]
        for a in parser._actions
        if a.option_strings and a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
    ]


def test_every_flag_of_every_command_is_in_the_commands_tables():
    section = commands_section()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, parser in sub.choices.items():
        # The command's row: the table line that shows `latent-snare NAME`, or a grouped row naming it.
        rows = [line for line in section.splitlines() if re.search(rf"`(latent-snare )?{name}\b", line)]
        if not rows:
            missing.append(name)
            continue
        shared = "--socket" if parser.get_default("func").__name__ == "cmd_remote" else None
        missing += [
            f"{name} {o}"
            for o in visible_options(parser)
            if o != shared and not any(re.search(rf"{re.escape(o)}\b", row) for row in rows)
        ]
    assert "each takes `--socket PATH`" in section  # the remote commands' shared flag, said once
    assert "`latent-snare -v COMMAND`" in section
    assert not missing, f"docs/commands.md lacks: {', '.join(missing)}"


def test_the_readme_is_a_front_door_that_links_every_moved_section():
    readme = (REPO_DIR / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.index("make play") < readme.index("make test") < readme.index("## ")  # the two commands first
    for doc in sorted((REPO_DIR / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README does not link docs/{doc.name}"


def test_make_shows_plain_steps_not_its_recipes():
    """A first `make play` prints one plain line per step: no recipe is echoed, and each slow step says what it does."""
    makefile = (REPO_DIR / "Makefile").read_text()
    recipe_lines = [line for line in makefile.splitlines() if line.startswith("\t") and not line.startswith("\t\t")]
    assert recipe_lines and all(line.startswith("\t@") for line in recipe_lines), [
        line for line in recipe_lines if not line.startswith("\t@")
    ]
    assert "installing system packages" in makefile and "setting up Python packages (about 20 s, once)" in makefile
    dry = subprocess.run(["make", "-n", "play"], cwd=REPO_DIR, capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0 and "latent-snare run" in dry.stdout, dry.stderr
