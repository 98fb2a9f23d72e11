"""MkDocs hook: pages generated from geofm's own catalogs at build time.

- ``catalog/weights.md``: every :class:`geofm.hub.WeightsSpec` in the weights
  registry (``geofm.hub.list_weights()``), one table row per entry plus its notes.
- ``catalog/sensors.md``: every :class:`geofm.sensors.Sensor`
  (``geofm.sensors.list_sensors()``), a summary table and one band table each.
- ``changelog.md``: ``CHANGELOG.md`` from the repository root.
- ``api/datasets.md`` joins the navigation when ``geofm.datasets`` exists.
- ``cite.md``: the ``<!-- geofm:citations -->`` marker becomes the tables of
  every weights entry's and sensor's citation (``list_weights`` /
  ``get_weights``, ``list_sensors`` / ``get_sensor``).

Nothing is written into ``docs/``: the pages are handed to MkDocs in memory
(``File.generated``), so the tables can never drift from the catalogs. Reads
only the installed package; no network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

_REPO = Path(__file__).resolve().parents[2]


def _cell(value: object) -> str:
    """Text safe inside a markdown table cell."""
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(values: tuple[float, ...] | None, index: int, digits: int = 4) -> str:
    if values is None:
        return "-"
    return f"{values[index]:.{digits}g}"


def weights_page() -> str:
    """Markdown for ``catalog/weights.md``, built from the weights registry."""
    from geofm.hub import get_weights, list_weights
    from geofm.hub.info import hash_status

    names = list_weights()
    lines = [
        "# Weights catalog",
        "",
        f"{len(names)} entries, generated at build time from `geofm.hub.list_weights()` "
        "(the same records `geofm list --weights` and `geofm info NAME` print). "
        'Load one with `geofm.create_backbone("<backbone>", pretrained="<tag>")` '
        "(or a downloaded file with `geofm.hub.load_weights(model, path)`); "
        "see [Weights](../weights.md).",
        "",
        "*Hash*: `sha256` = full digest checked, `prefix` = the host's hash prefix checked, "
        "`-` = no published hash. *Source* (under each entry): `hf://repo@revision/file` is "
        "fetched through huggingface_hub; anything else is a manual download (pass the local "
        "file).",
        "",
        "| name | sensor | bands | licence | hash | converter |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        spec = get_weights(name)
        sensor = f"[`{spec.sensor}`](sensors.md#{spec.sensor})" if spec.sensor else "-"
        lines.append(
            f"| [`{name}`](#{_anchor(name)}) | {sensor} | {_cell(spec.in_chans)} | "
            f"{_cell(spec.license or 'unknown')} | {hash_status(spec)} | "
            f"{_cell(spec.converter)} |"
        )
    lines += ["", "## Entries", ""]
    for name in names:
        spec = get_weights(name)
        if spec.repo_id is not None:
            rev = f"@{spec.revision[:10]}" if spec.revision else ""
            source = f"`hf://{spec.repo_id}{rev}/{spec.filename}`"
        elif spec.url is not None:
            source = f"<{spec.url}> (manual download)"
        else:
            source = "-"
        if spec.unsupported_reason is not None:
            source += " (reference only, not loadable)"
        lines += [f"### `{name}` {{#{_anchor(name)}}}", ""]
        if spec.default:
            lines.append(f"Default weights of `{spec.backbone}` (`pretrained=True`).")
            lines.append("")
        lines.append(f"- Source: {_cell(source)}")
        lines.append(f"- Citation: {_cell(spec.citation)}")
        lines.append(f"- Notes: {_cell(spec.notes)}")
        if spec.unsupported_reason is not None:
            lines.append(f"- Not loadable: {_cell(spec.unsupported_reason)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def _anchor(name: str) -> str:
    return name.replace(".", "-").replace("_", "-")


def sensors_page() -> str:
    """Markdown for ``catalog/sensors.md``, built from the sensor registry."""
    from geofm.sensors import get_sensor, list_sensors

    names = list_sensors()
    lines = [
        "# Sensor catalog",
        "",
        f"{len(names)} sensors, generated at build time from `geofm.sensors.list_sensors()`. "
        "Wavelengths and bandwidths (FWHM) are in nanometres, GSD in metres; `mean` / `std` "
        "apply after the value scaling (`Sensor.scaling`: a per-band offset / divisor "
        "/ clip rule). See [Sensors](../sensors.md).",
        "",
        "![Every catalog sensor's bands on a wavelength axis, centre plus or minus half the "
        "FWHM](../assets/figures/sensor_bands.svg)",
        "",
        "| name | bands | GSD (m) | value scaling | statistics | description |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        s = get_sensor(name)
        scaling = s.scaling.summary()
        stats = "mean/std" if s.mean is not None and s.std is not None else "-"
        lines.append(
            f"| [`{name}`](#{name}) | {s.num_bands} | {_cell(s.gsd)} | {scaling} | {stats} | "
            f"{_cell(s.description)} |"
        )
    for name in names:
        s = get_sensor(name)
        lines += ["", f"## `{name}` {{#{name}}}", "", _cell(s.description), ""]
        if s.citation:
            lines += [f"Source: {_cell(s.citation)}", ""]
        lines += [f"Value scaling: {s.scaling.summary()}.", ""]
        lines += [
            "| # | band | common name | wavelength (nm) | FWHM (nm) | mean | std |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, band in enumerate(s.bands):
            common = s.common_names[i] if s.common_names is not None else None
            lines.append(
                f"| {i} | `{band}` | {_cell(common)} | {s.wavelengths[i]:g} | "
                f"{_fmt(s.bandwidths, i)} | {_fmt(s.mean, i)} | {_fmt(s.std, i)} |"
            )
    return "\n".join(lines) + "\n"


CITATIONS_MARKER = "<!-- geofm:citations -->"


def citations_markdown() -> str:
    """Markdown tables: each weights entry's citation and licence, each sensor's sources."""
    from geofm.hub import get_weights, list_weights
    from geofm.sensors import get_sensor, list_sensors

    lines = [
        "### Weights",
        "",
        "| weights entry | cite | licence |",
        "|---|---|---|",
    ]
    for name in list_weights():
        spec = get_weights(name)
        lines.append(
            f"| [`{name}`](catalog/weights.md#{_anchor(name)}) "
            f"| {_cell(spec.citation or 'none published')} | {_cell(spec.license or 'unknown')} |"
        )
    lines += [
        "",
        "### Sensor records (band tables and statistics)",
        "",
        "| sensor | source |",
        "|---|---|",
    ]
    for name in list_sensors():
        sensor = get_sensor(name)
        lines.append(f"| [`{name}`](catalog/sensors.md#{name}) | {_cell(sensor.citation)} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Fill the citation tables into ``cite.md``."""
    if CITATIONS_MARKER in markdown:
        return markdown.replace(CITATIONS_MARKER, citations_markdown())
    return markdown


def datasets_api_page() -> str:
    """Markdown for ``api/datasets.md`` (only when ``geofm.datasets`` exists)."""
    return "# geofm.datasets\n\n::: geofm.datasets\n"


def _has_datasets() -> bool:
    return importlib.util.find_spec("geofm.datasets") is not None


def on_config(config: MkDocsConfig, **kwargs: Any) -> MkDocsConfig:
    """Add the ``geofm.datasets`` API page to the navigation when the module exists."""
    nav: list[Any] = config.nav or []
    if _has_datasets():
        for item in nav:
            if isinstance(item, dict) and "API reference" in item:
                pages = item["API reference"]
                if not any(isinstance(p, dict) and "geofm.datasets" in p for p in pages):
                    pages.append({"geofm.datasets": "api/datasets.md"})
    config.nav = nav
    return config


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Hand the generated pages to MkDocs."""
    changelog = (_REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    generated = {
        "catalog/weights.md": weights_page(),
        "catalog/sensors.md": sensors_page(),
        "changelog.md": changelog,
    }
    if _has_datasets():
        generated["api/datasets.md"] = datasets_api_page()
    for src_uri, content in generated.items():
        files.append(File.generated(config, src_uri, content=content))
    return files
