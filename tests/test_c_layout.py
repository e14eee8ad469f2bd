"""What C and Python share has one source, rt/structs.py: the committed header is what
rt/header.py writes from it, and the built library lays every field out under the same name at
the same offset (rt/clib.py refuses one that does not)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from instrument.core.events import KINDS
from instrument.rt import clib, header
from instrument.rt.structs import CONSTANTS, SHARED_STRUCTS, c_name

HEADER = clib.__file__.replace("clib.py", "layout.h")
MIXER_C = clib.__file__.replace("clib.py", "mixer.c")


def test_the_committed_header_is_the_generated_one():
    with open(HEADER) as f:
        assert f.read() == header.header(), "run: python -m instrument.rt.header > instrument/rt/layout.h"


def test_the_header_names_every_kind_constant_and_field():
    text = header.header()
    assert all(f"KIND_{c_name(kind).upper()}" in text for kind in KINDS)
    assert all(f"#define {name} {value}" in text for name, value in CONSTANTS.items())
    assert all(f"X({c_name(struct)}, {name})" in text for struct in SHARED_STRUCTS for name, *_ in struct._fields_)


@pytest.mark.skipif(clib.available() is not None, reason=str(clib.available()))
def test_the_built_library_lays_out_every_field_by_name_and_offset_as_python_does():
    assert clib.c_fields(clib.load()) == clib.python_fields()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_a_library_built_with_two_fields_swapped_is_told_apart(tmp_path):
    """Two int64 stats fields swapped in C: the sizes agree, the names at each offset do not."""
    swapped = header.header().replace(
        "    int64_t notes;\n    int64_t stolen;", "    int64_t stolen;\n    int64_t notes;"
    )
    assert swapped != header.header()
    (tmp_path / "layout.h").write_text(swapped)
    shutil.copy(MIXER_C, tmp_path / "mixer.c")
    library = tmp_path / "mixer.so"
    subprocess.run(
        ["gcc", "-std=c11", "-shared", "-fPIC", "-o", str(library), str(tmp_path / "mixer.c"), "-lm"], check=True
    )
    lib = ctypes.CDLL(str(library))
    clib.declare(lib)
    ours, theirs = dict(clib.python_fields()), dict(clib.c_fields(lib))  # the same names, other offsets
    assert theirs["shared_stats.notes"] != ours["shared_stats.notes"]
    assert clib.c_fields(lib) != clib.python_fields()
