"""rho <-> (epsilon, delta), checked against OpenDP's own conversion: never less conservative than it."""

from __future__ import annotations

import opendp.prelude as dp
import pytest

from dpkube.budget.zcdp import ConversionError, epsilon_of, rho_of

dp.enable_features("contrib", "floating-point")

SCALES = (0.5, 1.0, 3.0, 10.0, 37.0, 200.0, 5000.0)
DELTAS = (1e-12, 1e-9, 1e-7, 1e-5, 1e-3, 0.05)
TARGETS = ((1.0, 1e-5), (0.1, 1e-6), (5.0, 1e-3), (10.0, 0.005), (0.01, 1e-9), (3.0, 1e-7))


def gaussian(scale: float) -> dp.Measurement:
    """An OpenDP zCDP measurement: Gaussian noise of `scale` on a number."""
    return dp.m.make_gaussian(dp.atom_domain(T=float), dp.absolute_distance(T=float), scale)


def opendp_epsilon(meas: dp.Measurement, delta: float) -> float:
    """OpenDP's own epsilon of a zCDP measurement at `delta`, at d_in = 1."""
    return dp.c.make_zCDP_to_approxDP(meas).map(1.0).epsilon(delta=delta)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("delta", DELTAS)
def test_the_epsilon_reported_is_never_below_opendps(scale: float, delta: float) -> None:
    meas = gaussian(scale)
    assert epsilon_of(meas.map(1.0), delta) >= opendp_epsilon(meas, delta)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("delta", DELTAS)
def test_the_epsilon_reported_is_opendps_up_to_float_rounding(scale: float, delta: float) -> None:
    meas = gaussian(scale)
    assert epsilon_of(meas.map(1.0), delta) == pytest.approx(opendp_epsilon(meas, delta), rel=1e-8, abs=1e-13)


@pytest.mark.parametrize("epsilon, delta", TARGETS)
def test_the_rho_of_a_target_converts_back_within_the_target_by_opendps_conversion(
        epsilon: float, delta: float) -> None:
    rho = rho_of(epsilon, delta)
    meas = gaussian((1 / (2 * rho)) ** 0.5)
    assert meas.map(1.0) >= rho * (1 - 1e-12)
    assert opendp_epsilon(meas, delta) <= epsilon


@pytest.mark.parametrize("epsilon, delta", TARGETS)
def test_the_rho_of_a_target_is_the_largest_that_fits_it(epsilon: float, delta: float) -> None:
    assert epsilon_of(rho_of(epsilon, delta) * (1 + 1e-6), delta) > epsilon


def test_no_rho_is_no_epsilon() -> None:
    assert epsilon_of(0.0, 1e-5) == 0.0 and rho_of(0.0, 1e-5) == 0.0


@pytest.mark.parametrize("rho, delta", [(-1.0, 1e-5), (0.1, 0.0), (0.1, 1.5), (float("nan"), 1e-5)])
def test_a_rho_or_delta_out_of_range_is_refused(rho: float, delta: float) -> None:
    with pytest.raises(ConversionError):
        epsilon_of(rho, delta)


@pytest.mark.parametrize("epsilon, delta", [(1.0, 0.0), (1.0, 1.0), (-1.0, 1e-5), (float("inf"), 1e-5)])
def test_a_target_with_no_rho_is_refused(epsilon: float, delta: float) -> None:
    with pytest.raises(ConversionError):
        rho_of(epsilon, delta)
