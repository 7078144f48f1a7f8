"""The container image: built from the Dockerfile with buildah, then run.

The verified recipe of shared/reference/containers.md: buildah with chroot isolation
and the vfs storage driver, on a local Debian base made by debootstrap (no registry
is reachable). The base is cached between runs: as an image in the container
storage and as a rootfs tarball under ``ORGSYNC_IMAGE_CACHE`` (default
``/var/cache/orgsync-test-base`` as root, else ``~/.cache/orgsync-test-base``).
Cold (no base yet) this takes a few minutes, warm about one.

Missing tools fail the test with the command that installs them; ``bash tests/run``
installs them (tests/debian-packages.txt).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orgsync import __version__

# cold, the fixture debootstraps a base first: minutes, more on a slow mirror
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/orgsync-test-base:bookworm-1"
"""The debootstrapped base; bump the tag when its package list changes."""
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
IMAGE = "localhost/orgsync:test"
TOOLS = {"buildah": "buildah", "podman": "podman", "debootstrap": "debootstrap"}
CA = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_CONF = Path("/etc/pip.conf")


def _cache_dir() -> Path:
    env = os.environ.get("ORGSYNC_IMAGE_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/orgsync-test-base")
    return Path.home() / ".cache" / "orgsync-test-base"


class Containers:
    """buildah / podman with vfs storage and a containers.conf without default ulimits."""

    def __init__(self, conf_dir: Path) -> None:
        conf = conf_dir / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.timings: dict[str, float] = {}
        self.sizes: dict[str, float] = {}

    def run(self, *cmd: str, timeout: float = 900, input_: bytes | None = None,
            step: str | None = None) -> str:
        """Run ``cmd``; fail the test with its output when it fails."""
        started = time.monotonic()
        r = subprocess.run(list(cmd), env=self.env, capture_output=True, timeout=timeout,
                           input=input_, check=False, cwd=ROOT)
        if step:
            self.timings[step] = round(time.monotonic() - started, 1)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd[:6])} … failed ({r.returncode}):\n"
                        f"{r.stdout.decode(errors='replace')[-3000:]}\n"
                        f"{r.stderr.decode(errors='replace')[-3000:]}")
        return r.stdout.decode(errors="replace")

    def buildah(self, *args: str, **kw: object) -> str:
        return self.run("buildah", "--storage-driver=vfs", *args, **kw)  # type: ignore[arg-type]

    def image_exists(self, name: str) -> bool:
        r = subprocess.run(["podman", "--storage-driver=vfs", "image", "exists", name],
                           env=self.env, capture_output=True, check=False)
        return r.returncode == 0


def ensure_base(c: Containers) -> None:
    """The debootstrapped base image, from storage, else the cached tarball, else built."""
    if c.image_exists(BASE):
        c.timings["base"] = 0.0
        return
    started = time.monotonic()
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{BASE.rsplit(':', 1)[1]}.tar"
    if not tarball.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            rootfs = Path(tmp) / "rootfs"
            c.run("debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
                  str(rootfs), timeout=1200)
            # apt's package lists and caches are of no use in the image
            for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
            partial = tarball.with_suffix(".partial")
            c.run("tar", "-C", str(rootfs), "-cf", str(partial), ".")
            partial.rename(tarball)
    c.run("podman", "--storage-driver=vfs", "import", str(tarball), BASE, timeout=600)
    c.timings["base"] = round(time.monotonic() - started, 1)


@pytest.fixture(name="containers", scope="module")
def _containers(tmp_path_factory: pytest.TempPathFactory) -> Containers:
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run the suite with `bash tests/run`, which "
                    f"installs tests/debian-packages.txt (or apt-get install {' '.join(missing)})")
    return Containers(tmp_path_factory.mktemp("containers"))


@pytest.fixture(name="image", scope="module")
def _image(containers: Containers) -> Iterator[str]:
    """The orgsync image, built from the repo's Dockerfile on the cached local base."""
    c = containers
    ensure_base(c)
    secrets = ["--secret", f"id=ca,src={CA}"] if CA.exists() else []
    if PIP_CONF.exists():
        secrets += ["--secret", f"id=pipconf,src={PIP_CONF}"]
    c.buildah("bud", "--isolation", "chroot", "--network", "host", "--format", "docker",
              *secrets, "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, ".",
              timeout=1200, step="build")
    c.sizes = {name: _image_size(c, name) for name in (BASE, IMAGE)}
    yield IMAGE
    # the base stays (it is the cache); the app image and its leftovers go
    subprocess.run(["buildah", "--storage-driver=vfs", "rmi", "-f", IMAGE], env=c.env,
                   capture_output=True, check=False)
    subprocess.run(["buildah", "--storage-driver=vfs", "rmi", "--prune"], env=c.env,
                   capture_output=True, check=False)
    print(f"\nimage timings (s): {json.dumps(c.timings)}; sizes (MB): {json.dumps(c.sizes)}")


def _image_size(c: Containers, name: str) -> float:
    """The image's size in MB, as podman reports it."""
    out = c.run("podman", "--storage-driver=vfs", "image", "inspect", "--format", "{{.Size}}",
                name)
    return round(int(out.strip()) / 1e6, 1)


def run_in(c: Containers, image: str, *args: str, timeout: float = 600) -> str:
    """``args`` run as the image's entrypoint user inside a fresh container; its output."""
    ctr = c.buildah("from", image).strip().splitlines()[-1]
    try:
        return c.buildah("run", "--isolation", "chroot", "--network", "host", ctr, "--", *args,
                         timeout=timeout)
    finally:
        subprocess.run(["buildah", "--storage-driver=vfs", "rm", ctr], env=c.env,
                       capture_output=True, check=False)


class TestImage:
    def test_image_config_is_a_non_root_daemon_with_a_healthcheck(self, containers: Containers,
                                                                  image: str) -> None:
        """Entrypoint orgsync, default command daemon, non-root, ledger volume, healthcheck."""
        info = json.loads(containers.buildah("inspect", "--type", "image", image))
        cfg = info["Docker"]["config"]
        assert cfg["Entrypoint"] == ["orgsync"]
        assert cfg["Cmd"] == ["daemon"]
        assert cfg["User"] == "orgsync"
        assert "/var/lib/orgsync" in (cfg.get("Volumes") or {})
        assert "ORGSYNC_CONFIG=/etc/orgsync/orgsync.yaml" in cfg["Env"]
        health = cfg["Healthcheck"]["Test"]
        assert health[0] == "CMD"
        assert "/healthz" in health[-1]
        # small: what orgsync adds to the base (a venv, no compiler, no caches) stays modest
        added = containers.sizes[image] - containers.sizes[BASE]
        assert 0 < added < 120, f"the image adds {added} MB to its base"

    def test_version_runs_inside_as_the_orgsync_user(self, containers: Containers,
                                                     image: str) -> None:
        """`orgsync --version` works in the image, run as the unprivileged user."""
        assert run_in(containers, image, "orgsync", "--version").strip() == \
            f"orgsync {__version__}"
        assert run_in(containers, image, "id", "-un").strip() == "orgsync"

    def test_demo_runs_inside(self, containers: Containers, image: str) -> None:
        """The demo (sandbox, two weeks of changes) completes inside the image."""
        out = run_in(containers, image, "orgsync", "demo", "--fast", timeout=600)
        assert "Week 2 again" in out
        assert "Feishu now holds" in out
