# The two README commands: `make play` (set up, then run the instrument) and `make test`.
# Both install what they need on a fresh Debian/Ubuntu machine; sudo is used when not root.

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv
PY := $(VENV)/bin/python
APT_PLAY := libportaudio2 libsndfile1
APT_TEST := $(APT_PLAY) jackd2 chromium
# The corpus test renders a soundfont drum through FluidSynth. No recommends: fluidsynth
# recommends fluid-soundfont-gm, which is reserved for evaluation outside the project.
APT_TEST_NO_RECOMMENDS := fluidsynth timgm6mb-soundfont
# torch first and pinned: a bare or open-ended torch requirement pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: play test setup-play setup-test clean

play: setup-play
	$(VENV)/bin/latent-snare run

test: setup-test
	$(PY) -m pytest -q

setup-play:
	$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PLAY)
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e .

setup-test:
	$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_TEST)
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_TEST_NO_RECOMMENDS)
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[train,test]"

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
