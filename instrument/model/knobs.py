"""Knob mapping: MIDI CC 0..127 on two axes -> a point in the 2-D latent plane.

The mapping is fitted once per model from the training snares' encodings and
stored with the model. It rotates the plane so the x knob follows brightness
(spectral centroid) and the y knob follows decay, then stretches the
percentile box the snares occupy over the whole knob travel, so every knob
position lands on snares rather than on empty latent space.

    uv     = axes @ latent            (axes: orthonormal 2x2, rows = knob directions)
    (uv - lo) / (hi - lo) = warp(cc / 127)

`warp`, when a model has one, is a monotone piecewise-linear curve per knob
(identity without): it spaces the knob's travel so that equal turns make
about equally large changes in sound, instead of equal steps in latent space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A knob's travel: the range of one MIDI CC value. The one home of these numbers.
CC_MIN, CC_MAX = 0, 127
CC_CENTRE = 64  # where the knobs start, before any moves
BOX_PERCENTILES = (2.5, 97.5)
MIN_SPAN = 1e-6  # a collapsed latent (e.g. dead relu) still gets an invertible map


@dataclass(frozen=True)
class KnobMap:
    axes: np.ndarray  # (2, 2) rows are the x-knob and y-knob directions in latent space
    lo: np.ndarray  # (2,) uv at CC 0
    hi: np.ndarray  # (2,) uv at CC 127
    warp: np.ndarray | None = None  # (2, K): box fraction reached at knob fraction k / (K - 1); None: linear

    def _knots(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.warp.shape[1])

    def cc_to_latent(self, cc_x: float, cc_y: float) -> np.ndarray:
        t = np.clip(np.array([cc_x, cc_y], dtype=np.float64) / CC_MAX, 0.0, 1.0)
        if self.warp is not None:
            t = np.array([np.interp(t[i], self._knots(), self.warp[i]) for i in range(2)])
        uv = self.lo + t * (self.hi - self.lo)
        return (self.axes.T @ uv).astype(np.float32)  # axes is orthonormal: its inverse is its transpose

    def cc_to_latents(self, cc) -> np.ndarray:
        """(N, 2) knob positions -> (N, 2): `cc_to_latent` of each, at once."""
        t = np.clip(np.asarray(cc, dtype=np.float64).reshape(-1, 2) / CC_MAX, 0.0, 1.0)
        if self.warp is not None:
            t = np.stack([np.interp(t[:, i], self._knots(), self.warp[i]) for i in range(2)], axis=1)
        uv = self.lo + t * (self.hi - self.lo)
        return (uv @ self.axes).astype(np.float32)

    def latent_to_cc(self, latent) -> tuple[float, float]:
        """Knob positions (0..127, clipped, unrounded) that reach `latent`, or its nearest reachable point."""
        uv = self.axes @ np.asarray(latent, dtype=np.float64)
        t = np.clip((uv - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        if self.warp is not None:
            t = np.array([np.interp(t[i], self.warp[i], self._knots()) for i in range(2)])
        return float(t[0] * CC_MAX), float(t[1] * CC_MAX)

    def latent_to_cc_int(self, latent) -> tuple[int, int]:
        """The whole knob positions (what a controller sends) nearest to `latent`."""
        cc_x, cc_y = self.latent_to_cc(latent)
        return round(cc_x), round(cc_y)

    def to_dict(self) -> dict:
        data = {"axes": self.axes.tolist(), "lo": self.lo.tolist(), "hi": self.hi.tolist()}
        return data if self.warp is None else {**data, "warp": self.warp.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> KnobMap:
        axes = np.asarray(data["axes"], dtype=np.float64)
        lo, hi = np.asarray(data["lo"], dtype=np.float64), np.asarray(data["hi"], dtype=np.float64)
        if axes.shape != (2, 2) or lo.shape != (2,) or hi.shape != (2,):
            raise ValueError("knobs.axes must be 2x2 and knobs.lo, knobs.hi must have 2 numbers each")
        if not (np.all(np.isfinite(axes)) and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("knobs values must be finite")
        if not np.allclose(axes @ axes.T, np.eye(2), atol=1e-6):
            raise ValueError("knobs.axes must be orthonormal")
        if np.any(np.abs(hi - lo) < MIN_SPAN / 2):
            raise ValueError("knobs.lo and knobs.hi must differ on both axes")
        warp = data.get("warp")
        if warp is not None:
            warp = np.asarray(warp, dtype=np.float64)
            if (
                warp.ndim != 2
                or warp.shape[0] != 2
                or warp.shape[1] < 2
                or not np.all(np.isfinite(warp))
                or np.any(np.diff(warp, axis=1) <= 0)
                or not np.allclose(warp[:, [0, -1]], [[0, 1], [0, 1]])
            ):
                raise ValueError("knobs.warp must be two increasing lists from 0 to 1")
        return cls(axes, lo, hi, warp)


def fit_knob_map(latents: np.ndarray, brightness: np.ndarray, decay: np.ndarray) -> KnobMap:
    """Fit the mapping to training encodings (N, 2) and their descriptors (N,)."""
    z = latents.astype(np.float64)
    centred = z - z.mean(axis=0)
    # x knob: the latent direction along which brightness grows fastest (least squares).
    direction, *_ = np.linalg.lstsq(centred, brightness - brightness.mean(), rcond=None)
    if not np.all(np.isfinite(direction)) or np.linalg.norm(direction) < 1e-12:
        # No brightness trend (or a collapsed latent): fall back to the widest spread.
        direction = np.linalg.svd(centred + 1e-12, full_matrices=False)[2][0]
    x_axis = direction / np.linalg.norm(direction)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    if np.dot(centred @ y_axis, decay - decay.mean()) < 0:  # longer decay upwards
        y_axis = -y_axis
    axes = np.stack([x_axis, y_axis])
    uv = z @ axes.T
    lo, hi = np.percentile(uv, BOX_PERCENTILES, axis=0)
    hi = np.maximum(hi, lo + MIN_SPAN)
    return KnobMap(axes, lo, hi)
