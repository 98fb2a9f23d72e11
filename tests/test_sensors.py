"""Tests of the sensor catalog (geofm.sensors)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import pytest

from geofm.errors import ShapeError, UnknownNameError
from geofm.sensors import (
    Sensor,
    ValueScaling,
    band_name_key,
    get_sensor,
    list_sensors,
    resolve_bands,
    resolve_wavelengths,
)

EXPECTED_SENSORS = {
    "sentinel2_l1c": 13,
    "sentinel2_l2a": 12,
    "ssl4eo_s12_sentinel2_l1c": 13,
    "rgb": 3,
    "landsat89_oli": 9,
    "landsat89_oli_tirs": 11,
    "landsat89_c2l2_sr": 6,
    "enmap_spectral_earth": 202,
    "desis_spectral_earth": 235,
    "eo1_hyperion_spectral_earth": 198,
    "hyperview_spectral_earth": 150,
    "worldview3_spacenet2_ms": 8,
    "worldview3_spacenet2_rgb": 3,
    "naip": 4,
    "bigearthnet_s2_6band": 6,
    "satlas_sentinel2_ms": 9,
    "satlas_sentinel2_rgb": 3,
    "satlas_landsat": 11,
}


def _apply(rule: ValueScaling, raw: list[float]) -> list[float]:
    """Straightforward per-band evaluation of the documented rule."""
    out = []
    for value, offset, divisor in zip(raw, rule.offset, rule.divisor, strict=True):
        scaled = (value - offset) / divisor
        if rule.clip is not None:
            scaled = min(max(scaled, rule.clip[0]), rule.clip[1])
        out.append(scaled)
    return out


def test_catalog_holds_the_issue_sensors() -> None:
    names = set(list_sensors())
    assert set(EXPECTED_SENSORS) <= names
    for name, count in EXPECTED_SENSORS.items():
        assert get_sensor(name).num_bands == count, name


@pytest.mark.parametrize("name", list_sensors())
def test_catalog_entry_is_consistent(name: str) -> None:
    sensor = get_sensor(name)
    n = sensor.num_bands
    assert len(sensor.bands) == len(set(sensor.bands)) == n
    assert len(sensor.wavelengths) == n
    assert all(math.isfinite(w) and 100.0 < w < 20000.0 for w in sensor.wavelengths)
    for per_band in (sensor.bandwidths, sensor.common_names, sensor.mean, sensor.std):
        assert per_band is None or len(per_band) == n
    assert (sensor.mean is None) == (sensor.std is None)
    if sensor.std is not None:
        assert all(s > 0 for s in sensor.std)
    assert sensor.scaling.num_bands == n
    assert sensor.description and sensor.citation


@pytest.mark.parametrize(
    ("name", "first_nm", "last_nm"),
    [
        ("enmap_spectral_earth", 418.24, 2445.53),
        ("eo1_hyperion_spectral_earth", 426.82, 2395.5),
        ("desis_spectral_earth", 401.275, 998.677),
        ("hyperview_spectral_earth", 462.0, 942.0),
    ],
)
def test_hyperspectral_band_tables(name: str, first_nm: float, last_nm: float) -> None:
    sensor = get_sensor(name)
    assert sensor.wavelengths[0] == pytest.approx(first_nm)
    assert sensor.wavelengths[-1] == pytest.approx(last_nm)
    assert sensor.scaling.summary() == "none (raw values)" and sensor.mean is not None


def test_enmap_matches_spectral_earth_facts() -> None:
    enmap = get_sensor("enmap_spectral_earth")
    assert enmap.mean is not None and enmap.std is not None and enmap.bandwidths is not None
    # SOURCES.md 2.5: mu in [813, 3217], sigma in [1096, 1718], raw DN.
    assert min(enmap.mean) == pytest.approx(813.0429, abs=1e-3)
    assert max(enmap.mean) == pytest.approx(3217.1885, abs=1e-3)
    assert min(enmap.std) == pytest.approx(1096.3574, abs=1e-3)
    assert max(enmap.std) == pytest.approx(1718.4722, abs=1e-3)
    assert list(enmap.wavelengths) == sorted(enmap.wavelengths)
    # 202 of the 224 EnMAP bands, named by their 1-based EnMAP number.
    assert enmap.bands[0] == "B001" and enmap.bands[-1] == "B224"


def test_hyperion_uses_the_usgs_calibrated_bands_in_l1_order() -> None:
    hyperion = get_sensor("eo1_hyperion_spectral_earth")
    numbers = [int(b[1:]) for b in hyperion.bands]
    assert numbers == list(range(8, 58)) + list(range(77, 225))
    assert hyperion.bandwidths is not None
    assert all(10.0 < w < 12.0 for w in hyperion.bandwidths)


def test_bigearthnet_subset_matches_sentinel2_and_fusion_lora_stats() -> None:
    ben = get_sensor("bigearthnet_s2_6band")
    s2 = get_sensor("sentinel2_l2a")
    assert ben.bands == ("B04", "B03", "B02", "B08", "B11", "B12")
    assert ben.wavelengths == tuple(s2.wavelengths[s2.band_index(b)] for b in ben.bands)
    assert ben.mean is not None and ben.std is not None
    assert ben.mean[0] == pytest.approx(0.0354, abs=1e-4)
    assert ben.mean[3] == pytest.approx(0.252, abs=1e-3)
    assert _apply(ben.scaling, [0.0, 5000.0, 10000.0, 20000.0, -5.0, 1.0]) == [
        0.0,
        0.5,
        1.0,
        1.0,
        0.0,
        0.0001,
    ]


def test_satlas_rules_follow_the_source() -> None:
    ms = get_sensor("satlas_sentinel2_ms").scaling
    assert ms.divisor == (255.0,) * 3 + (8160.0,) * 6
    assert ms.clip == (0.0, 1.0)
    assert _apply(ms, [255.0, 0.0, 51.0, 8160.0, 4080.0, 16320.0, 0.0, 0.0, 0.0])[:6] == [
        1.0,
        0.0,
        0.2,
        1.0,
        0.5,
        1.0,
    ]
    landsat = get_sensor("satlas_landsat").scaling
    assert _apply(landsat, [4000.0, 20320.0, 12160.0, 0.0] + [4000.0] * 7)[:4] == [
        0.0,
        1.0,
        0.5,
        0.0,
    ]
    assert get_sensor("satlas_sentinel2_rgb").scaling.divisor == (255.0,) * 3


def test_one_band_scaling_applies_to_every_band() -> None:
    s2 = get_sensor("sentinel2_l2a")
    rule = s2.scaling
    assert rule.divisor == (10000.0,) * 12 and rule.offset == (0.0,) * 12 and rule.clip is None
    raw = Sensor("toy_raw", bands=("a", "b"), wavelengths=(500.0, 600.0))
    assert raw.scaling == ValueScaling(offset=(0.0, 0.0), divisor=(1.0, 1.0))
    assert raw.scaling.summary() == "none (raw values)"
    assert s2.scaling.summary() == "raw / 10000"


def test_select_slices_the_scaling_rule() -> None:
    sub = get_sensor("satlas_sentinel2_ms").select(["B08", "TCI_B04"])
    assert sub.scaling.divisor == (8160.0, 255.0)
    assert sub.bands == ("B08", "TCI_B04")


def test_scaling_rejects_bad_rules() -> None:
    with pytest.raises(ShapeError, match="2 offsets and 1 divisors"):
        ValueScaling(offset=(0.0, 0.0), divisor=(1.0,))
    with pytest.raises(ValueError, match="divisors must be positive"):
        ValueScaling(offset=(0.0,), divisor=(0.0,))
    with pytest.raises(ValueError, match="offsets must be finite"):
        ValueScaling(offset=(math.nan,), divisor=(1.0,))
    with pytest.raises(ValueError, match="low < high"):
        ValueScaling(offset=(0.0,), divisor=(1.0,), clip=(1.0, 0.0))


def test_sensor_rejects_inconsistent_scaling() -> None:
    base = Sensor("toy_scaling", bands=("a", "b"), wavelengths=(500.0, 600.0))
    with pytest.raises(ShapeError, match="2 bands but its scaling rule covers 3"):
        replace(base, scaling=ValueScaling.uniform(3, divisor=2.0))


def test_sensor_rejects_inconsistent_records() -> None:
    with pytest.raises(ShapeError, match="2 bands but 1 wavelengths"):
        Sensor("toy_bad", bands=("a", "b"), wavelengths=(500.0,))
    with pytest.raises(ShapeError, match="2 bands but 3 mean"):
        Sensor("toy_bad", bands=("a", "b"), wavelengths=(1.0, 2.0), mean=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"wavelengths must be centre wavelengths in nanometres"):
        Sensor("toy_bad", bands=("a",), wavelengths=(-1.0,))
    with pytest.raises(ValueError, match="duplicate band names"):
        Sensor("toy_bad", bands=("a", "a"), wavelengths=(1.0, 2.0))


def test_resolve_wavelengths_takes_every_spelling_of_a_band_set() -> None:
    s2 = get_sensor("sentinel2_l2a")
    assert resolve_wavelengths("sentinel2_l2a") == s2.wavelengths
    assert resolve_wavelengths(s2) == s2.wavelengths
    names = ["B04", "B03", "nir"]
    want = tuple(s2.wavelengths[s2.band_index(b)] for b in names)
    assert resolve_wavelengths(names, sensor="sentinel2_l2a") == want == (664.6, 559.8, 832.8)
    assert resolve_wavelengths(names, sensor=s2) == want
    assert resolve_wavelengths((490, 12005.0)) == (490.0, 12005.0)
    assert resolve_bands("rgb") is get_sensor("rgb")


@pytest.mark.parametrize(
    ("spec", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, r"in \[100, 20000\] nm"),
        ([500.0, -1.0], {}, ValueError, r"got \(500.0, -1.0\)"),
        ([500.0, math.inf], {}, ValueError, "nanometres"),
        ([500.0, 25000.0], {}, ValueError, "nanometres"),
        ([50.0], {}, ValueError, "nanometres"),
        ([0.665, 0.842], {}, ValueError, "look like micrometres: multiply by 1000"),
        (["B04"], {}, ValueError, "need a sensor"),
        (["B04", 500.0], {"sensor": "sentinel2_l2a"}, ValueError, "mix band names and numbers"),
        (["B4x"], {"sensor": "sentinel2_l2a"}, UnknownNameError, "Did you mean 'B04'"),
        ("sentinel2", {}, UnknownNameError, "Unknown sensor"),
    ],
)
def test_resolve_wavelengths_errors(
    spec: object, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        resolve_wavelengths(spec, **kwargs)  # type: ignore[arg-type]


def test_band_index_names_the_sensor_and_suggests() -> None:
    with pytest.raises(
        UnknownNameError, match="'B13' is not a band of sensor 'sentinel2_l2a'. Did you mean"
    ):
        get_sensor("sentinel2_l2a").band_index("B13")
    with pytest.raises(UnknownNameError, match="Did you mean 'nir08'"):
        get_sensor("sentinel2_l2a").band_index("nir8x")


@pytest.mark.parametrize(
    ("sensor", "spellings", "canonical"),
    [
        ("sentinel2_l2a", ["B4", "B04", "b04", "b4", "red", "RED", " B04 "], "B04"),
        ("sentinel2_l2a", ["B8A", "B8a", "b08a", "nir08"], "B8A"),
        ("sentinel2_l2a", ["B8", "B08", "nir"], "B08"),
        ("sentinel2_l2a", ["B5", "rededge1", "RedEdge1"], "B05"),
        ("sentinel2_l1c", ["B10", "cirrus"], "B10"),
        ("landsat89_oli_tirs", ["SR_B4", "sr_b4", "B4", "B04", "red"], "B4"),
        ("landsat89_oli_tirs", ["ST_B10", "B10", "lwir11"], "B10"),
        ("landsat89_oli", ["B8", "pan"], "B8"),
        ("enmap_spectral_earth", ["B001", "B1", "b01"], "B001"),
        ("satlas_sentinel2_ms", ["TCI_B04", "tci_b4", "red"], "TCI_B04"),
    ],
)
def test_one_resolver_takes_every_spelling(
    sensor: str, spellings: list[str], canonical: str
) -> None:
    record = get_sensor(sensor)
    want = record.bands.index(canonical)
    assert [record.band_index(n) for n in spellings] == [want] * len(spellings)
    assert record.canonical(spellings) == (canonical,) * len(spellings)


def test_ambiguous_names_raise_naming_every_candidate() -> None:
    s2 = get_sensor("sentinel2_l2a")
    with pytest.raises(UnknownNameError, match="'rededge' is ambiguous .* B05, B06, B07"):
        s2.band_index("rededge")
    with pytest.raises(UnknownNameError, match="ambiguous"):
        s2.select(["B04", "rededge"])
    # WorldView-3 has one red-edge band, so the same common name resolves there.
    assert get_sensor("worldview3_spacenet2_ms").band_index("rededge") == 5


def test_landsat_numbers_are_not_sentinel2_numbers() -> None:
    # B5 / B8 are red edge / NIR on Sentinel-2 but NIR / pan on Landsat 8/9.
    s2, landsat = get_sensor("sentinel2_l2a"), get_sensor("landsat89_oli")
    assert s2.wavelengths[s2.band_index("B5")] == 704.1
    assert landsat.wavelengths[landsat.band_index("B5")] == 864.67
    assert landsat.common_names is not None
    assert landsat.common_names[landsat.band_index("B8")] == "pan"
    with pytest.raises(UnknownNameError, match="not a band of sensor 'landsat89_oli'"):
        landsat.band_index("B8A")


def test_canonical_and_select_return_catalog_identifiers() -> None:
    s2 = get_sensor("sentinel2_l2a")
    sub = s2.select(["red", "b3", "B2", "nir08"])
    assert sub.bands == ("B04", "B03", "B02", "B8A")
    assert sub.name == "sentinel2_l2a[B04,B03,B02,B8A]"
    assert sub.aliases == ((), (), (), ())
    edge = s2.select(["rededge2"])
    assert edge.aliases == (("rededge2",),) and edge.band_index("rededge2") == 0
    with pytest.raises(TypeError, match="sequence of band names"):
        s2.canonical("B04")
    with pytest.raises(TypeError, match="must be strings"):
        s2.band_index(4)  # type: ignore[arg-type]


def test_band_name_key_folds_case_and_zero_padding_only() -> None:
    assert band_name_key("B04") == band_name_key("b4") == band_name_key("B004") == "b4"
    assert band_name_key("B8A") == band_name_key("b08a") == "b8a"
    assert band_name_key("B8") != band_name_key("B8A")
    assert band_name_key("SR_B4") == "sr_b4" != band_name_key("B4")
    assert band_name_key("swir16") == "swir16" and band_name_key("nir") == "nir"


def test_sensor_rejects_names_that_differ_only_in_spelling() -> None:
    with pytest.raises(ValueError, match="differ only in case or zero padding"):
        Sensor("toy_pad", bands=("B4", "B04"), wavelengths=(500.0, 600.0))
    with pytest.raises(ShapeError, match="2 bands but 1 aliases"):
        Sensor("toy_alias", bands=("a", "b"), wavelengths=(500.0, 600.0), aliases=(("x",),))


def test_resolve_bands_with_a_sensor_gives_the_canonical_record() -> None:
    record = resolve_bands(["SR_B4", "nir08", "b3"], sensor="landsat89_oli")
    assert isinstance(record, Sensor)
    assert record.bands == ("B4", "B5", "B3")
    assert record.wavelengths == (654.59, 864.67, 561.41)
    assert resolve_bands(["B4"]) == ("B4",)  # no sensor: names only
    with pytest.raises(ValueError, match="Pass band names with sensor="):
        resolve_bands("rgb", sensor="rgb")
    with pytest.raises(UnknownNameError, match="ambiguous"):
        resolve_bands(["rededge"], sensor="sentinel2_l1c")
    assert resolve_wavelengths(["SR_B4", "ST_B10"], sensor="landsat89_oli_tirs") == (
        654.59,
        10895.0,
    )


# SSL4EO-S12 statistics in stored DN, as published in zhu-xlab/SSL4EO-S12
# src/benchmark/pretrain_ssl/datasets/SSL4EO/ssl4eo_dataset.py (first, B04 and last band).
@pytest.mark.parametrize(
    ("name", "band", "mean_dn", "std_dn"),
    [
        ("sentinel2_l1c", "B01", 1605.57504906, 786.78685367),
        ("sentinel2_l1c", "B04", 1363.52445545, 1138.84957046),
        ("sentinel2_l1c", "B10", 22.10351321, 51.15431158),
        ("sentinel2_l1c", "B12", 1524.06546312, 1136.53823676),
        ("sentinel2_l2a", "B01", 752.40087073, 1108.02887453),
        ("sentinel2_l2a", "B04", 1297.47289228, 1368.11351514),
        ("sentinel2_l2a", "B8A", 2581.64687018, 1439.3086061),
        ("sentinel2_l2a", "B12", 1805.06846033, 1343.48379601),
    ],
)
def test_sentinel2_statistics_are_ssl4eo_s12s(
    name: str, band: str, mean_dn: float, std_dn: float
) -> None:
    sensor = get_sensor(name)
    i = sensor.band_index(band)
    assert sensor.mean is not None and sensor.std is not None
    # Statistics are on the scaled values: DN / 10000.
    assert sensor.scaling.divisor[i] == 10000.0 and sensor.scaling.offset[i] == 0.0
    assert sensor.mean[i] == pytest.approx(mean_dn / 10000.0, rel=1e-12)
    assert sensor.std[i] == pytest.approx(std_dn / 10000.0, rel=1e-12)
    assert "SSL4EO-S12" in sensor.citation


def test_landsat_surface_reflectance_follows_usgs_scaling_and_clay_statistics() -> None:
    sr = get_sensor("landsat89_c2l2_sr")
    assert sr.bands == ("B2", "B3", "B4", "B5", "B6", "B7")
    assert sr.canonical(["SR_B4", "SR_B7"]) == ("B4", "B7")
    # USGS Collection 2 Level-2: reflectance = DN * 0.0000275 - 0.2.
    dn = [7273.0, 10000.0, 20000.0, 43636.0, 0.0, 65535.0]
    assert _apply(sr.scaling, dn) == pytest.approx([v * 0.0000275 - 0.2 for v in dn])
    # Clay's published mean/std of the stored DN (red: 13705 / 9578, swir22: 12701 / 4522)
    # give the same standardised value as the catalog's reflectance statistics.
    assert sr.mean is not None and sr.std is not None
    for band, mean_dn, std_dn in (("B4", 13705.0, 9578.0), ("B7", 12701.0, 4522.0)):
        i = sr.band_index(band)
        raw = 15000.0
        scaled = _apply(sr.scaling, [raw] * 6)[i]
        assert (scaled - sr.mean[i]) / sr.std[i] == pytest.approx((raw - mean_dn) / std_dn)
    assert "Clay" in sr.citation and "Landsat Collection 2 Level-2" in sr.citation


def test_records_of_unstandardised_inputs_do_not_inherit_sentinel2_statistics() -> None:
    assert get_sensor("satlas_sentinel2_ms").mean is None
    assert get_sensor("satlas_sentinel2_rgb").std is None
    # torchgeo's SSL4EO-S12 weights take L1C / 10000 only.
    ssl4eo = get_sensor("ssl4eo_s12_sentinel2_l1c")
    l1c = get_sensor("sentinel2_l1c")
    assert ssl4eo.mean is None and ssl4eo.std is None
    assert ssl4eo.bands == l1c.bands and ssl4eo.scaling == l1c.scaling


def test_unknown_sensor_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'naip'"):
        get_sensor("naipp")


def test_import_stays_light() -> None:
    code = (
        "import sys, geofm.sensors as s; s.get_sensor('enmap_spectral_earth'); "
        "bad = [m for m in ('geofm.hub', 'rasterio', 'huggingface_hub') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
