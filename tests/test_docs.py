"""Documentation that is generated or cited stays true: every "docs/algorithm.md section N" in the
code and README names a real section, and the README's config table is exactly what
``python -m mjx_qvpo.train --config configs/base.py --print-config --markdown`` prints."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGORITHM = os.path.join(ROOT, "docs", "algorithm.md")
TABLE_START, TABLE_END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def _sources():
    for folder in ("mjx_qvpo", "configs", "envs", "tests", "scripts", "results"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith((".py", ".md", ".sh")):
                    yield os.path.join(dirpath, name)
    yield os.path.join(ROOT, "README.md")


def test_every_algorithm_reference_points_to_an_existing_section():
    headings = set(re.findall(r"^## (\d+)\. ", open(ALGORITHM).read(), flags=re.M))
    assert headings == {str(i) for i in range(1, 10)}
    cited = 0
    for path in _sources():
        text = " ".join(open(path, encoding="utf-8").read().split())  # references wrap lines
        if os.path.abspath(path) != os.path.abspath(__file__):
            assert "QVPO" + ".md" not in text, f"{path} still cites the old spec's name"
        for m in re.finditer(r"docs/algorithm\.md,? sections? (\d+)(?:(?:-| and |, )(\d+))?", text):
            for n in filter(None, m.groups()):
                assert n in headings, f"{path}: {m.group(0)!r} names no section of {ALGORITHM}"
                cited += 1
    assert cited > 20


def test_readme_config_table_is_generated_from_the_schema():
    from mjx_qvpo.config import format_config, load_config_file, resolve
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert TABLE_START in readme and TABLE_END in readme
    table = readme.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    generated = format_config(resolve(load_config_file(os.path.join(ROOT, "configs", "base.py"))),
                              markdown=True)
    assert table == generated.strip(), (
        "README's config table is stale: paste the output of python -m mjx_qvpo.train --config "
        "configs/base.py --print-config --markdown between the config-table markers")


def test_readme_test_command_is_what_ci_runs():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().strip().splitlines()[-1]
    assert "-c constraints.txt" in ci
    assert ci in open(os.path.join(ROOT, "README.md")).read()
    pins = open(os.path.join(ROOT, "constraints.txt")).read()
    for name in ("jax==", "jaxlib==", "brax==", "mujoco-mjx==", "tensorboardX=="):
        assert f"\n{name}" in pins, name
