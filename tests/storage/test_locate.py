"""``--mirror`` values to stores, and the AWS settings read as every S3 tool reads them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from pipdepot.errors import ConfigError
from pipdepot.storage.aws import AwsSettings, aws_settings
from pipdepot.storage.filesystem import FilesystemStore
from pipdepot.storage.locate import open_store, parse_s3_location
from pipdepot.storage.s3 import S3Store
from pipdepot.storage.store import StoreKey

if TYPE_CHECKING:
    from pathlib import Path

    from tests.seaweed import Seaweed


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://mirror", ("mirror", "")),
        ("s3://mirror/", ("mirror", "")),
        ("s3://mirror/pypi", ("mirror", "pypi")),
        ("s3://my.mirror-1/pypi/main/", ("my.mirror-1", "pypi/main")),
    ],
)
def test_s3_locations(location: str, expected: tuple[str, str]) -> None:
    assert parse_s3_location(location) == expected


@pytest.mark.parametrize(
    "location",
    [
        "s3://",
        "s3:///prefix",
        "s3://ab",
        "s3://Upper/prefix",
        "s3://under_score",
        "s3://user@bucket/prefix",
        "s3://bucket/a//b",
        "s3://bucket/a/../b",
        "s3://bucket/p?versionId=1",
        "s3://bucket/p#frag",
        "gs://bucket/prefix",
        "",
    ],
)
def test_malformed_locations_are_one_line_config_errors(location: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(location, environ={"HOME": str(tmp_path)})
    assert "\n" not in str(caught.value)
    assert repr(location) in str(caught.value) or not location


def test_a_path_is_a_filesystem_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "mirror"), environ={})
    assert isinstance(store, FilesystemStore)
    assert store.root == tmp_path / "mirror"


def test_an_s3_stores_spool_defaults_to_the_users_cache(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path / "home"), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    store = open_store("s3://mirror/pypi", environ=environ)
    assert isinstance(store, S3Store)
    assert store.location == "s3://mirror/pypi"
    spool = store.spool_directory()
    assert spool.is_relative_to(tmp_path / "home" / ".cache" / "pipdepot" / "mirror")
    other = open_store("s3://mirror/other", environ=environ)
    assert other.spool_directory().parent != spool.parent
    xdg = open_store("s3://mirror/pypi", environ={**environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert xdg.spool_directory().is_relative_to(tmp_path / "xdg" / "pipdepot" / "mirror")
    chosen = open_store("s3://mirror/pypi", environ=environ, scratch=tmp_path / "mine")
    assert chosen.spool_directory().parent == tmp_path / "mine"
    for opened in (store, other, xdg, chosen):
        asyncio.run(opened.close())


def write_aws_files(home: Path, credentials: str, config: str) -> None:
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(credentials)
    (home / ".aws" / "config").write_text(config)


def test_variables_beat_the_profile_in_the_aws_files(tmp_path: Path) -> None:
    write_aws_files(
        tmp_path,
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n"
        "[ci]\naws_access_key_id = CIKEY\naws_secret_access_key = CISECRET\naws_session_token = CITOKEN\n",
        "[default]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:8333\n"
        "[profile ci]\nregion = eu-north-1\ns3 =\n  addressing_style = path\n",
    )
    assert aws_settings({}, tmp_path) == AwsSettings(
        "eu-west-1", "http://127.0.0.1:8333", "FILEKEY", "FILESECRET", None
    )
    ci = aws_settings({"AWS_PROFILE": "ci"}, tmp_path)
    assert (ci.region, ci.endpoint, ci.access_key_id, ci.session_token) == (
        "eu-north-1",
        None,
        "CIKEY",
        "CITOKEN",
    )
    environ = {
        "AWS_PROFILE": "ci",
        "AWS_ACCESS_KEY_ID": "ENVKEY",
        "AWS_SECRET_ACCESS_KEY": "ENVSECRET",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    }
    assert aws_settings(environ, tmp_path) == AwsSettings(
        "us-west-2", "http://127.0.0.1:9000", "ENVKEY", "ENVSECRET", None
    )
    both = {**environ, "AWS_REGION": "ap-south-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9001"}
    assert (aws_settings(both, tmp_path).region, aws_settings(both, tmp_path).endpoint) == (
        "ap-south-1",
        "http://127.0.0.1:9001",
    )
    assert "SECRET" not in repr(aws_settings(environ, tmp_path))


def test_no_files_no_variables_is_aws_defaults(tmp_path: Path) -> None:
    assert aws_settings({}, tmp_path) == AwsSettings()


def test_a_missing_profile_or_a_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AWS profile 'nope'"):
        aws_settings({"AWS_PROFILE": "nope"}, tmp_path)
    write_aws_files(tmp_path, "not an ini file\n", "")
    with pytest.raises(ConfigError, match="cannot read the AWS file") as caught:
        aws_settings({}, tmp_path)
    assert "\n" not in str(caught.value)


def test_an_s3_mirror_reached_through_the_aws_files_alone(seaweed: Seaweed, tmp_path: Path) -> None:
    """No AWS variable at all: endpoint, region and keys from ~/.aws, as the AWS CLI would take them."""
    write_aws_files(
        tmp_path,
        f"[mirror]\naws_access_key_id = {seaweed.access_key}\naws_secret_access_key = {seaweed.secret_key}\n",
        f"[profile mirror]\nregion = us-east-1\nendpoint_url = {seaweed.endpoint}\n",
    )

    async def main() -> None:
        store = open_store(seaweed.location(), environ={"HOME": str(tmp_path), "AWS_PROFILE": "mirror"})
        await store.put(StoreKey("six/index.html"), b"<html></html>", create=True)
        assert await store.read(StoreKey("six/index.html")) == b"<html></html>"
        assert await store.children("") == ("six",)
        await store.close()

    asyncio.run(main())
