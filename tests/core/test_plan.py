"""Table tests of settings -> mirror plan: every variable, combinations, the seed's example, the defects."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

import pytest
from pypi_simple import PYPI_SIMPLE_ENDPOINT

from pipdepot.element.buildroot import (
    render_files,
    render_pip_conf,
    render_pydistutils_cfg,
    render_uv_toml,
)
from pipdepot.element.plan import MirrorPlan, MirrorState, build_plan
from pipdepot.errors import ConfigError
from pipdepot.settings import PlanFlags, Settings, load_settings

PUBLIC = str(PYPI_SIMPLE_ENDPOINT)
LOCAL = "file:///tmp/pypi"
HOME = {"HOME": "/home/builder"}


def settings_for(env: dict[str, str], flags: PlanFlags | None = None) -> Settings:
    return load_settings(flags or PlanFlags(), {**HOME, **env})


def plan_for(
    env: dict[str, str], flags: PlanFlags | None = None, state: MirrorState = MirrorState.READY
) -> MirrorPlan:
    return build_plan(settings_for(env, flags).plan, mirror_state=state)


# (id, environment, index-url, extra-index-urls, trusted hosts)
CASES: list[tuple[str, dict[str, str], str, tuple[str, ...], tuple[str, ...]]] = [
    ("nothing set: local mirror, public index after it", {}, LOCAL, (PUBLIC,), ()),
    ("DIB_OFFLINE drops the public index", {"DIB_OFFLINE": "1"}, LOCAL, (), ()),
    ("DIB_NO_PYPI_PIP drops the public index", {"DIB_NO_PYPI_PIP": "yes"}, LOCAL, (), ()),
    ("dib exports DIB_OFFLINE empty by default: online", {"DIB_OFFLINE": ""}, LOCAL, (PUBLIC,), ()),
    (
        "https primary is never trusted (defect 7)",
        {"DIB_PYPI_MIRROR_URL": "https://mirror.example:8443/pypi/simple"},
        "https://mirror.example:8443/pypi/simple",
        (PUBLIC,),
        (),
    ),
    (
        "the seed's typical use",
        {
            "DIB_PYPI_MIRROR_URL": "http://site/pypi/Ubuntu-13.10",
            "DIB_PYPI_MIRROR_URL_1": "http://site/pypi/",
            "DIB_PYPI_MIRROR_URL_2": LOCAL,
            "DIB_PIP_RETRIES": "0",
        },
        "http://site/pypi/Ubuntu-13.10",
        ("http://site/pypi/", LOCAL, PUBLIC),
        ("site",),
    ),
    (
        "_N in numeric order: _10 after _2 (defect 3)",
        {
            "DIB_PYPI_MIRROR_URL": "http://a/",
            "DIB_PYPI_MIRROR_URL_1": "http://b1/",
            "DIB_PYPI_MIRROR_URL_10": "http://b10/",
            "DIB_PYPI_MIRROR_URL_2": "http://b2/",
            "DIB_NO_PYPI_PIP": "1",
        },
        "http://a/",
        ("http://b1/", "http://b2/", "http://b10/"),
        ("a", "b1", "b2", "b10"),
    ),
    (
        "_N without a primary still counts (defect 5)",
        {"DIB_PYPI_MIRROR_URL_1": "http://only-extra/", "DIB_PYPI_MIRROR_URL_2": "http://second/"},
        "http://only-extra/",
        ("http://second/", PUBLIC),
        ("only-extra", "second"),
    ),
    (
        "legacy primary stays primary beside DIB _N (defect 4)",
        {
            "PYPI_MIRROR_URL": "http://legacy/",
            "PYPI_MIRROR_URL_1": "http://legacy1/",
            "DIB_PYPI_MIRROR_URL_1": "http://dib1/",
        },
        "http://legacy/",
        ("http://dib1/", "http://legacy1/", PUBLIC),
        ("legacy", "dib1", "legacy1"),
    ),
    (
        "DIB family before the legacy one when both have a base",
        {
            "DIB_PYPI_MIRROR_URL": "http://dib/",
            "PYPI_MIRROR_URL": "http://legacy/",
            "DIB_OFFLINE": "1",
        },
        "http://dib/",
        ("http://legacy/",),
        ("dib", "legacy"),
    ),
    (
        "every http host is trusted, with its port (defect 7)",
        {
            "DIB_PYPI_MIRROR_URL": "http://m1:3141/root/pypi/+simple/",
            "DIB_PYPI_MIRROR_URL_1": "http://wheels/",
        },
        "http://m1:3141/root/pypi/+simple/",
        ("http://wheels/", PUBLIC),
        ("m1:3141", "wheels"),
    ),
    (
        "empty _N makes no blank entry (defect 5)",
        {"DIB_PYPI_MIRROR_URL": "http://a/", "DIB_PYPI_MIRROR_URL_1": "", "DIB_OFFLINE": "1"},
        "http://a/",
        (),
        ("a",),
    ),
    (
        "the public index listed as a mirror is not added twice",
        {"DIB_PYPI_MIRROR_URL": "http://a/", "DIB_PYPI_MIRROR_URL_1": PUBLIC},
        "http://a/",
        (PUBLIC,),
        ("a",),
    ),
    (
        "PIPDEPOT_MIRROR_URLS wins over DIB_*",
        {
            "PIPDEPOT_MIRROR_URLS": "http://p1/ http://p2/",
            "DIB_PYPI_MIRROR_URL": "http://dib/",
            "DIB_OFFLINE": "1",
        },
        "http://p1/",
        ("http://p2/",),
        ("p1", "p2"),
    ),
    (
        "PIPDEPOT_OFFLINE=0 wins over DIB_OFFLINE=1",
        {"PIPDEPOT_OFFLINE": "0", "DIB_OFFLINE": "1"},
        LOCAL,
        (PUBLIC,),
        (),
    ),
    ("PIPDEPOT_NO_PYPI=true", {"PIPDEPOT_NO_PYPI": "true"}, LOCAL, (), ()),
]


@pytest.mark.parametrize(
    ("env", "index", "extras", "trusted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan_table(
    env: dict[str, str], index: str, extras: tuple[str, ...], trusted: tuple[str, ...]
) -> None:
    plan = plan_for(env)
    assert plan.index_url == index
    assert plan.extra_index_urls == extras
    assert plan.trusted_hosts == trusted


def test_seed_typical_use_renders_pip_conf_and_easy_install() -> None:
    plan = plan_for(
        {
            "DIB_PYPI_MIRROR_URL": "http://site/pypi/Ubuntu-13.10",
            "DIB_PYPI_MIRROR_URL_1": "http://site/pypi/",
            "DIB_PYPI_MIRROR_URL_2": LOCAL,
            "DIB_PIP_RETRIES": "0",
        }
    )
    pip_conf = configparser.RawConfigParser()
    pip_conf.read_string(render_pip_conf(plan))
    assert pip_conf.get("global", "index-url") == "http://site/pypi/Ubuntu-13.10"
    assert pip_conf.get("global", "extra-index-url").split() == ["http://site/pypi/", LOCAL, PUBLIC]
    assert pip_conf.get("global", "trusted-host").split() == ["site"]
    assert pip_conf.get("global", "retries") == "0"
    assert not pip_conf.has_option("global", "timeout")
    distutils = configparser.RawConfigParser()
    distutils.read_string(render_pydistutils_cfg(plan))
    assert distutils.get("easy_install", "index_url") == LOCAL  # the last listed mirror
    assert not distutils.has_option("easy_install", "allow_hosts")


def test_uv_toml_keeps_order_and_marks_the_last_index_default() -> None:
    plan = plan_for({"DIB_PYPI_MIRROR_URL": "http://a/", "DIB_PYPI_MIRROR_URL_1": "http://b/"})
    uv = tomllib.loads(render_uv_toml(plan))
    assert uv["index-strategy"] == "first-index"
    assert [i["url"] for i in uv["index"]] == ["http://a/", "http://b/", PUBLIC]
    assert [i.get("default", False) for i in uv["index"]] == [False, False, True]
    assert "allow-insecure-host" not in uv  # plain http needs no flag in uv


def test_uv_offline_marks_the_last_mirror_default_so_uv_never_adds_pypi() -> None:
    plan = plan_for({"DIB_PYPI_MIRROR_URL": "http://a/", "DIB_OFFLINE": "1"})
    uv = tomllib.loads(render_uv_toml(plan))
    assert uv["index"] == [{"url": "http://a/", "default": True}]


def test_trusted_https_host_only_when_asked() -> None:
    env = {
        "DIB_PYPI_MIRROR_URL": "https://secure.example/simple/",
        "DIB_PYPI_TRUSTED_HOST": "secure.example",
    }
    plan = plan_for(env)
    assert plan.trusted_hosts == ("secure.example",)
    assert plan.insecure_hosts == ("secure.example",)
    assert tomllib.loads(render_uv_toml(plan))["allow-insecure-host"] == ["secure.example"]


def test_notes_say_what_the_seed_did_silently() -> None:
    plan = plan_for(
        {
            "DIB_PYPI_MIRROR_URL_1": "http://x/",
            "PYPI_MIRROR_URL_2": "http://y/",
            "DIB_PYPI_MIRROR_URL_3": "",
            "DIB_PYPI_MIRROR_URLX": "http://ignored/",
        }
    )
    notes = "\n".join(plan.notes)
    assert "DIB_PYPI_MIRROR_URL is not set: DIB_PYPI_MIRROR_URL_1 is the primary index" in notes
    assert "deprecated" in notes
    assert "DIB_PYPI_MIRROR_URL_3 is empty and ignored" in notes
    assert "DIB_PYPI_MIRROR_URLX is ignored" in notes
    assert "http://ignored/" not in plan.indexes


@pytest.mark.parametrize("name", ["DIB_OFFLINE", "DIB_NO_PYPI_PIP"])
def test_dib_flags_follow_diskimage_builder_any_non_empty_value(name: str) -> None:
    plan = plan_for({name: "0"})
    assert PUBLIC not in plan.indexes
    assert any(f"{name}='0' counts as set" in note for note in plan.notes)


def test_retries_and_timeout() -> None:
    plan = plan_for({"DIB_PIP_RETRIES": "3", "DIB_PIP_TIMEOUT": "60"})
    assert (plan.retries, plan.timeout) == (3, 60.0)
    pip_conf = configparser.RawConfigParser()
    pip_conf.read_string(render_pip_conf(plan))
    assert (pip_conf.get("global", "retries"), pip_conf.get("global", "timeout")) == ("3", "60")
    assert plan_for({"DIB_PIP_RETRIES": ""}).retries is None  # empty is unset, not "retries = "


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DIB_PIP_RETRIES": "many"}, "DIB_PIP_RETRIES: 'many' is not a number of retries"),
        ({"DIB_PIP_RETRIES": "-1"}, "DIB_PIP_RETRIES: '-1' is not a number of retries"),
        ({"PIPDEPOT_RETRIES": "x"}, "PIPDEPOT_RETRIES: 'x' is not a number"),
        ({"DIB_PIP_TIMEOUT": "0"}, "DIB_PIP_TIMEOUT: '0' is not a timeout"),
        (
            {"DIB_PYPI_MIRROR_URL": "ftp://mirror/"},
            "DIB_PYPI_MIRROR_URL: 'ftp://mirror/' is not an http, https or file",
        ),
        (
            {"DIB_PYPI_MIRROR_URL_2": "mirror.example"},
            "DIB_PYPI_MIRROR_URL_2: 'mirror.example' is not an http",
        ),
        ({"PYPI_MIRROR_URL": "http:///nohost"}, "PYPI_MIRROR_URL: 'http:///nohost' has no host"),
        ({"PIPDEPOT_OFFLINE": "maybe"}, "PIPDEPOT_OFFLINE: 'maybe' is not a boolean"),
        (
            {"PIPDEPOT_UV_INDEX_STRATEGY": "merge"},
            "PIPDEPOT_UV_INDEX_STRATEGY: 'merge' is not one of",
        ),
        (
            {"PIPDEPOT_PUBLIC_INDEX": "gopher://x/"},
            "PIPDEPOT_PUBLIC_INDEX: 'gopher://x/' is not an http",
        ),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_for(env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_url_credentials_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_for({"DIB_PYPI_MIRROR_URL": "ftp://user:hunter2@mirror/"})
    assert "hunter2" not in str(caught.value)


def test_precedence_flag_over_pipdepot_over_dib_over_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('mirror-urls = ["http://config/"]\nretries = 7\nmirror-dir = "/from/config"\n')
    env = {"PIPDEPOT_CONFIG": str(config)}
    assert plan_for(env).index_url == "http://config/"
    assert plan_for(env).retries == 7
    env |= {
        "DIB_PYPI_MIRROR_URL": "http://dib/",
        "DIB_PIP_RETRIES": "2",
        "DIB_IMAGE_CACHE": "/dib/cache",
    }
    plan = plan_for(env)
    assert (plan.index_url, plan.retries, plan.mirror_dir) == (
        "http://dib/",
        2,
        Path("/dib/cache/pypi/mirror"),
    )
    assert plan.inputs.retries.source == "DIB_PIP_RETRIES"
    env |= {
        "PIPDEPOT_MIRROR_URLS": "http://env/",
        "PIPDEPOT_RETRIES": "1",
        "PIPDEPOT_MIRROR_DIR": "/env/mirror",
    }
    plan = plan_for(env)
    assert (plan.index_url, plan.retries, plan.mirror_dir) == (
        "http://env/",
        1,
        Path("/env/mirror"),
    )
    flags = PlanFlags(mirror_urls=("http://flag/",), retries="0", mirror_dir="/flag/mirror")
    plan = plan_for(env, flags)
    assert (plan.index_url, plan.retries, plan.mirror_dir) == (
        "http://flag/",
        0,
        Path("/flag/mirror"),
    )
    assert plan.inputs.mirror_urls[0].source == "flag --mirror-url"


def test_mirror_dir_default_follows_dib_image_cache_and_xdg() -> None:
    assert plan_for({}).mirror_dir == Path("/home/builder/.cache/image-create/pypi/mirror")
    assert plan_for({"XDG_CACHE_HOME": "/xdg"}).mirror_dir == Path("/xdg/image-create/pypi/mirror")
    assert plan_for({"DIB_IMAGE_CACHE": "/c"}).mirror_dir == Path("/c/pypi/mirror")


def test_config_file_errors(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("mirror_url = 'http://x/'\n")
    with pytest.raises(ConfigError, match="unknown key 'mirror_url'"):
        settings_for({}, PlanFlags(config=str(bad_key)))
    with pytest.raises(ConfigError, match="does not exist"):
        settings_for({"PIPDEPOT_CONFIG": str(tmp_path / "missing.toml")})
    wrong_type = tmp_path / "type.toml"
    wrong_type.write_text("offline = 'perhaps'\n")
    with pytest.raises(ConfigError, match=r"type.toml \(offline\): 'perhaps' is not a boolean"):
        settings_for({}, PlanFlags(config=str(wrong_type)))


def test_default_config_file_is_read_from_xdg_config_home(tmp_path: Path) -> None:
    (tmp_path / "pipdepot").mkdir()
    (tmp_path / "pipdepot" / "config.toml").write_text("offline = true\n")
    plan = plan_for({"XDG_CONFIG_HOME": str(tmp_path)})
    assert plan.extra_index_urls == ()
    assert plan.inputs.offline.source.startswith("config file")


def test_credentials_make_files_private() -> None:
    plan = plan_for({"DIB_PYPI_MIRROR_URL": "https://user:secret@private.example/simple/"})
    assert plan.secret
    assert {f.mode for f in render_files(plan)} == {0o600}
    assert plan_for({}).secret is False
    assert {f.mode for f in render_files(plan_for({}))} == {0o644}


@pytest.mark.parametrize(
    ("state", "warned"),
    [
        (MirrorState.MISSING, "does not exist"),
        (MirrorState.EMPTY, "holds no project"),
        (MirrorState.READY, None),
    ],
)
def test_local_mirror_state_is_warned(state: MirrorState, warned: str | None) -> None:
    plan = plan_for({}, state=state)
    assert plan.mounts_mirror is (state is not MirrorState.MISSING)
    if warned is None:
        assert plan.warnings == ()
    else:
        assert any(warned in w for w in plan.warnings)


def test_host_index_variables_are_reported() -> None:
    settings = settings_for({"PIP_INDEX_URL": "http://corp/", "UV_INDEX": "x", "PIP_CERT": "/c"})
    assert settings.host_index_env == ("PIP_INDEX_URL", "UV_INDEX")
