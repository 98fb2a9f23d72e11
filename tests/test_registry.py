from __future__ import annotations

import pytest

from geofm._registry import Registry
from geofm.errors import UnknownNameError


def make() -> Registry[int]:
    reg: Registry[int] = Registry("thing")
    reg.add("vit_small_patch16", 1)
    reg.add("vit_base_patch16", 2)
    reg.add("resnet50", 3)
    return reg


def test_duplicate_registration_is_an_error() -> None:
    reg = make()
    with pytest.raises(ValueError, match="'resnet50' is already registered"):
        reg.add("resnet50", 4)
    assert reg.get("resnet50") == 3


def test_decorator_registers_under_the_explicit_name() -> None:
    reg: Registry[object] = Registry("fn")

    @reg.register("explicit")
    def some_function_name() -> None: ...

    assert reg.list() == ["explicit"]
    assert reg.get("explicit") is some_function_name


def test_unknown_name_suggests_close_matches_and_lists_all() -> None:
    reg = make()
    with pytest.raises(UnknownNameError) as info:
        reg.get("vit_smal_patch16")
    msg = str(info.value)
    assert msg.startswith("Unknown thing 'vit_smal_patch16'. Did you mean 'vit_small_patch16'")
    assert msg.endswith("Available: resnet50, vit_base_patch16, vit_small_patch16.")
    assert isinstance(info.value, LookupError)
    assert not isinstance(info.value, KeyError)


def test_listing_uses_fnmatch_and_is_sorted() -> None:
    reg = make()
    assert reg.list() == ["resnet50", "vit_base_patch16", "vit_small_patch16"]
    assert reg.list("vit_*") == ["vit_base_patch16", "vit_small_patch16"]
    assert reg.list("*50") == ["resnet50"]
    assert reg.list("nothing*") == []


@pytest.mark.parametrize("bad", ["", None])
def test_empty_names_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        make().add(bad, 1)  # type: ignore[arg-type]
