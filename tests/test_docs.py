"""Every ```python block of the documentation runs.

Each page's blocks run in order, in one fresh interpreter per page (blocks on a
page may use names defined by earlier blocks on that page), with an empty
temporary directory as the working directory, no network and the offline
switches of huggingface_hub set. A block that needs real data, a downloaded
checkpoint or the network is marked by an HTML comment on the line right
before its opening fence; the marker is invisible on the rendered site:

    <!-- skip-test: needs the Satlas checkpoint file -->
    ```python
    model = geofm.create_backbone("tv_swin_v2_b", pretrained="sentinel2_swinb_si_rgb.pth")
    ```

The reason after ``skip-test:`` is required, so every skipped block says why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
SKIP_MARKER = re.compile(r"^<!--\s*skip-test:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip_reason: str | None


def extract_blocks(page: Path) -> list[Block]:
    """The fenced code blocks tagged ``python`` in ``page``, with their skip markers."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, lang = len(match["indent"]), match["lang"]
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:])
            i += 1
        i += 1  # closing fence
        if lang != "python":
            continue
        previous = lines[start - 1].strip() if start > 0 else ""
        marker = SKIP_MARKER.match(previous)
        blocks.append(Block(page, start + 1, "\n".join(body), marker["reason"] if marker else None))
    return blocks


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


def _page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_extract_blocks_reads_markers(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- skip-test: needs data -->\n```python\nopen('x')\n```\n"
        "```bash\nls\n```\n  ```python\n  y = 2\n  ```\n"
    )
    blocks = extract_blocks(page)
    assert [b.code for b in blocks] == ["x = 1", "open('x')", "y = 2"]
    assert [b.skip_reason for b in blocks] == [None, "needs data", None]
    assert [b.line for b in blocks] == [2, 6, 12]


def test_every_page_is_reachable_and_has_python_or_none() -> None:
    # A marker without a reason, or one that is not followed by a python block, is a typo.
    for page in _pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if "skip-test" in line:
                assert SKIP_MARKER.match(line.strip()), f"{page}:{n + 1}: malformed marker"
                assert n + 1 < len(lines) and lines[n + 1].startswith("```python"), (
                    f"{page}:{n + 1}: skip-test marker not right before a ```python fence"
                )


_DRIVER = """
import json, os, sys, time, traceback
from pathlib import Path

pages = json.loads(Path(sys.argv[1]).read_text())
root = Path(sys.argv[2])
results = {}
for page, blocks in pages.items():
    work = root / page.replace("/", "__")
    work.mkdir(parents=True)
    os.chdir(work)
    namespace = {"__name__": "__main__"}
    start = time.process_time()
    error = None
    for line, code in blocks:
        # Pad with newlines so tracebacks point at the markdown file's own lines.
        source = "\\n" * line + code
        try:
            exec(compile(source, f"docs/{page}", "exec"), namespace)
        except BaseException:
            error = f"block at docs/{page}:{line}\\n" + traceback.format_exc(limit=-6)
            break
    results[page] = {"error": error, "cpu_s": time.process_time() - start}
Path(sys.argv[3]).write_text(json.dumps(results))
"""


def test_every_page_code_runs(tmp_path: Path) -> None:
    # One interpreter for all pages (importing torch per page would dominate the
    # run time); each page gets a fresh namespace and its own empty directory.
    pages = {
        _page_id(page): [(b.line, b.code) for b in extract_blocks(page) if b.skip_reason is None]
        for page in _pages()
    }
    pages = {page: blocks for page, blocks in pages.items() if blocks}
    assert len(pages) >= 10, f"expected the docs pages to hold python blocks, found {sorted(pages)}"
    (tmp_path / "pages.json").write_text(json.dumps(pages), encoding="utf-8")
    (tmp_path / "driver.py").write_text(_DRIVER, encoding="utf-8")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "GEOFM_WEIGHTS_DIR": str(tmp_path / "geofm_weights"),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "driver.py"),
            str(tmp_path / "pages.json"),
            str(tmp_path / "work"),
            str(tmp_path / "results.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"the docs driver crashed:\n{result.stderr[-4000:]}"
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results) == set(pages)
    failures = [f"{r['error']}" for r in results.values() if r["error"] is not None]
    timing = ", ".join(f"{page} {r['cpu_s']:.1f}s" for page, r in sorted(results.items()))
    assert not failures, "\n\n".join(failures) + f"\n\nCPU per page: {timing}"
