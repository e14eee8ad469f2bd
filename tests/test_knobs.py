import numpy as np
import pytest

from instrument.model.knobs import KnobMap, fit_knob_map


def cloud(seed=0):
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(200, 2)) * [3.0, 0.5] + [1.0, -2.0]
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    latents = latents @ rot.T
    brightness = latents @ np.array([2.0, 1.0]) + rng.normal(scale=0.1, size=200)
    decay = latents @ np.array([-1.0, 2.0]) + rng.normal(scale=0.1, size=200)
    return latents, brightness, decay


def test_x_knob_follows_brightness_and_y_knob_follows_decay():
    latents, brightness, decay = cloud()
    knobs = fit_knob_map(latents, brightness, decay)
    cc = np.array([knobs.latent_to_cc(z) for z in latents])
    assert np.corrcoef(cc[:, 0], brightness)[0, 1] > 0.9
    assert np.corrcoef(cc[:, 1], decay)[0, 1] > 0.9  # the same bar for both knobs


def test_knob_travel_covers_the_occupied_box():
    latents, brightness, decay = cloud()
    knobs = fit_knob_map(latents, brightness, decay)
    cc = np.array([knobs.latent_to_cc(z) for z in latents])
    inside = np.mean((cc > 0) & (cc < 127), axis=0)
    assert np.all(inside > 0.9)  # 95 % of snares inside the box on each axis
    for corner in [(0, 0), (127, 127)]:
        assert np.all(np.isfinite(knobs.cc_to_latent(*corner)))


@pytest.mark.parametrize("cc", [(0, 0), (127, 0), (31.5, 99), (64, 64), (127, 127)])
def test_cc_latent_round_trip(cc):
    knobs = fit_knob_map(*cloud(1))
    assert knobs.latent_to_cc(knobs.cc_to_latent(*cc)) == pytest.approx(cc, abs=1e-3)


def test_many_knob_positions_map_as_one_does():
    linear = fit_knob_map(*cloud(1))
    warped = KnobMap(linear.axes, linear.lo, linear.hi, np.array([[0, 0.2, 1], [0, 0.7, 1]]))
    cc = np.random.default_rng(0).uniform(-10, 140, (50, 2))
    for knobs in (linear, warped):
        one_by_one = np.stack([knobs.cc_to_latent(*c) for c in cc])
        np.testing.assert_allclose(knobs.cc_to_latents(cc), one_by_one, rtol=1e-6, atol=1e-6)


def test_collapsed_latent_still_gives_a_usable_map():
    latents = np.zeros((20, 2))  # a dead-relu encoder
    knobs = fit_knob_map(latents, np.arange(20.0), np.arange(20.0))
    assert np.all(np.isfinite(knobs.cc_to_latent(127, 0)))
    KnobMap.from_dict(knobs.to_dict())


def test_stored_mapping_is_validated():
    good = fit_knob_map(*cloud()).to_dict()
    with pytest.raises(ValueError, match="orthonormal"):
        KnobMap.from_dict({**good, "axes": [[2, 0], [0, 1]]})
    with pytest.raises(ValueError, match="finite"):
        KnobMap.from_dict({**good, "lo": [float("nan"), 0]})


def test_a_warped_map_is_invertible_and_validated():
    warp = np.array([[0.0, 0.5, 0.8, 1.0], [0.0, 0.1, 0.3, 1.0]])
    knobs = KnobMap(np.eye(2), np.array([-1.0, -2.0]), np.array([1.0, 2.0]), warp)
    for cc in [(0.0, 0.0), (42.3, 99.0), (127.0, 127.0), (10.0, 120.0)]:
        assert np.allclose(knobs.latent_to_cc(knobs.cc_to_latent(*cc)), cc, atol=1e-3)
    # A third of the x knob's travel covers half the box: the warp is applied, not ignored.
    assert np.isclose(knobs.cc_to_latent(127 / 3, 0)[0], 0.0, atol=1e-5)
    assert KnobMap.from_dict(knobs.to_dict()).warp.tolist() == warp.tolist()
    with pytest.raises(ValueError, match="warp"):
        KnobMap.from_dict({**knobs.to_dict(), "warp": [[0.0, 0.6, 0.5, 1.0], [0.0, 0.1, 0.3, 1.0]]})
