"""What the two pages (the instrument's and the web application's) must both show a musician,
measured in Chromium: the model's landmarks on the pad, the words under and beside the point, the
engine numbers folded away, a corner point's whole ring, and a layout that uses a wide window."""

from __future__ import annotations

import numpy as np

from instrument.files.landmarks import landmarks_of
from instrument.model.file import load_model


def stored_landmarks(model_name: str) -> list[dict]:
    landmarks = landmarks_of(load_model(model_name))
    assert len(landmarks) >= 20, f"{model_name} ships {len(landmarks)} landmarks (scripts/landmarks.py writes them)"
    return landmarks


def box_of(page, selector: str, index: int = 0) -> dict:
    box = page.locator(selector).nth(index).bounding_box()
    assert box is not None, f"{selector} #{index} is not drawn"
    return box


def centre_in_field(page, selector: str, index: int = 0) -> tuple[float, float]:
    """The centre of an element on the pad, in knob positions (x right, y up)."""
    field, box = box_of(page, "#field"), box_of(page, selector, index)
    fx = (box["x"] + box["width"] / 2 - field["x"]) / field["width"]
    fy = (box["y"] + box["height"] / 2 - field["y"]) / field["height"]
    return fx * 127, (1 - fy) * 127


def assert_landmarks_drawn(page, model_name: str) -> None:
    """One faint dot per stored landmark, each where the model puts that snare, none in the way of
    a drag."""
    landmarks = stored_landmarks(model_name)
    assert page.locator(".landmark").count() == len(landmarks)
    for i in (0, len(landmarks) // 2, len(landmarks) - 1):
        got = centre_in_field(page, ".landmark", i)
        assert np.allclose(got, landmarks[i]["cc"], atol=0.6), f"dot {i} at CC {got}, stored at {landmarks[i]['cc']}"
    assert page.evaluate("getComputedStyle(document.getElementById('landmarks')).pointerEvents") == "none"
    opacity = page.evaluate(
        "getComputedStyle(document.querySelector('.landmark')).backgroundColor.match(/[\\d.]+/g).map(Number)"
    )
    assert len(opacity) == 4 and opacity[3] <= 0.6, f"the dots are not faint: {opacity}"


def assert_nearest_named(page, model_name: str, x: int, y: int) -> None:
    """The kit of the landmark nearest the point, under the point and in the readout."""
    landmarks = stored_landmarks(model_name)
    cc = np.array([mark["cc"] for mark in landmarks])
    mark = landmarks[int(np.argmin(np.hypot(cc[:, 0] - x, cc[:, 1] - y)))]
    assert page.locator("#landmark-name").inner_text() == f"near {mark['kit']}"
    assert page.locator("#r-nearest").inner_text() == f"{mark['kit']} · {mark['instrument']}"
    label, dot, pad = box_of(page, "#landmark-name"), box_of(page, "#dot"), box_of(page, "#pad")
    assert abs(label["y"] - (dot["y"] + dot["height"])) < 12 or label["y"] + label["height"] <= dot["y"] + 1, (
        "the name is not next to the point"
    )
    assert pad["x"] <= label["x"] and label["x"] + label["width"] <= pad["x"] + pad["width"] + 0.5


def assert_character(page, expected: str) -> None:
    assert page.locator("#r-character").inner_text() == expected


def assert_engine_numbers_folded(page, engine_ids: list[str]) -> None:
    """Knob values and the sound in words are shown; the engine's numbers wait in a closed fold."""
    assert page.locator("#r-cc").is_visible() and page.locator("#r-character").is_visible()
    assert page.evaluate("document.getElementById('debug').tagName") == "DETAILS"
    assert not page.evaluate("document.getElementById('debug').open")
    for engine_id in engine_ids:
        assert page.locator(f"#debug #{engine_id}").count() == 1, f"#{engine_id} is not in the fold"
        assert not page.locator(f"#{engine_id}").is_visible(), f"#{engine_id} shows while the fold is closed"
    page.click("#debug summary")
    assert all(page.locator(f"#{engine_id}").is_visible() for engine_id in engine_ids)
    page.click("#debug summary")


def assert_ring_inside_the_pad(page) -> None:
    """The point's ring (its box, border and all) lies inside the pad's box: nothing of it is cut."""
    pad, dot = box_of(page, "#pad"), box_of(page, "#dot")
    assert pad["x"] - 0.5 <= dot["x"] and dot["x"] + dot["width"] <= pad["x"] + pad["width"] + 0.5, (pad, dot)
    assert pad["y"] - 0.5 <= dot["y"] and dot["y"] + dot["height"] <= pad["y"] + pad["height"] + 0.5, (pad, dot)


def assert_uses_the_width(page) -> None:
    """At 1280 px the pad and the columns beside it reach across most of the window, with no
    empty stretch between them."""
    width = page.evaluate("window.innerWidth")
    pad = box_of(page, "#pad")
    boxes = [pad] + [box_of(page, "main > section", i) for i in range(1, page.locator("main > section").count())]
    row = sorted((b for b in boxes if abs(b["y"] - pad["y"]) < 100), key=lambda b: b["x"])
    left, right = row[0]["x"], max(b["x"] + b["width"] for b in row)
    assert right - left >= 0.9 * width, f"the pad and its neighbours span {left:.0f}..{right:.0f} of {width} px"
    gaps = [b["x"] - (a["x"] + a["width"]) for a, b in zip(row, row[1:])]
    assert max(gaps) <= 48, f"empty stretches of {gaps} px between the columns"


def assert_fits_a_phone(page) -> None:
    """At a phone's width nothing needs a sideways scroll, and the pad fills the width."""
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert box_of(page, "#pad")["width"] >= 0.8 * width


def assert_one_line(page, selector: str, reference: str) -> None:
    """Every `selector` is as high as `reference`, a one-word element of the same style."""
    height = box_of(page, reference)["height"]
    for i in range(page.locator(selector).count()):
        box = box_of(page, selector, i)
        assert box["height"] <= height + 0.5, f"{selector} #{i} is {box['height']} px high, one line is {height}"


def assert_breaks_only_between_parameters(page, selector: str) -> None:
    """Each character's line, by its rectangle: a query parameter (from its ? or & up to the next)
    sits on one line, wherever the link wraps."""
    text, tops = page.evaluate(
        """(selector) => {
        const link = document.querySelector(selector);
        const walker = document.createTreeWalker(link, NodeFilter.SHOW_TEXT);
        let text = "";
        const tops = [];
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.length; i++) {
                const range = document.createRange();
                range.setStart(node, i);
                range.setEnd(node, i + 1);
                const rects = range.getClientRects();
                text += node.data[i];
                tops.push(rects.length ? Math.round(rects[rects.length - 1].top) : null);
            }
        }
        return [text, tops];
    }""",
        selector,
    )
    assert "?" in text and "&" in text, f"the link reads {text!r}"
    assert len({t for t in tops if t is not None}) > 1, "the link does not wrap at this width: nothing measured"
    starts = [i for i, c in enumerate(text) if c in "?&"] + [len(text)]
    for start, end in zip(starts, starts[1:]):
        lines = {t for t in tops[start:end] if t is not None}
        assert len(lines) == 1, f"{text[start:end]!r} is broken over {len(lines)} lines"
