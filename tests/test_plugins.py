"""Third-party environments arrive through the `swirl.envs` entry-point group; the registry type under it.

The plugins here are real `importlib.metadata` distributions (a dist-info folder with METADATA and
entry_points.txt) put on sys.path, exactly what `pip install` leaves behind. Plugins installed before
`import swirl_envs` run in a fresh interpreter; those installed after it load when their ids are asked for.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest
from support import install_fake_distribution

import swirl_envs
from swirl_envs import lazy_registry, registry
from swirl_envs.errors import SwirlError, UnknownNameError
from swirl_envs.lazy_registry import LazyRegistry

GOOD_MODULE = '''
import swirl_envs
from swirl_envs import Benchmark, Transition


class Echo(Benchmark):
    name = "acme-echo"
    splits = ("test",)

    def _load(self, split):
        for i in range(3):
            yield Transition(f"count {i}", f"count {i + 1}", "increment", "ep0", i)


IMPORTED = True


def register():
    swirl_envs.register_benchmark("acme-echo", "acme_swirl:Echo", env_id="acme/Echo-v0", source="acme-swirl")
'''


BROKEN_ERROR = "RuntimeError: missing native library libfoo.so"


def install_plugins(root):
    install_fake_distribution(root, "acme-swirl", "1.2.0", "acme_swirl", GOOD_MODULE, "swirl.envs", "acme",
                              "acme_swirl:register")
    install_fake_distribution(root, "broken-swirl", "0.0.1", "broken_swirl",
                              "raise RuntimeError('missing native library libfoo.so')\n", "swirl.envs", "broken",
                              "broken_swirl:register")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    install_plugins(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(lazy_registry, "_PLUGIN_STATUS", {})
    yield
    for name in ("acme_swirl", "broken_swirl"):
        sys.modules.pop(name, None)
    registry.BENCHMARKS.unregister("acme-echo")
    gym.registry.pop("acme/Echo-v0", None)


def test_listing_reads_metadata_without_importing(plugins):
    found = {p.name: p for p in swirl_envs.discover_plugins()}
    assert found["acme"].distribution == "acme-swirl" and found["acme"].version == "1.2.0"
    assert found["acme"].status == "not loaded"
    assert "acme_swirl" not in sys.modules and "broken_swirl" not in sys.modules


def test_plugin_env_is_built_and_broken_plugin_is_reported(plugins):
    env = swirl_envs.make("acme/Echo-v0")  # loads only the plugin owning the namespace
    obs, info = env.reset(seed=0)
    assert obs == "count 0" and "broken_swirl" not in sys.modules
    statuses = {p.name: p for p in swirl_envs.load_plugins()}
    assert statuses["acme"].status == "loaded"
    broken = statuses["broken"]
    assert broken.status == "failed" and broken.distribution == "broken-swirl"
    assert "RuntimeError: missing native library libfoo.so" in broken.error
    # Built-ins are untouched, and the plugin's benchmark is reachable by name.
    assert "textphysics" in swirl_envs.benchmark_names()
    assert [t.state for t in swirl_envs.make_benchmark("acme-echo")] == ["count 0", "count 1", "count 2"]
    assert gym.make("acme/Echo-v0").reset(seed=1)[0] == "count 0"


def test_an_id_of_a_broken_plugin_names_its_error(plugins):
    with pytest.raises(SwirlError) as caught:
        swirl_envs.make("broken/Anything-v0")
    assert str(caught.value) == ("env id 'broken/Anything-v0': swirl.envs plugin 'broken' from broken-swirl 0.0.1 "
                                 f"failed to load: {BROKEN_ERROR}")
    with pytest.raises(UnknownNameError, match="unknown env id 'nobody/Echo-v0'; known: .*swirl/TextPhysics-v0"):
        swirl_envs.make("nobody/Echo-v0")


def test_a_failing_register_function_is_recorded(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, "half-swirl", "3.0", "half_swirl",
                              "def register():\n    raise ValueError('no data folder')\n", "swirl.envs", "half",
                              "half_swirl:register")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(lazy_registry, "_PLUGIN_STATUS", {})
    try:
        with pytest.raises(SwirlError, match="half-swirl 3.0 failed to load: ValueError: no data folder"):
            swirl_envs.make("half/Echo-v0")
        assert "textphysics" in swirl_envs.benchmark_names()
    finally:
        sys.modules.pop("half_swirl", None)


def run_fresh(code: str, plugin_dir) -> subprocess.CompletedProcess:
    """`code` in a new interpreter that sees the plugins of `plugin_dir` from its start (as installed ones)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_gymnasium_make_builds_installed_plugin_envs_after_import_swirl_envs(tmp_path):
    install_plugins(tmp_path)
    proc = run_fresh("""
        import gymnasium, swirl_envs
        env = gymnasium.make("acme/Echo-v0")
        print(env.reset(seed=0)[0], swirl_envs.get_spec("acme-echo").source)
        try:
            swirl_envs.make("broken/Echo-v0")
        except swirl_envs.SwirlError as exc:
            print(exc)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["count 0 acme-swirl", "env id 'broken/Echo-v0': swirl.envs plugin 'broken' "
                                        f"from broken-swirl 0.0.1 failed to load: {BROKEN_ERROR}"]
    # The broken plugin is named once, in one line, when swirl_envs is imported; nothing else is printed.
    assert proc.stderr.splitlines() == [f"swirl.envs plugin 'broken' from broken-swirl 0.0.1 failed to load: "
                                        f"{BROKEN_ERROR}"]


# ---------------------------------------------------------------- the registry type


def test_lazy_registry_imports_on_first_use_and_names_the_known_ones(tmp_path, monkeypatch):
    (tmp_path / "lazy_thing.py").write_text("class Thing:\n    class Inner:\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    things: LazyRegistry[type] = LazyRegistry("thing")
    things.register("outer", "lazy_thing:Thing")
    things.register("inner", "lazy_thing:Thing.Inner")
    things.register("builtin", dict)
    try:
        assert things.names() == ["builtin", "inner", "outer"] and "lazy_thing" not in sys.modules
        assert things.get("inner") is sys.modules["lazy_thing"].Thing.Inner
        assert things.entry("outer").source == "lazy_thing" and things.entry("builtin").source == "builtins"
        things.register("outer", "lazy_thing:Thing")  # the same target again is a no-op
        with pytest.raises(SwirlError, match="thing 'builtin' is already registered by builtins"):
            things.register("builtin", list)
        things.register("builtin", list, override=True)
        assert things.get("builtin") is list
        with pytest.raises(UnknownNameError, match="unknown thing 'outr'; known: builtin, inner, outer"):
            things.get("outr")
    finally:
        sys.modules.pop("lazy_thing", None)


def test_lazy_registry_checks_objects_when_registered_and_when_imported():
    def only_classes(name, obj):
        if not isinstance(obj, type):
            raise SwirlError(f"{name} must be a class")

    classes: LazyRegistry[type] = LazyRegistry("class", check=only_classes)
    with pytest.raises(SwirlError, match="len must be a class"):
        classes.register("len", len)
    classes.register("path-join", "os.path:join")  # not vetted until it is imported
    with pytest.raises(SwirlError, match="path-join must be a class"):
        classes.get("path-join")
