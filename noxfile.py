"""Developer sessions: tests, lint, typecheck, docs, examples, torchgeo, peers, release, mutation.

Plain ``nox`` (and CI) runs only the sessions in ``nox.options.sessions``; the
others, ``mutation`` included, run only when named: ``nox -s mutation``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

# pip resolves torch and torchvision together from the package index: timm
# needs torchvision, and pinning torch to a locally installed wheel would pick
# a torchvision built for another torch.


@nox.session
def tests(session: nox.Session) -> None:
    """Install geofm with its test extras and run the whole suite (doctests included)."""
    session.install("-e", ".[test,examples]")
    args = session.posargs or ["-n", "2", "--dist", "loadgroup"]
    session.run("pytest", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check on the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".", "mypy>=1.11")
    session.run("mypy", "--strict", "geofm")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors (offline: no external assets)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def examples(session: nox.Session) -> None:
    """Run the example scripts with their tiny defaults."""
    session.install("-e", ".[examples]")
    session.run("python", "examples/quickstart.py")


@nox.session
def torchgeo(session: nox.Session) -> None:
    """geofm models in torchgeo's SemanticSegmentationTask and a Lightning Trainer.

    Not a default session (torchgeo is no test dependency; the default suite
    skips tests/test_torchgeo_trainer.py): ``nox -s torchgeo``. Installs
    torchgeo 0.8.1, which brings Lightning, and runs every block of
    docs/torchgeo.md, the torchgeo ones included.
    """
    # torchgeo 0.8.1 imports requests (torchgeo.datasets.openstreetmap) without
    # requiring it; huggingface_hub >= 1 no longer brings it.
    session.install("-e", ".[test]", "torchgeo==0.8.1", "requests")
    session.run("pytest", "tests/test_torchgeo_trainer.py", "-ra", *session.posargs)


@nox.session
def peers(session: nox.Session) -> None:
    """The peers' own tests (lightly, PEFT, timm, torchgeo) ported to geofm: tests_peers/.

    Not a default session (tests_peers/ is outside testpaths, so plain pytest and CI do
    not collect it): ``nox -s peers``. Intended differences are strict xfails, so the run
    is green and a change of behaviour fails it; the tests that need torchgeo itself skip
    unless it is installed. Results: reports/peer-tests.md.
    """
    session.install("-e", ".[test]")
    session.run("pytest", "tests_peers", "-q", "-rfEs", *session.posargs)


# Files the wheel must ship besides the modules: the typing marker and the
# package data read at run time (sensor tables, statistics, the demo scene).
_WHEEL_MUST_CONTAIN = (
    "geofm/py.typed",
    "geofm/data/enmap_spectral_earth_bands.csv",
    "geofm/data/spectral_earth_stats.json",
    "geofm/data/samples/landsat7_rgb_224.tif",
)


@nox.session
def release(session: nox.Session) -> None:
    """Build wheel + sdist; install the wheel in a fresh venv; run the demo and import checks."""
    dist = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build>=1.0")
    session.run("python", "-m", "build", "--outdir", str(dist))
    wheels = sorted(dist.glob("geofm-*.whl"))
    sdists = sorted(dist.glob("geofm-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        session.error(f"expected one wheel and one sdist in {dist}, got {wheels + sdists}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    missing = [name for name in _WHEEL_MUST_CONTAIN if name not in names]
    if missing:
        session.error(f"{wheels[0].name} lacks {missing}")
    data_files = sorted(n for n in names if n.startswith("geofm/data/"))
    session.log(f"{wheels[0].name}: {len(names)} files; package data: {data_files}")
    # Install the wheel itself (not the source tree) and run from outside the
    # checkout, so nothing is imported from the working copy. First bare (the
    # runtime dependencies only: what `pip install geofm` gives), then with the
    # examples extra of the README's main command.
    session.install(str(wheels[0]))
    checks = Path(__file__).parent / "benchmarks" / "check_import.py"
    outside = Path(session.create_tmp()) / "outside"
    outside.mkdir(exist_ok=True)
    session.chdir(outside)
    session.run("python", "-c", "import geofm, pathlib; print(pathlib.Path(geofm.__file__).parent)")
    session.run("geofm", "--version")
    session.run("python", str(checks), "--runs", "5")
    session.run("geofm", "demo", "--no-plot", "--steps", "2", "--output-dir", "demo-bare")
    session.install(f"{wheels[0]}[examples]")
    session.run("geofm", "demo")


# Mutation testing: each target is a set of source files and the tests that
# own them. The session mutates only those files (mutmut 3) and runs only those
# tests against each mutant, then writes the score and every surviving mutant
# to MUTATION_REPORT, one section per target (or per file, when a target is
# run in parts), leaving the other sections and the hand-written notes as they
# are.
MUTATION_TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lora": (("geofm/lora/*.py",), ("tests/lora",)),
    "losses": (("geofm/losses/*.py",), ("tests/losses",)),
    "geo": (("geofm/geo/*.py",), ("tests/geo",)),
    "weights-load": (
        ("geofm/weights/load.py",),
        ("tests/hub/test_load.py", "tests/hub/test_load_mutation_kills.py"),
    ),
    "backbones-adapt": (
        ("geofm/backbones/adapt.py",),
        ("tests/backbones/test_adapt.py", "tests/backbones/test_adapt_mutation_kills.py"),
    ),
    "metrics": (("geofm/metrics/*.py",), ("tests/metrics",)),
    "spectral": (
        ("geofm/spectral/*.py",),
        # DOFA's wavelength-conditioned patch embedding (spectral/wavelength.py) is
        # checked against an independent reference in the DOFA backbone tests.
        (
            "tests/test_spectral.py",
            "tests/backbones/test_dofa.py",
            "tests/test_spectral_mutation_kills.py",
        ),
    ),
}
# Tests that cannot run on mutmut's instrumented code, deselected for the
# mutation run only: torch.compile(fullgraph=True) cannot trace mutmut's
# trampolines (each mutated function dispatches on an environment variable),
# and the layering test reads the package's import lines, which mutmut extends.
_MUTATION_DESELECT = (
    "tests/lora/test_inject.py::test_compile_fullgraph",
    "tests/lora/test_inject.py::test_module_level_imports_respect_layering",
)
# Tests whose code under test runs in other processes (gloo ranks started with
# torch.multiprocessing, a run killed and restarted as a subprocess), per mutated
# file. mutmut's coverage pass records calls in the pytest process only, so it
# never runs these against a mutant of code only those processes execute; the
# session does, against every mutant still alive (see _run_spawning_tests; the
# mutant is chosen through MUTANT_UNDER_TEST, which the child processes inherit).
_TWO_AND_THREE_RANKS = (
    "tests/geo/test_predict.py::test_two_ranks_equal_one_process",
    "tests/geo/test_predict.py::test_three_ranks_with_empty_and_uneven_shares_equal_one_process",
)
_SPAWNING_TESTS = {
    "geofm/geo/predict.py": _TWO_AND_THREE_RANKS,
    "geofm/geo/_stream.py": _TWO_AND_THREE_RANKS,
    "geofm/geo/archive.py": (
        "tests/geo/test_archive.py::test_two_gloo_ranks_write_the_same_bytes_as_one",
        "tests/geo/test_archive.py::test_a_killed_run_resumes_without_redoing_finished_scenes",
    ),
}
_SPAWNED_TIMEOUT_S = 300
MUTATION_REPORT = Path("reports/mutation.md")
# A mutant's tests get timeout_multiplier x their clean duration plus
# timeout_constant seconds before the mutant counts as killed by timeout.
_MUTMUT_CONFIG = """[mutmut]
source_paths = geofm
only_mutate =
{only}
pytest_add_cli_args_test_selection =
{tests}
pytest_add_cli_args =
    -p
    no:cacheprovider
{deselect}
timeout_multiplier = 10.0
timeout_constant = 10.0
use_git_change_detection = false
"""
# mutmut's exit codes, as mutmut.stats.status_by_exit_code names them; any
# other code is "suspicious".
_DETECTED = {
    1: "killed",
    3: "killed",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    -9: "segfault",
    -11: "segfault",
}
_UNDETECTED = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}


def _mutation_selection(
    session: nox.Session, args: list[str]
) -> tuple[list[tuple[str, tuple[str, ...], tuple[str, ...]]], int]:
    """Parse ``[--jobs=N] [--reuse [--retest=TEST] [--no-spawning]] [TARGET | FILE ...]``.

    Returns (section key, mutated globs, tests) per target, and N.
    """
    jobs = os.cpu_count() or 1
    picked: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    for arg in args:
        if arg.startswith("--jobs="):
            jobs = int(arg.removeprefix("--jobs="))
        elif arg in ("--reuse", "--no-spawning") or arg.startswith("--retest="):
            continue
        elif arg in MUTATION_TARGETS:
            picked.append((arg, *MUTATION_TARGETS[arg]))
        else:
            owner = [
                (name, tests)
                for name, (globs, tests) in MUTATION_TARGETS.items()
                if any(Path(arg).match(glob) for glob in globs) and Path(arg).is_file()
            ]
            if not owner:
                session.error(
                    f"mutation: expected a target ({', '.join(MUTATION_TARGETS)}), a source file of"
                    f" one, --jobs=N, --reuse, --retest=TEST or --no-spawning; got {arg!r}"
                )
            picked.append((arg, (arg,), owner[0][1]))
    if not picked:
        picked = [(name, *spec) for name, spec in MUTATION_TARGETS.items()]
    return picked, jobs


# Run in the session's environment, in a target's work folder: reads the
# survivors' original and mutated functions out of mutants/ and writes, per
# survivor, the changed lines and whether they all lie inside a `raise`
# statement or a warnings.warn call (a mutant of the message text only).
_SURVIVOR_SCRIPT = """
import ast, difflib, json, sys
import libcst as cst
from mutmut.mutation import diff_apply as d

out = {}
for name in sys.argv[2:]:
    path = d.find_mutant(name).path
    pair = d.read_functions_from_index(name, path)
    if pair is None:
        module = d.read_mutants_module(path)
        pair = (d.read_original_function(module, name), d.read_mutant_function(module, name))
    old, new = (cst.Module([f]).code.strip().splitlines() for f in pair)
    spans = []
    for node in ast.walk(ast.parse("\\n".join(old))):
        func = getattr(node, "func", None)
        warn = getattr(func, "attr", getattr(func, "id", "")) == "warn"
        if isinstance(node, ast.Raise) or warn:
            spans.append((node.lineno - 1, node.end_lineno - 1))
    changed, diff = set(), []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            changed.update(range(i1, max(i2, i1 + 1)))
            diff += ["- " + line for line in old[i1:i2]] + ["+ " + line for line in new[j1:j2]]
    message = bool(changed) and all(any(a <= i <= b for a, b in spans) for i in changed)
    out[name] = {"diff": diff, "message": message}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"""


def _survivor_details(
    session: nox.Session, work: Path, names: list[str]
) -> dict[str, dict[str, object]]:
    """Changed lines and the message-only flag of each survivor (one process for all)."""
    if not names:
        return {}
    target = work / "survivors.json"
    session.run("python", "-c", _SURVIVOR_SCRIPT, str(target), *names, silent=True)
    details: dict[str, dict[str, object]] = json.loads(target.read_text())
    return details


def _retest_mutants(
    session: nox.Session,
    work: Path,
    tests: list[str],
    codes_to_retest: tuple[int | None, ...],
    source: str = "geofm/**/*.py",
    jobs: int = 1,
) -> int:
    """Run ``tests`` against the mutants of ``source`` whose exit code is in ``codes_to_retest``.

    ``tests`` (files or ``FILE::NAME``) are first copied from the checkout, so
    the current version runs, also in a ``--reuse`` re-score, and must pass on
    the unmutated code (else the session stops). Updates mutmut's
    ``.meta`` files in place: exit code 1 (a test failed) is killed, 0
    survived, and a run past ``_SPAWNED_TIMEOUT_S`` a timeout. The mutant is
    chosen through ``MUTANT_UNDER_TEST``, which child processes inherit;
    ``jobs`` mutants run at a time. Returns how many mutants were run.
    """
    python = shutil.which("python", path=os.pathsep.join(session.bin_paths or [])) or "python"
    root = Path(__file__).parent.resolve()
    for file in {test.split("::")[0] for test in tests}:
        shutil.copy2(root / file, work / "mutants" / file)

    def run_one(name: str) -> int:
        env = {**os.environ, "MUTANT_UNDER_TEST": name, "OMP_NUM_THREADS": "1"}
        command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            done = subprocess.run(
                command,
                cwd=work / "mutants",
                env=env,
                capture_output=True,
                timeout=_SPAWNED_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 36
        return done.returncode

    # The tests must pass on the unmutated code (an empty MUTANT_UNDER_TEST): a test id
    # that does not exist (pytest exit 4) or a test failing anyway would otherwise be
    # recorded as every mutant's result.
    clean = run_one("")
    if clean != 0:
        session.error(
            f"mutation: {' '.join(tests)} exit with {clean} on the unmutated code, not 0;"
            " no mutant was re-tested."
        )
    ran = 0
    for meta in sorted((work / "mutants").glob(f"{source}.meta")):
        data = json.loads(meta.read_text())
        codes: dict[str, int | None] = data["exit_code_by_key"]
        chosen = [name for name, code in sorted(codes.items()) if code in codes_to_retest]
        with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
            for name, code in zip(chosen, pool.map(run_one, chosen), strict=True):
                codes[name] = code
                session.log(f"{name}: {_DETECTED.get(code) or _UNDETECTED.get(code)}")
        if chosen:
            meta.write_text(json.dumps(data))
        ran += len(chosen)
    return ran


def _run_spawning_tests(
    session: nox.Session, work: Path, tests: tuple[str, ...], jobs: int = 1
) -> None:
    """Run the spawning tests of ``tests`` against every mutant still alive.

    mutmut neither sees calls made in processes a test spawns nor runs those
    tests against a mutant it routed elsewhere: a function called only in
    spawned ranks looks untested ("no tests"), and a branch taken only on a
    rank other than 0 (of a function the in-process tests call) survives
    every test mutmut chose. Both get the spawning tests here.
    """
    for source, spawning in _SPAWNING_TESTS.items():
        chosen = [t for t in spawning if t.split("::")[0].startswith(tests)]
        if chosen:
            _retest_mutants(session, work, chosen, (0, 5, 33), source=source, jobs=jobs)


def _mutation_section(
    session: nox.Session,
    key: str,
    globs: tuple[str, ...],
    tests: tuple[str, ...],
    work: Path,
    seconds: float,
) -> tuple[str, int, int]:
    """Read mutmut's per-file results under ``work`` into a report section."""
    rows: list[str] = []
    survivors: list[tuple[str, str]] = []
    killed_all = total_all = 0
    for meta in sorted((work / "mutants").glob("geofm/**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts: dict[str, int] = {}
        for name, code in sorted(codes.items()):
            status = _DETECTED.get(code) or _UNDETECTED.get(code, "suspicious")
            counts[status] = counts.get(status, 0) + 1
            if code not in _DETECTED:
                survivors.append((name, status))
        killed = sum(n for status, n in counts.items() if status in _DETECTED.values())
        total = sum(counts.values())
        killed_all += killed
        total_all += total
        source = meta.relative_to(work / "mutants").as_posix().removesuffix(".meta")
        rest = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
        score = f"{100 * killed / total:.1f}%" if total else "n/a"
        rows.append(f"| `{source}` | {killed}/{total} | {score} | {rest} |")
    details = _survivor_details(session, work, [name for name, _ in survivors])
    wording = [name for name, _ in survivors if details[name]["message"]]
    score_all = f"{100 * killed_all / total_all:.1f}%" if total_all else "n/a"
    later = (work / "retested.txt").read_text().split() if (work / "retested.txt").exists() else []
    retested = (
        " The mutants this run left alive were then run against"
        f" {', '.join(f'`{t}`' for t in later)} (written after the run; `--reuse --retest=`)."
        if later
        else ""
    )
    scored = total_all - len(wording)
    score_code = f"{100 * killed_all / scored:.1f}%" if scored else "n/a"
    lines = [
        f"<!-- mutation:{key} killed={killed_all} total={total_all} wording={len(wording)}"
        f" seconds={seconds:.0f} -->",
        f"### `{key}`: {killed_all}/{total_all} killed ({score_all})",
        "",
        f"Mutated: {', '.join(f'`{g}`' for g in globs)};"
        f" tests: {', '.join(f'`{t}`' for t in tests)};"
        f" {time.strftime('%Y-%m-%d')}, {seconds:.0f} s."
        f" {len(wording)} of the mutants not killed change only the text of an error message"
        f" or warning (inside a `raise` or `warnings.warn`); without them: {killed_all}/{scored}"
        f" ({score_code}).{retested}",
        "",
        "| file | killed/total | score | statuses |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]
    for title, group in (
        ("Not killed", [(n, s) for n, s in survivors if not details[n]["message"]]),
        ("Not killed, message text only", [(n, s) for n, s in survivors if details[n]["message"]]),
    ):
        if not group:
            continue
        lines += [f"#### {title} ({len(group)})", ""]
        for name, status in group:
            diff = details[name]["diff"]
            assert isinstance(diff, list)
            lines += [f"- `{name}` ({status})", "", "  ```diff"]
            lines += [f"  {line}" for line in diff]
            lines += ["  ```", ""]
    lines.append(f"<!-- /mutation:{key} -->")
    return "\n".join(lines), killed_all, total_all


_SECTION = re.compile(
    r"<!-- mutation:(?P<key>\S+) killed=(?P<killed>\d+) total=(?P<total>\d+)"
    r" wording=(?P<wording>\d+) seconds=(?P<seconds>\d+) -->.*?<!-- /mutation:(?P=key) -->",
    re.DOTALL,
)
_SUMMARY = re.compile(r"<!-- summary -->.*?<!-- /summary -->", re.DOTALL)


def _write_mutation_report(report: Path, sections: dict[str, str]) -> None:
    """Replace (or append) the given sections of ``report`` and rebuild its summary table."""
    text = (
        report.read_text()
        if report.exists()
        else (
            "# Mutation testing\n\nWritten by `nox -s mutation` (see CONTRIBUTING.md).\n\n"
            "## Summary\n\n<!-- summary -->\n<!-- /summary -->\n\n## Results\n"
        )
    )
    for key, section in sections.items():
        old = next((m for m in _SECTION.finditer(text) if m.group("key") == key), None)
        if old is None:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        else:
            text = text[: old.start()] + section + text[old.end() :]
    table = [
        "<!-- summary -->",
        "| section | killed/total | score | without message-text mutants | run time |",
        "| --- | --- | --- | --- | --- |",
    ]
    # Targets run one file at a time also get a row for their folder, all files together.
    folders: dict[str, list[list[int]]] = {}

    def row(name: str, killed: int, total: int, wording: int, seconds: int) -> str:
        score = f"{100 * killed / total:.1f}%" if total else "n/a"
        code = f"{100 * killed / (total - wording):.1f}%" if total > wording else "n/a"
        return (
            f"| {name} | {killed}/{total} | {score}"
            f" | {killed}/{total - wording} ({code}) | {seconds} s |"
        )

    for m in _SECTION.finditer(text):
        counts = [int(m.group(g)) for g in ("killed", "total", "wording", "seconds")]
        table.append(row(f"`{m.group('key')}`", *counts))
        if m.group("key").endswith(".py"):
            folders.setdefault(m.group("key").rsplit("/", 1)[0] + "/", []).append(counts)
    for name, files in folders.items():
        if len(files) > 1:
            sums = [sum(column) for column in zip(*files, strict=True)]
            table.append(row(f"**`{name}`, {len(files)} files**", *sums))
    table.append("<!-- /summary -->")
    text = _SUMMARY.sub(lambda _: "\n".join(table), text, count=1)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing (mutmut) of the core modules against their own tests.

    Not a default session: run ``nox -s mutation`` (every target) or
    ``nox -s mutation -- lora geofm/geo/tiling.py --jobs=2``. Writes the score and
    the surviving mutants per target or file to reports/mutation.md.
    """
    session.install("-e", ".[test]", "mutmut>=3.8,<4")
    picked, jobs = _mutation_selection(session, list(session.posargs))
    reuse = "--reuse" in session.posargs
    spawning = "--no-spawning" not in session.posargs
    retest = [a.removeprefix("--retest=") for a in session.posargs if a.startswith("--retest=")]
    root = Path(__file__).parent.resolve()
    report = root / MUTATION_REPORT
    for key, globs, listed in picked:
        tests = tuple(t for t in listed if (root / t).exists())
        work = Path(session.create_tmp()).resolve() / "mutation" / re.sub(r"[^\w.-]", "_", key)
        if reuse:  # rewrite the report from the last run's results
            seconds = float((work / "seconds.txt").read_text())
            if retest:  # the not-killed mutants against tests written since
                _retest_mutants(session, work, retest, (0, 5, 33), jobs=jobs)
                retested = work / "retested.txt"
                done = retested.read_text().split() if retested.exists() else []
                retested.write_text("\n".join(sorted({*done, *retest})))
            if spawning:
                _run_spawning_tests(session, work, tests, jobs)
            session.chdir(work)
            section, killed, total = _mutation_section(session, key, globs, tests, work, seconds)
            session.chdir(root)
            _write_mutation_report(report, {key: section})
            continue
        # A fresh copy per target: mutmut works in its current folder, and a
        # stale mutants/ folder would keep results of older tests.
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(root / "geofm", work / "geofm", ignore=skip)
        shutil.copytree(root / "tests", work / "tests", ignore=skip)
        shutil.copy2(root / "pyproject.toml", work / "pyproject.toml")
        (work / "setup.cfg").write_text(
            _MUTMUT_CONFIG.format(
                only="\n".join(f"    {g}" for g in globs),
                tests="\n".join(f"    {t}" for t in tests),
                deselect="\n".join(
                    f"    --deselect\n    {d}"
                    for d in _MUTATION_DESELECT
                    if d.split("::")[0].startswith(tests)
                ),
            )
        )
        session.chdir(work)
        start = time.monotonic()
        # One torch thread per worker: the workers are the parallelism.
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        session.run("mutmut", "run", f"--max-children={jobs}", env=env)
        _run_spawning_tests(session, work, tests, jobs)
        seconds = time.monotonic() - start
        (work / "seconds.txt").write_text(f"{seconds:.0f}")
        section, killed, total = _mutation_section(session, key, globs, tests, work, seconds)
        session.chdir(root)
        _write_mutation_report(report, {key: section})
        session.log(
            f"mutation {key}: {killed}/{total} killed, {seconds:.0f} s -> {MUTATION_REPORT}"
        )
