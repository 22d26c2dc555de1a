"""The radiometric mapping: units to dB and back, the fitted mapping, its tails and its inverse."""

import numpy as np
import pytest

from sar_codec.errors import InputError
from sar_codec.radiometry import (
    TAIL_COMPRESSION,
    DbHistogram,
    Mapping,
    check_units,
    fit_mapping,
    from_db,
    mapping_from_stats,
    to_db,
)


@pytest.mark.parametrize(
    ("units", "values", "dtype"),
    [
        ("amplitude", np.array([1, 10, 500, 65535], dtype="uint16"), "uint16"),
        ("power", np.array([1e-4, 0.01, 1.0, 300.0], dtype="float32"), "float32"),
        ("db", np.array([-35.0, -12.5, 0.0, 24.0], dtype="float32"), "float32"),
    ],
)
def test_units_round_trip(units, values, dtype):
    back = from_db(to_db(values, units), units, dtype)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_allclose(back.astype(float), values.astype(float), rtol=1e-6)


def test_amplitude_decibels_and_floor():
    assert to_db(np.array([10.0]), "amplitude")[0] == pytest.approx(20.0)
    assert to_db(np.array([10.0]), "power")[0] == pytest.approx(10.0)
    assert to_db(np.array([0.0]), "power")[0] == pytest.approx(-100.0)


def test_integer_output_never_becomes_nodata_zero():
    assert from_db(np.array([-80.0]), "amplitude", "uint16")[0] == 1


def test_mapping_keeps_extremes_and_inverts():
    rng = np.random.default_rng(0)
    db = rng.normal(-12, 3, 100_000)
    db[:10] = 35.0  # bright scatterers far above 0 dB
    db[10:20] = -45.0  # very dark water
    m = fit_mapping(db)
    norm = m.forward(db)
    assert norm.min() == 0.0 and norm.max() == 1.0
    assert m.forward(np.array([35.0]))[0] == 1.0 and m.forward(np.array([34.0]))[0] < 1.0  # not clipped
    np.testing.assert_allclose(m.inverse(norm), db, atol=1e-9)


def test_tails_are_compressed_not_clipped():
    m = mapping_from_stats(-20.0, 0.0, -40.0, 40.0)
    core = (m.forward(np.array([0.0])) - m.forward(np.array([-20.0])))[0] / 20.0
    tail = (m.forward(np.array([40.0])) - m.forward(np.array([0.0])))[0] / 40.0
    assert core / tail == pytest.approx(TAIL_COMPRESSION)


def test_histogram_matches_in_memory_fit():
    rng = np.random.default_rng(1)
    db = rng.normal(-10, 4, 200_000)
    h = DbHistogram()
    for part in np.array_split(db, 7):
        h.add(part)
    a, b = h.mapping(), fit_mapping(db)
    np.testing.assert_allclose(a.knots_db, b.knots_db, atol=0.02)
    np.testing.assert_allclose(a.knots_norm, b.knots_norm, atol=1e-3)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("units", ["amplitude", "power", "db"])
def test_small_integers_go_through_a_table_with_the_same_results(dtype, units):
    """8- and 16-bit inputs (GRD DN) are looked up, not computed per sample: the same float64 dB (and the same
    histogram), for strided views too, 0 and negative values going to the floor."""
    info = np.iinfo(dtype)
    raw = np.random.default_rng(2).integers(info.min, info.max, (3, 200, 300), endpoint=True).astype(dtype)
    raw[0, 0, :4] = [0, 1, info.max, info.min]
    computed = to_db.__wrapped__(raw, units)
    np.testing.assert_array_equal(to_db(raw, units), computed)
    np.testing.assert_array_equal(to_db(raw[:, ::3, 1::2], units), computed[:, ::3, 1::2])
    valid = raw > 3
    by_value, by_sample = DbHistogram(), DbHistogram()
    by_value.add_samples(raw[valid], units)
    by_sample.add(computed[valid])
    np.testing.assert_array_equal(by_value.counts, by_sample.counts)
    assert (by_value.vmin, by_value.vmax) == (by_sample.vmin, by_sample.vmax)
    assert by_value.mapping() == by_sample.mapping()


def test_mapping_json_round_trip_and_validation():
    m = mapping_from_stats(-20.0, 0.0, -30.0, 10.0)
    assert Mapping.from_json(m.to_json()) == m
    with pytest.raises(ValueError):
        Mapping.from_json({"knots_db": [0.0, -1.0], "knots_norm": [0.0, 1.0]})


def test_empty_and_bad_units_are_input_errors():
    with pytest.raises(InputError):
        fit_mapping(np.array([np.nan, np.nan]))
    with pytest.raises(InputError):
        check_units("kelvin")
