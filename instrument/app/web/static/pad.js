// What both pages draw on and under the pad, for musicians: the model's landmarks (where it puts
// the real snares it was trained on) as faint dots, the nearest one's name under the point, and
// the snare's character in words. Loaded before app.js (the instrument's page) and serve.js (the
// web application's), which call it with their own state.
"use strict";

const Pad = (() => {
  const CC_MAX = 127;
  // The knob map is built so that x follows brightness and y the decay's length (model/knobs.py):
  // thirds of each knob's travel read as words.
  const X_WORDS = ["dark", "mellow", "bright"];
  const Y_WORDS = ["short", "medium decay", "long"];
  const third = (cc) => Math.min(2, Math.floor((cc / (CC_MAX + 1)) * 3));

  let landmarks = [];

  function setLandmarks(list) {
    landmarks = Array.isArray(list) ? list : [];
    const layer = document.getElementById("landmarks");
    layer.replaceChildren(...landmarks.map((mark) => {
      const dot = document.createElement("span");
      dot.className = "landmark";
      dot.style.left = `${(mark.cc[0] / CC_MAX) * 100}%`;
      dot.style.top = `${(1 - mark.cc[1] / CC_MAX) * 100}%`;
      return dot;
    }));
  }

  function nearest(x, y) {
    let best = null;
    let bestD = Infinity;
    for (const mark of landmarks) {
      const d = (mark.cc[0] - x) ** 2 + (mark.cc[1] - y) ** 2;
      if (d < bestD) { best = mark; bestD = d; }
    }
    return best;
  }

  const character = (x, y) => `${X_WORDS[third(x)]}, ${Y_WORDS[third(y)]}`;

  /** Show the point (x, y), in CC, as words: its character, and the nearest real snare under the
   * point on the pad and in the readout. */
  function describe(x, y) {
    document.getElementById("r-character").textContent = character(x, y);
    const mark = nearest(x, y);
    const name = mark ? `${mark.kit} · ${mark.instrument}` : "";
    document.getElementById("r-nearest").textContent = name || "–";
    const label = document.getElementById("landmark-name");
    label.textContent = mark ? `near ${mark.kit}` : "";
    label.title = name;
    // Under the point, kept inside the pad: its anchor slides from its left end (x = 0) to its
    // right end (x = 127), and it goes above the point near the bottom edge.
    label.style.left = `${(x / CC_MAX) * 100}%`;
    label.style.top = `${(1 - y / CC_MAX) * 100}%`;
    label.style.transform = `translate(${-(x / CC_MAX) * 100}%, ${y < 16 ? "calc(-100% - 16px)" : "16px"})`;
  }

  return { setLandmarks, describe, character, nearest };
})();
