# The two README commands: `make play` (set up, then run the instrument) and `make test`.
# Both install what they need on a fresh Debian/Ubuntu machine (sudo is used when not root), once:
# a stamp in .venv records each set-up, redone only when pyproject.toml or this file changes.
# After that, `make play` only launches: no network, no sudo.

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv
PY := $(VENV)/bin/python
# gcc and libc6-dev: pip builds the audio cycle, rt/mixer.c, into a small shared library.
APT_PLAY := python3-venv libportaudio2 libsndfile1 gcc libc6-dev
# The PipeWire tests run a headless server of their own (tests/pipewire.py): a session bus,
# pipewire, wireplumber and a null sink, reached through pw-jack and pipewire-alsa.
APT_PIPEWIRE := pipewire pipewire-jack pipewire-alsa wireplumber pipewire-bin dbus
APT_TEST := $(APT_PLAY) jackd2 chromium $(APT_PIPEWIRE)
# The corpus test renders a soundfont drum through FluidSynth. No recommends: fluidsynth
# recommends fluid-soundfont-gm, which is reserved for evaluation outside the project.
APT_TEST_NO_RECOMMENDS := fluidsynth timgm6mb-soundfont
# torch first, pinned, from PyTorch's CPU-only index (about 190 MB to download, 0.75 GB installed):
# the default index's build of the same version pulls several GB of CUDA libraries. Where the CPU
# index can't be reached (a mirror-only network), the default index is the fallback.
TORCH := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PLAY_STAMP := $(VENV)/.setup-play
TEST_STAMP := $(VENV)/.setup-test
TRAIN_STAMP := $(VENV)/.setup-train

# apt-get only when a package is missing ("ii" in dpkg's status): no `apt-get update`, no sudo prompt otherwise.
# Recipes are not echoed (@): a first run shows one plain line per step, then what that step prints.
apt = [ "$$(dpkg-query -W -f='$${db:Status-Abbrev}\n' $(1) 2>/dev/null | grep -c '^ii')" = "$(words $(1))" ] || { echo "installing system packages ($(1))..."; $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) $(1); }
say = echo "latent-snare setup: $(1)"

.PHONY: play test screenshots setup-play setup-test setup-train clean

# On a PipeWire desktop (its socket in $XDG_RUNTIME_DIR) pw-jack hands the instrument PipeWire's
# JACK, where each note sounds at its exact frame; without pw-jack it says what to install.
play: $(PLAY_STAMP)
	@if [ -S "$${XDG_RUNTIME_DIR:-/nonexistent}/pipewire-0" ] && command -v pw-jack >/dev/null; then \
		echo "latent-snare: PipeWire runs here: playing through its JACK (pw-jack latent-snare run)"; \
		exec pw-jack $(VENV)/bin/latent-snare run; \
		fi; exec $(VENV)/bin/latent-snare run

test: $(TEST_STAMP)
	@$(PY) -m pytest -q

# The README's pictures of both pages (docs/page-*.jpg), taken in Chromium from the running apps.
screenshots: $(TEST_STAMP)
	@$(PY) -m scripts.screenshots

setup-play: $(PLAY_STAMP)
setup-train: $(TRAIN_STAMP)
setup-test: $(TEST_STAMP)

$(VENV)/.created:
	@$(call apt,python3-venv)
	@[ -x $(PY) ] || { $(call say,making a Python environment in $(VENV)...); python3 -m venv $(VENV); }
	@touch $@

$(PLAY_STAMP): pyproject.toml Makefile $(VENV)/.created
	@$(call apt,$(APT_PLAY))
	@$(call say,setting up Python packages (about 20 s, once)...)
	@$(PY) -m pip install -q -e .
	@touch $@

$(TRAIN_STAMP): pyproject.toml Makefile $(PLAY_STAMP)
	@$(call say,installing PyTorch for the CPU (about 190 MB to download, once)...)
	@$(PY) -m pip install -q --retries 1 --timeout 20 --index-url $(TORCH_CPU_INDEX) $(TORCH) \
		|| { echo "PyTorch's CPU index can't be reached; installing $(TORCH) from the default index"; $(PY) -m pip install -q $(TORCH); }
	@$(call say,setting up the training packages (once)...)
	@$(PY) -m pip install -q -e ".[train]"
	@touch $@

$(TEST_STAMP): pyproject.toml Makefile $(TRAIN_STAMP)
	@$(call apt,$(APT_TEST))
	@$(call apt,$(APT_TEST_NO_RECOMMENDS),--no-install-recommends)
	@$(call say,setting up the test packages (once)...)
	@$(PY) -m pip install -q -e ".[train,test]"
	@touch $@

clean:
	@$(call say,removing $(VENV) and what the tests and the build left)
	@rm -rf $(VENV) .pytest_cache test-artifacts instrument/rt/_mixer*.so
