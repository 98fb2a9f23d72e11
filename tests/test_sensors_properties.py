"""Property-based tests of the one band resolver (``Sensor.band_index`` and friends).

For every catalog sensor, any band, and any of the spellings users bring
(identifier, STAC common name, alias; any letter case, any zero padding of the
band number, surrounding blanks), the resolver finds that band and only that
band; a name shared by several bands is refused; a name of no band is refused.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geofm.errors import UnknownNameError
from geofm.sensors import band_name_key, get_sensor, list_sensors, resolve_wavelengths

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
SENSORS = list_sensors()
_NUMBERED = re.compile(r"([A-Za-z_]*?)(\d+)([A-Za-z]?)")


def _respell(name: str, case: list[bool], padding: int, blanks: bool) -> str:
    """``name`` with each letter's case flipped where ``case`` says and its number re-padded."""
    match = _NUMBERED.fullmatch(name)
    if match is not None:
        name = f"{match[1]}{int(match[2]):0{padding + len(str(int(match[2])))}d}{match[3]}"
    flipped = "".join(
        (c.swapcase() if case[i % len(case)] else c) if c.isalpha() else c
        for i, c in enumerate(name)
    )
    return f" {flipped} " if blanks else flipped


def _owners(sensor_name: str, name: str) -> set[int]:
    """Bands of the sensor that answer to ``name`` (exact identifier first, as the resolver)."""
    sensor = get_sensor(sensor_name)
    if name in sensor.bands:
        return {sensor.bands.index(name)}
    key = band_name_key(name)
    return {
        i
        for i in range(sensor.num_bands)
        if any(band_name_key(n) == key for n in sensor.names_of(i))
    }


@PROPERTY
@given(
    sensor_name=st.sampled_from(SENSORS),
    data=st.data(),
    case=st.lists(st.booleans(), min_size=1, max_size=6),
    padding=st.integers(0, 2),
    blanks=st.booleans(),
)
def test_every_spelling_of_every_band_name_resolves_to_its_band(
    sensor_name: str,
    data: st.DataObject,
    case: list[bool],
    padding: int,
    blanks: bool,
) -> None:
    sensor = get_sensor(sensor_name)
    index = data.draw(st.integers(0, sensor.num_bands - 1), label="band")
    name = data.draw(st.sampled_from(sensor.names_of(index)), label="name")
    spelled = _respell(name, case, padding, blanks)
    owners = _owners(sensor_name, spelled)
    assert index in owners  # the respelling never loses the band
    if len(owners) == 1:
        assert sensor.band_index(spelled) == index
        assert sensor.canonical([spelled]) == (sensor.bands[index],)
        assert sensor.select([spelled]).wavelengths == (sensor.wavelengths[index],)
    else:  # a shared name (Sentinel-2 "rededge"): refused, naming every band it could be
        with pytest.raises(UnknownNameError, match="ambiguous") as info:
            sensor.band_index(spelled)
        assert all(sensor.bands[i] in str(info.value) for i in owners)


@PROPERTY
@given(sensor_name=st.sampled_from(SENSORS), data=st.data())
def test_selecting_any_band_order_keeps_names_wavelengths_and_statistics_aligned(
    sensor_name: str, data: st.DataObject
) -> None:
    sensor = get_sensor(sensor_name)
    order = data.draw(
        st.lists(st.integers(0, sensor.num_bands - 1), min_size=1, max_size=8, unique=True),
        label="order",
    )
    names = [sensor.bands[i] for i in order]
    picked = sensor.select(names)
    assert picked.bands == tuple(names)
    assert picked.wavelengths == tuple(sensor.wavelengths[i] for i in order)
    assert resolve_wavelengths(names, sensor=sensor) == picked.wavelengths
    if sensor.mean is not None:
        assert picked.mean == tuple(sensor.mean[i] for i in order)
    if sensor.std is not None:
        assert picked.std == tuple(sensor.std[i] for i in order)


@PROPERTY
@given(
    sensor_name=st.sampled_from(SENSORS),
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABXYZ_0123456789", min_size=1, max_size=10),
)
def test_a_name_no_band_answers_to_is_refused_never_guessed(sensor_name: str, name: str) -> None:
    assume(not _owners(sensor_name, name))
    with pytest.raises(UnknownNameError, match="is not a band of sensor"):
        get_sensor(sensor_name).band_index(name)


@PROPERTY
@given(name=st.from_regex(r"[A-Za-z_]{0,4}[0-9]{1,3}[A-Za-z]?", fullmatch=True))
def test_the_matching_key_ignores_case_and_zero_padding_only(name: str) -> None:
    key = band_name_key(name)
    assert band_name_key(key) == key  # idempotent
    assert band_name_key(name.upper()) == band_name_key(name.lower()) == key
    match = _NUMBERED.fullmatch(name)
    assert match is not None
    padded = f"{match[1]}00{match[2]}{match[3]}"
    assert band_name_key(padded) == key
    bumped = f"{match[1]}{int(match[2]) + 1}{match[3]}"
    assert band_name_key(bumped) != key  # another number is another band
