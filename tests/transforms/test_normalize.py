from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from geofm.errors import ShapeError
from geofm.input_spec import InputSpec
from geofm.sensors import ValueScaling, get_sensor
from geofm.transforms import Normalize


def test_matches_torchvision_normalize() -> None:
    image = torch.rand(2, 3, 5, 5)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.4, 0.3]
    out = Normalize(mean, std)({"image": image})["image"]
    torch.testing.assert_close(out, TF.normalize(image, mean, std))


def test_from_sensor_uses_scale_and_statistics() -> None:
    sensor = get_sensor("enmap_spectral_earth")
    raw = torch.randint(0, 5000, (sensor.num_bands, 2, 2), dtype=torch.int16)
    out = Normalize.from_sensor(sensor)({"image": raw})["image"]
    mean = torch.tensor(sensor.mean)[:, None, None]
    std = torch.tensor(sensor.std)[:, None, None]
    divisor = torch.tensor(sensor.scaling.divisor)[:, None, None]
    want = (raw.float() / divisor - mean) / std
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, want)


def test_from_sensor_rgb_uses_divisor_255() -> None:
    raw = torch.randint(0, 256, (2, 3, 4, 4)).float()
    out = Normalize.from_sensor("rgb")({"image": raw})["image"]
    want = TF.normalize(raw / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.testing.assert_close(out, want)


def test_sensor_without_statistics_raises_clear_error() -> None:
    with pytest.raises(ValueError, match="'satlas_sentinel2_ms' has no mean/std"):
        Normalize.from_sensor("satlas_sentinel2_ms")


def test_scaling_only_follows_the_sensor_rule() -> None:
    sensor = get_sensor("satlas_sentinel2_ms")
    rule = sensor.scaling
    raw = torch.rand(sensor.num_bands, 3, 3) * 10000
    out = Normalize.from_sensor(sensor, standardize=False)({"image": raw})["image"]
    offset = torch.tensor(rule.offset)[:, None, None]
    divisor = torch.tensor(rule.divisor)[:, None, None]
    want = ((raw - offset) / divisor).clamp(*rule.clip) if rule.clip else (raw - offset) / divisor
    torch.testing.assert_close(out, want)


def test_rejects_band_mismatch() -> None:
    norm = Normalize([0.0] * 4, [1.0] * 4)
    with pytest.raises(ShapeError, match="4 bands"):
        norm({"image": torch.zeros(2, 3, 4, 4)})


def test_rejects_bad_statistics() -> None:
    with pytest.raises(ShapeError, match="2 mean values but 3 std"):
        Normalize([0.0, 0.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="must all be positive"):
        Normalize([0.0], [0.0])


def test_follows_module_device_and_keeps_other_keys() -> None:
    norm = Normalize([1.0], [2.0])
    out = norm({"image": torch.ones(1, 1, 1), "label": torch.tensor(3)})
    assert out["image"].item() == 0.0
    assert out["label"].item() == 3


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5)])
def test_tensor_and_sample_paths_give_the_same_numbers(shape: tuple[int, ...]) -> None:
    norm = Normalize.from_sensor("rgb")
    raw = torch.randint(0, 256, shape, dtype=torch.uint8)
    out = norm(raw)
    assert isinstance(out, torch.Tensor) and out.shape == raw.shape
    torch.testing.assert_close(out, norm({"image": raw})["image"])
    want = TF.normalize(raw.float() / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.testing.assert_close(out, want)


def test_in_front_of_a_model_in_sequential_with_state_dict_and_dtype() -> None:
    norm = Normalize([10.0, 20.0], [2.0, 4.0], divisor=10.0, clip=(0.0, 5.0))
    conv = nn.Conv2d(2, 1, 1, bias=False)
    model = nn.Sequential(norm, conv)
    x = torch.rand(3, 2, 4, 4) * 100
    torch.testing.assert_close(model(x), conv(norm({"image": x})["image"]))
    assert {"0.mean", "0.std", "0.offset", "0.divisor"} <= set(model.state_dict())
    # the statistics load from the state dict (clip is a constructor argument)
    fresh = nn.Sequential(Normalize([0.0] * 2, [1.0] * 2, clip=(0.0, 5.0)), nn.Identity())
    fresh[0].load_state_dict(norm.state_dict())
    torch.testing.assert_close(fresh[0](x), norm(x))
    model.double()  # buffers follow .to(dtype) / .to(device)
    assert model[0].mean.dtype == torch.float64
    assert model(x.double()).dtype == torch.float64


def test_tensor_band_mismatch_raises() -> None:
    norm = Normalize([0.0] * 4, [1.0] * 4)
    with pytest.raises(ShapeError, match=r"4 bands .* got shape \(2, 3, 4, 4\)"):
        norm(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ShapeError, match=r"got shape \(4, 4\)"):
        norm(torch.zeros(4, 4))


# SSL4EO-S12's published L1C statistics in stored DN (zhu-xlab/SSL4EO-S12
# ssl4eo_dataset.py S2C_MEAN / S2C_STD): B02 and B8A.
@pytest.mark.parametrize(
    ("band", "mean_dn", "std_dn"),
    [(1, 1390.78157673, 850.34818441), (8, 2560.29504086, 1345.52684884)],
)
def test_from_sensor_sentinel2_l1c_standardises_with_ssl4eo_statistics(
    band: int, mean_dn: float, std_dn: float
) -> None:
    raw = torch.randint(0, 12000, (2, 13, 3, 5), dtype=torch.int16)
    out = Normalize.from_sensor("sentinel2_l1c")(raw)
    want = (raw[:, band].double() - mean_dn) / std_dn  # the same rule on stored DN
    torch.testing.assert_close(out[:, band].double(), want, rtol=1e-5, atol=1e-5)


def test_from_sensor_works_for_sentinel2_l2a_and_landsat_sr() -> None:
    assert Normalize.from_sensor("sentinel2_l2a").mean.shape == (12, 1, 1)
    landsat = Normalize.from_sensor("landsat89_c2l2_sr")
    raw = torch.tensor([13705.0, 12701.0]).reshape(1, 2, 1, 1)
    # Clay's published DN means of red and swir22 map to 0 after standardisation.
    out = landsat({"image": torch.cat([raw[:, :1]] * 5 + [raw[:, 1:]], dim=1)})["image"]
    torch.testing.assert_close(out[0, [2, 5], 0, 0], torch.zeros(2), atol=1e-5, rtol=0)


SPECS = {
    "scaling, clip and statistics": InputSpec(
        num_bands=3,
        scaling=ValueScaling(offset=(10.0, 0.0, 5.0), divisor=(100.0, 50.0, 25.0), clip=(0.0, 1.5)),
        mean=(0.3, 0.1, 0.7),
        std=(0.2, 0.05, 0.9),
    ),
    "one scaling rule for every band": InputSpec(
        num_bands=3,
        scaling=ValueScaling.uniform(divisor=255.0),
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.3, 0.1),
    ),
    "scaling only": InputSpec(num_bands=3, scaling=ValueScaling.uniform(divisor=7.0, offset=2.0)),
    "statistics only": InputSpec(num_bands=3, mean=(1.0, 2.0, 3.0), std=(2.0, 0.5, 4.0)),
    "nothing known": InputSpec.unknown(3),
    "catalog sensor": InputSpec.from_sensor("sentinel2_l2a", bands=["B04", "B03", "B02"]),
}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.int16, torch.float16])
def test_from_spec_is_exactly_spec_prepare(name: str, dtype: torch.dtype) -> None:
    spec = SPECS[name]
    raw = (torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(1)) * 200 - 20).to(dtype)
    norm = Normalize.from_spec(spec)
    out = norm(raw)
    want = spec.prepare(raw)
    assert out.dtype == want.dtype == torch.float32
    assert torch.equal(out, want)
    assert torch.equal(norm({"image": raw[0]})["image"], spec.prepare(raw[0]))


def test_from_spec_reads_a_models_input_spec() -> None:
    import geofm

    model = geofm.create_backbone("resnet18", bands="sentinel2_l2a")
    raw = torch.randint(0, 10000, (2, 12, 4, 4), dtype=torch.int16)
    assert torch.equal(Normalize.from_spec(model)(raw), model.input_spec.prepare(raw))

    class Holder:
        input_spec = SPECS["scaling only"]

    assert torch.equal(
        Normalize.from_spec(Holder())(raw[:, :3]), Holder.input_spec.prepare(raw[:, :3])
    )


def test_from_spec_rejects_objects_without_a_spec() -> None:
    with pytest.raises(TypeError, match="expects a geofm.InputSpec .* got Module"):
        Normalize.from_spec(nn.Module())

    class Wrong:
        input_spec = ("num_bands", 3)

    with pytest.raises(TypeError, match="whose input_spec is tuple"):
        Normalize.from_spec(Wrong())


def test_dtype_must_be_floating() -> None:
    with pytest.raises(ValueError, match="floating dtype, got torch.int32"):
        Normalize([0.0], [1.0], dtype=torch.int32)
    half = Normalize([0.0], [1.0], dtype=torch.float16)(torch.ones(1, 2, 2, dtype=torch.float64))
    assert half.dtype == torch.float16
