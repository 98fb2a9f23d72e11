"""Human-readable catalog listings for ``geofm list --weights`` and ``geofm info NAME``.

Both functions return strings (the CLI prints them); they read only the
catalog and the sensor registry, never the network.

Example:
    >>> table = format_weights_table("dinov2_vit_s*").splitlines()
    >>> table[0].split()
    ['name', 'sensor', 'bands', 'licence', 'hash', 'source']
    >>> table[1].split()[:5]
    ['dinov2_vit_small_patch14.lvd142m', 'rgb', '3', 'apache-2.0', '-']
"""

from __future__ import annotations

from geofm.weights.catalog import WeightsSpec, get_weights, list_weights

__all__ = ["describe_weights", "format_weights_table", "hash_status"]

_COLUMNS = ("name", "sensor", "bands", "licence", "hash", "source")


def hash_status(spec: WeightsSpec) -> str:
    """``"sha256"`` (full digest), ``"prefix"`` (host's hash prefix) or ``"-"`` (none known).

    Args:
        spec: Catalog entry.

    Returns:
        The status word.

    Example:
        >>> hash_status(get_weights("resnet50.sentinel2_all_moco"))
        'prefix'
    """
    if spec.sha256 is None:
        return "-"
    return "sha256" if len(spec.sha256) == 64 else "prefix"


def _row(spec: WeightsSpec) -> tuple[str, ...]:
    source = spec.source
    if spec.unsupported_reason is not None:
        source += " (reference only, not loadable)"
    elif spec.repo_id is None:
        source += " (manual download)"
    return (
        spec.name,
        spec.sensor or "-",
        str(spec.in_chans) if spec.in_chans is not None else "-",
        spec.license or "unknown",
        hash_status(spec),
        source,
    )


def format_weights_table(pattern: str = "*") -> str:
    """Aligned table of catalog entries matching ``pattern``: sensor, bands, licence, hash, source.

    Args:
        pattern: ``fnmatch`` glob over entry names.

    Returns:
        The table (a header line and one line per entry), or a one-line
        message when nothing matches.

    Example:
        >>> format_weights_table("no_such_*")
        "No weights match 'no_such_*'. List all with pattern '*'."
    """
    rows = [_row(get_weights(n)) for n in list_weights(pattern)]
    if not rows:
        return f"No weights match {pattern!r}. List all with pattern '*'."
    table = [_COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(_COLUMNS) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in table
    ]
    return "\n".join(line.rstrip() for line in lines)


def describe_weights(name: str) -> str:
    """Every field of one catalog entry, with its sensor's bands and normalisation.

    Args:
        name: Catalog entry name.

    Returns:
        Multi-line description.

    Raises:
        UnknownNameError: If the entry does not exist (with suggestions).

    Example:
        >>> print(describe_weights("resnet50.imagenet_vicreg"))  # doctest: +ELLIPSIS
        resnet50.imagenet_vicreg
          backbone:  resnet50
          source:    https://dl.fbaipublicfiles.com/vicreg/resnet50.pth
        ...
          hash:      prefix c843e76524 (verified on load)
        ...
    """
    from geofm.sensors import get_sensor

    spec = get_weights(name)
    hash_line = (
        f"{hash_status(spec)} {spec.sha256} (verified on load)"
        if spec.sha256 is not None
        else "unknown (not verified)"
    )
    lines = [
        spec.name,
        f"  backbone:  {spec.backbone}",
        f"  source:    {spec.source}",
        f"  file:      {spec.filename or 'unknown'}",
        f"  revision:  {spec.revision or 'unpinned (main)' if spec.repo_id else '-'}",
        f"  hash:      {hash_line}",
        f"  converter: {spec.converter or 'none (family reads the file as is)'}",
        f"  in_chans:  {spec.in_chans if spec.in_chans is not None else 'backbone default'}",
        f"  licence:   {spec.license or 'unknown'}",
        f"  citation:  {spec.citation or '-'}",
    ]
    if spec.sensor is not None:
        sensor = get_sensor(spec.sensor)
        stats = "mean/std known" if sensor.mean is not None else "no statistics"
        lines.append(
            f"  sensor:    {sensor.name}: {', '.join(sensor.bands[:13])}"
            + (f" (+{len(sensor.bands) - 13} more)" if len(sensor.bands) > 13 else "")
            + f"; {stats}"
        )
        if sensor.description:
            lines.append(f"             {sensor.description}")
    else:
        lines.append("  sensor:    none registered (see notes)")
    if spec.unsupported_reason is not None:
        lines.append(f"  loadable:  no: {spec.unsupported_reason}")
    if spec.repo_id is None:
        lines.append(f"  download:  manual, from {spec.url}")
    if spec.notes:
        lines.append(f"  notes:     {spec.notes}")
    return "\n".join(lines)
