"""Every ```python block of the documentation runs, and so does every marked shell block.

Each page's blocks run in order, in one fresh interpreter namespace per page
(blocks on a page may use names defined by earlier blocks on that page), with an
empty temporary directory as the working directory, no network and the offline
switches of huggingface_hub set.

- A ```python block runs unless the line right before its opening fence is a
  skip marker with a reason; the marker is an HTML comment, invisible on the
  rendered site:

      <!-- skip-test: needs the Satlas checkpoint file -->
      ```python
      model = geofm.create_backbone("tv_swin_v2_b", pretrained="sentinel2_swinb_si_rgb.pth")
      ```

- A shell block (```bash, ```sh, ```console) runs only when the line right
  before it is ``<!-- run-test -->``; it runs with ``bash -e -o pipefail`` in
  the page's directory, with this interpreter's ``bin`` folder first on
  ``PATH`` (so ``geofm`` and ``python`` are the ones under test). A shell block
  may instead carry a skip marker, which states why it is shown but not run.

The reason after ``skip-test:`` is required, so every skipped block says why. On
the task pages (:data:`TASK_PAGES`) every python or shell block runs or says why not.

Pretrained weights: the docs call ``create_backbone(..., pretrained=True)`` as a
user would. The test cannot download, so it puts *stand-in* checkpoints (random
values in the original file layout, written by the peer library: timm) where
geofm looks first, ``$GEOFM_WEIGHTS_DIR/<entry>/<file>``; the code path is the
user's, only the numbers differ (torchgeo's ``mocked_weights`` idea).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP_MARKER = re.compile(r"^<!--\s*skip-test:\s*(?P<reason>\S.*?)\s*-->$")
RUN_MARKER = re.compile(r"^<!--\s*run-test\s*-->$")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)")
SHELL = ("bash", "sh", "console", "shell")

#: Pages where every python or shell block runs or carries a skip reason.
TASK_PAGES = (
    "getting-started.md",
    "weights-to-map.md",
    "tutorials/segment-scene.md",
    "tutorials/scene-embeddings.md",
    "tutorials/lora-my-labels.md",
    "tutorials/ssl-archive.md",
    "tutorials/predict-archive.md",
)

#: Catalog entries the docs load with ``pretrained=True``; stand-ins are written for them.
STAND_IN_WEIGHTS = {"dinov2_vit_small_patch14.lvd142m": "vit_small_patch14_dinov2.lvd142m"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip_reason: str | None
    run: bool  # whether the docs test executes it


def extract_blocks(page: Path) -> list[Block]:
    """The python blocks and the shell blocks of ``page``, with their markers."""
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
        if lang != "python" and lang not in SHELL:
            continue
        previous = lines[start - 1].strip() if start > 0 else ""
        marker = SKIP_MARKER.match(previous)
        reason = marker["reason"] if marker else None
        run = reason is None and (lang == "python" or RUN_MARKER.match(previous) is not None)
        blocks.append(Block(page, start + 1, lang, "\n".join(body), reason, run))
    return blocks


def _pages() -> list[Path]:
    return sorted(
        p for p in DOCS.rglob("*.md") if "hooks" not in p.parts and "scripts" not in p.parts
    )


def _page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_extract_blocks_reads_markers(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- skip-test: needs data -->\n```python\nopen('x')\n```\n"
        "```bash\nls\n```\n  ```python\n  y = 2\n  ```\n<!-- run-test -->\n```bash\necho hi\n```\n"
        "<!-- skip-test: real data -->\n```bash\ngeofm predict m a.tif b.tif\n```\n```text\nz\n```\n"
    )
    blocks = extract_blocks(page)
    assert [b.code for b in blocks] == [
        "x = 1",
        "open('x')",
        "ls",
        "y = 2",
        "echo hi",
        "geofm predict m a.tif b.tif",
    ]
    assert [b.skip_reason for b in blocks] == [None, "needs data", None, None, None, "real data"]
    assert [b.run for b in blocks] == [True, False, False, True, True, False]
    assert [b.lang for b in blocks] == ["python", "python", "bash", "python", "bash", "bash"]
    assert [b.line for b in blocks] == [2, 6, 9, 12, 16, 20]


def test_markers_are_well_formed() -> None:
    # A marker without a reason, or one that is not followed by a code fence, is a typo.
    for page in _pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if "skip-test" in line or "run-test" in line:
                stripped = line.strip()
                assert SKIP_MARKER.match(stripped) or RUN_MARKER.match(stripped), (
                    f"{page}:{n + 1}: malformed marker"
                )
                following = lines[n + 1] if n + 1 < len(lines) else ""
                langs = ("python", *SHELL) if "skip-test" in line else SHELL
                assert any(following.startswith("```" + lang) for lang in langs), (
                    f"{page}:{n + 1}: marker not right before a ```{'/'.join(langs)} fence"
                )


def test_task_pages_run_every_block_or_say_why() -> None:
    for name in TASK_PAGES:
        page = DOCS / name
        assert page.is_file(), f"task page {name} is missing"
        blocks = extract_blocks(page)
        assert any(b.run for b in blocks), f"{name} runs no block"
        silent = [b.line for b in blocks if not b.run and b.skip_reason is None]
        assert not silent, f"{name}: blocks at lines {silent} neither run nor say why"


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_sidebar_lists_every_page_once() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    pages = _nav_pages(config["nav"])
    duplicates = sorted({p for p in pages if pages.count(p) > 1})
    assert not duplicates, f"pages listed twice in mkdocs.yml nav: {duplicates}"
    on_disk = {_page_id(p) for p in _pages()}
    missing = sorted(on_disk - set(pages))
    assert not missing, f"pages not in the mkdocs.yml nav: {missing}"


_REPO_PATH = re.compile(r"\b(?:examples|benchmarks|docs/scripts)/[\w./-]+\.py\b")
_OUTSIDE = re.compile(r"\b(?:SOURCES|DESIGN|STYLE)\.md\b")


def test_pages_name_only_files_in_the_repository() -> None:
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        outside = _OUTSIDE.findall(text)
        assert not outside, (
            f"{_page_id(page)} cites files that are not in the repository: {outside}"
        )
        for path in _REPO_PATH.findall(text):
            assert (ROOT / path).is_file(), f"{_page_id(page)} names {path}, which does not exist"


def _write_stand_in_weights(weights_dir: Path) -> None:
    """Random-valued checkpoints in the original layouts, where geofm looks first."""
    import timm
    from safetensors.torch import save_file

    from geofm.hub import get_weights

    for entry, timm_name in STAND_IN_WEIGHTS.items():
        spec = get_weights(entry)
        assert spec.filename is not None
        target = weights_dir / entry / spec.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        model = timm.create_model(timm_name, pretrained=False)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))


_DRIVER = """
import json, os, subprocess, sys, time, traceback
from pathlib import Path

pages = json.loads(Path(sys.argv[1]).read_text())
root = Path(sys.argv[2])
shell_env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
results = {}
for page, blocks in pages.items():
    work = root / page.replace("/", "__")
    work.mkdir(parents=True)
    os.chdir(work)
    namespace = {"__name__": "__main__"}
    start, wall = time.process_time(), time.perf_counter()
    error = None
    for line, lang, code in blocks:
        if lang != "python":
            run = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", code],
                env=shell_env, capture_output=True, text=True,
            )
            if run.returncode != 0:
                error = (f"shell block at docs/{page}:{line} exited {run.returncode}\\n"
                         f"{code}\\n--- stdout\\n{run.stdout[-3000:]}\\n--- stderr\\n{run.stderr[-3000:]}")
                break
            continue
        # Pad with newlines so tracebacks point at the markdown file's own lines.
        source = "\\n" * line + code
        try:
            exec(compile(source, f"docs/{page}", "exec"), namespace)
        except BaseException:
            error = f"block at docs/{page}:{line}\\n" + traceback.format_exc(limit=-6)
            break
    results[page] = {
        "error": error, "cpu_s": time.process_time() - start, "wall_s": time.perf_counter() - wall
    }
Path(sys.argv[3]).write_text(json.dumps(results))
"""


def test_every_page_code_runs(tmp_path: Path) -> None:
    # One interpreter for all pages (importing torch per page would dominate the
    # run time); each page gets a fresh namespace and its own empty directory.
    pages = {
        _page_id(page): [(b.line, b.lang, b.code) for b in extract_blocks(page) if b.run]
        for page in _pages()
    }
    pages = {page: blocks for page, blocks in pages.items() if blocks}
    assert len(pages) >= 10, f"expected the docs pages to hold python blocks, found {sorted(pages)}"
    _write_stand_in_weights(tmp_path / "geofm_weights")
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
        timeout=1500,
    )
    assert result.returncode == 0, f"the docs driver crashed:\n{result.stderr[-4000:]}"
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results) == set(pages)
    failures = [f"{r['error']}" for r in results.values() if r["error"] is not None]
    timing = ", ".join(
        f"{page} {r['cpu_s']:.1f}s cpu / {r['wall_s']:.1f}s" for page, r in sorted(results.items())
    )
    assert not failures, "\n\n".join(failures) + f"\n\nper page: {timing}"
