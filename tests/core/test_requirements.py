"""Requirements files as pip writes them, read into requirements, constraints, hashes and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pipdepot.core.names import NormalizedName
from pipdepot.fill.requirements import RequirementsError, RequirementSet, read_requirements

if TYPE_CHECKING:
    from pathlib import Path

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4
SHA_UPPER = "ABCDEF0123456789" * 4


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def read_text(tmp_path: Path, text: str) -> RequirementSet:
    return read_requirements([write(tmp_path / "requirements.txt", text)])


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(RequirementsError) as caught:
        read_text(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    found = read_text(
        tmp_path,
        "# a whole-line comment\n\n   \nfoo==1.0  # pinned for a reason\n\t# indented comment\nbar\t# tab\n",
    )
    assert found.requirements == ["foo==1.0", "bar"]
    assert found.constraints == []
    assert found.hashes == {}
    assert found.notes == []


def test_a_hash_sign_inside_a_word_is_not_a_comment(tmp_path: Path) -> None:
    message = refusal(tmp_path, "bar#baz\n")
    assert message.startswith(f"{tmp_path / 'requirements.txt'}:1: 'bar#baz' is not a requirement: ")


def test_continuations_join_lines_and_keep_the_first_line_number(tmp_path: Path) -> None:
    found = read_text(
        tmp_path,
        f"first\nfoo==1.0 \\\n    --hash=sha256:{SHA_A} \\\n    --hash=sha256:{SHA_B}\nbar \\\n>=2\n",
    )
    assert found.requirements == ["first", "foo==1.0", "bar>=2"]
    assert found.hashes == {NormalizedName("foo"): {SHA_A, SHA_B}}
    message = refusal(tmp_path, "ok\nfoo==1.0 \\\n  --frobnicate=1\n")
    assert message == f"{tmp_path / 'requirements.txt'}:2: foo: unknown option '--frobnicate=1'"


def test_a_continuation_on_the_last_line_still_counts(tmp_path: Path) -> None:
    assert read_text(tmp_path, "foo \\").requirements == ["foo"]


def test_a_comment_ending_in_a_backslash_does_not_swallow_the_next_line(tmp_path: Path) -> None:
    found = read_text(tmp_path, "bar\n# see C:\\\nfoo==1.0\n")
    assert found.requirements == ["bar", "foo==1.0"]


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("foo; python_version < '3.12'", 'foo; python_version < "3.12"'),
        ('foo ; sys_platform == "win32"', 'foo; sys_platform == "win32"'),
        (
            "Foo[bar]>=1.0 ; python_version >= '3.8' and platform_machine != 'arm64'  # why",
            'Foo[bar]>=1.0; python_version >= "3.8" and platform_machine != "arm64"',
        ),
        (
            f"foo==1.0; os_name == 'posix' --hash=sha256:{SHA_A}",
            'foo==1.0; os_name == "posix"',
        ),
    ],
)
def test_markers_are_kept_with_their_quotes(tmp_path: Path, line: str, kept: str) -> None:
    assert read_text(tmp_path, line + "\n").requirements == [kept]


def test_hashes_are_collected_per_normalized_project(tmp_path: Path) -> None:
    write(tmp_path / "constraints.txt", f"my.pkg<2 --hash=sha256:{SHA_A}\nthird<3 --hash sha256:{SHA_B}\n")
    found = read_text(
        tmp_path,
        f"My_Pkg==1.0 --hash=sha256:{SHA_A} --hash sha256:{SHA_B}\n"
        f"other --hash=sha256:{SHA_UPPER}\n"
        f"-c constraints.txt\n",
    )
    assert found.requirements == ["My_Pkg==1.0", "other"]
    assert found.constraints == ["my.pkg<2", "third<3"]
    assert found.hashes == {
        NormalizedName("my-pkg"): {SHA_A, SHA_B},
        NormalizedName("other"): {SHA_UPPER.lower()},
        NormalizedName("third"): {SHA_B},
    }


def test_other_hash_algorithms_are_noted_not_checked(tmp_path: Path) -> None:
    found = read_text(tmp_path, f"foo --hash=sha512:{'b' * 128} --hash=sha256:{SHA_A}\n")
    assert found.requirements == ["foo"]
    assert found.hashes == {NormalizedName("foo"): {SHA_A}}
    assert found.notes == [
        f"{tmp_path / 'requirements.txt'}:1: foo: only sha256 hashes are checked, not sha512"
    ]


@pytest.mark.parametrize(
    "value",
    ["sha256:abc", "sha256:" + "g" * 64, "sha256:" + "a" * 65, "sha256:", "sha256"],
)
def test_an_invalid_sha256_is_refused(tmp_path: Path, value: str) -> None:
    message = refusal(tmp_path, f"ok\nfoo==1.0 --hash={value}\n")
    assert message == f"{tmp_path / 'requirements.txt'}:2: foo: '--hash={value}' is not a sha256 hash"


@pytest.mark.parametrize(
    "include",
    ["-r sub/more.txt", "-rsub/more.txt", "--requirement sub/more.txt", "--requirement=sub/more.txt"],
)
def test_nested_requirements_are_relative_to_the_including_file(tmp_path: Path, include: str) -> None:
    write(tmp_path / "sub" / "more.txt", "bar\n-r deeper.txt\n")
    write(tmp_path / "sub" / "deeper.txt", "baz\n")
    write(tmp_path / "deeper.txt", "wrong-file\n")
    found = read_text(tmp_path, f"foo\n{include}\nlast\n")
    assert found.requirements == ["foo", "bar", "baz", "last"]
    assert found.constraints == []


@pytest.mark.parametrize(
    "include", ["-c cons/c.txt", "-ccons/c.txt", "--constraint cons/c.txt", "--constraint=cons/c.txt"]
)
def test_constraints_are_kept_apart_and_everything_they_include_too(tmp_path: Path, include: str) -> None:
    write(tmp_path / "cons" / "c.txt", "bar<2\n-r more.txt\n")
    write(tmp_path / "cons" / "more.txt", "baz!=1.5\n")
    found = read_text(tmp_path, f"foo\n{include}\n")
    assert found.requirements == ["foo"]
    assert found.constraints == ["bar<2", "baz!=1.5"]


def test_a_file_included_twice_on_separate_branches_is_read_twice(tmp_path: Path) -> None:
    write(tmp_path / "common.txt", "shared\n")
    write(tmp_path / "a.txt", "-r common.txt\n")
    found = read_text(tmp_path, "-r a.txt\n-c common.txt\n")
    assert found.requirements == ["shared"]
    assert found.constraints == ["shared"]


def test_a_file_including_itself_is_refused(tmp_path: Path) -> None:
    assert (
        refusal(tmp_path, "foo\n-r requirements.txt\n") == f"{tmp_path / 'requirements.txt'}: includes itself"
    )


def test_an_include_cycle_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "b" / "b.txt", "bar\n-c ../requirements.txt\n")
    message = refusal(tmp_path, "foo\n-r b/b.txt\n")
    assert message == f"{tmp_path / 'b' / '..' / 'requirements.txt'}: includes itself"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("--editable git+https://files.invalid/repo.git#egg=thing", "editable"),
        ("../thing-1.0-py3-none-any.whl", "path"),
        ("/abs/path/thing-1.0.tar.gz", "path"),
        ("https://files.invalid/thing-1.0.tar.gz", "path"),
        ("git+https://files.invalid/repo.git#egg=thing", "path"),
        ("thing @ https://files.invalid/thing-1.0.tar.gz", "url"),
        ("thing @ file:///abs/thing-1.0.tar.gz", "url"),
    ],
)
def test_vcs_archive_and_url_lines_are_left_out_with_a_note(tmp_path: Path, line: str, kind: str) -> None:
    found = read_text(tmp_path, f"foo\n{line}\n")
    where = f"{tmp_path / 'requirements.txt'}:2"
    assert found.requirements == ["foo"]
    assert found.constraints == []
    assert found.local == []
    expected = {
        "editable": f"{where}: editable git+https://files.invalid/repo.git#egg=thing left out: "
        "not a local directory",
        "path": f"{where}: {line!r} left out: a path or URL is not an index package",
        "url": f"{where}: thing @ URL left out: not an index package",
    }[kind]
    assert found.notes == [expected]


@pytest.mark.parametrize(
    ("line", "editable"),
    [
        ("-e .", True),
        ("-e.", True),
        ("--editable=./src/thing", True),
        ("./src/thing", False),
        ("src/thing/", False),
        ("thing @ file://{root}/src/thing", False),
    ],
)
def test_path_requirements_are_local_projects_for_the_resolver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, editable: bool
) -> None:
    """A source tree on disk (pip takes relative paths from the current directory) is resolved by uv."""
    (tmp_path / "src" / "thing").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "src" / "thing" if line.startswith("-e") and "src" not in line else tmp_path)
    found = read_text(tmp_path / "reqs", f"foo\n{line.format(root=tmp_path)}\n")
    directory = tmp_path / "src" / "thing"
    assert [(p.path, p.editable) for p in found.local] == [(directory, editable)]
    assert found.requirements == ["foo", str(directory)]
    assert found.notes == []


def test_a_path_relative_to_the_requirements_file_is_found_there_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project" / "agent").mkdir(parents=True)
    monkeypatch.chdir("/")
    found = read_requirements([write(tmp_path / "project" / "reqs.txt", "./agent\n")])
    assert found.requirements == [str(tmp_path / "project" / "agent")]


def test_a_path_to_no_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert refusal(tmp_path, "./no/such/project\n").endswith(":1: ./no/such/project: no such directory")


def test_constraints_by_url_go_through_the_loader_and_include_relative_to_the_url(tmp_path: Path) -> None:
    pages = {
        "https://opendev.invalid/c/upper.txt": "lib===1.0\n-c more.txt\n",
        "https://opendev.invalid/c/more.txt": "six==1.16.0 ; python_version < '3.13'\n",
    }
    asked: list[str] = []

    def load(url: str) -> str:
        asked.append(url)
        return pages[url]

    path = write(tmp_path / "reqs.txt", "app\n-c https://opendev.invalid/c/upper.txt\n")
    found = read_requirements([path], ["https://opendev.invalid/c/more.txt"], load=load)
    assert found.requirements == ["app"]
    assert found.constraints == [
        "lib===1.0",
        'six==1.16.0; python_version < "3.13"',
        'six==1.16.0; python_version < "3.13"',
    ]
    assert asked == [*pages, "https://opendev.invalid/c/more.txt"]
    assert found.exact_constraints() == found.constraints


def test_a_url_without_a_loader_is_refused_in_one_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, "-c https://opendev.invalid/upper.txt\nfoo\n")
    assert message == "https://opendev.invalid/upper.txt: a URL cannot be read here"


def test_constraints_alone_are_enough_when_not_required(tmp_path: Path) -> None:
    found = read_requirements([], [write(tmp_path / "c.txt", "a==1\nb>=2\n")], required=False)
    assert found.requirements == []
    assert found.exact_constraints() == ["a==1"]


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("-i https://index.invalid/simple", "-i"),
        ("--index-url https://index.invalid/simple", "--index-url"),
        ("--index-url=https://index.invalid/simple", "--index-url"),
        ("--extra-index-url https://index.invalid/simple", "--extra-index-url"),
        ("--no-index", "--no-index"),
        ("-f https://files.invalid/links/", "-f"),
        ("--find-links=/srv/wheels", "--find-links"),
        ("--trusted-host index.invalid", "--trusted-host"),
        ("--pre", "--pre"),
        ("--prefer-binary", "--prefer-binary"),
        ("--only-binary :all:", "--only-binary"),
        ("--no-binary=foo", "--no-binary"),
        ("--require-hashes", "--require-hashes"),
        ("--use-feature=truststore", "--use-feature"),
        ("--config-settings key=value", "--config-settings"),
    ],
)
def test_index_and_install_options_are_left_out_with_a_note(tmp_path: Path, line: str, option: str) -> None:
    found = read_text(tmp_path, f"{line}\nfoo\n")
    assert found.requirements == ["foo"]
    assert found.notes == [
        f"{tmp_path / 'requirements.txt'}:1: {option} left out: pipdepot resolves against its upstreams"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo\n--frobnicate\n", ":2: unknown option '--frobnicate'"),
        ("foo\n--frobnicate=1\n", ":2: unknown option '--frobnicate=1'"),
        ("foo\n-x y\n", ":2: unknown option '-x'"),
        ("foo\n-r\n", ":2: -r needs a file name"),
        ("foo\n--constraint\n", ":2: --constraint needs a file name"),
        ("foo --install-option=x\n", ":1: foo: unknown option '--install-option=x'"),
    ],
)
def test_unknown_options_are_refused_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    assert refusal(tmp_path, text) == f"{tmp_path / 'requirements.txt'}{message}"


@pytest.mark.parametrize(
    ("line", "shown"),
    [("foo==", "'foo=='"), ("foo bar", "'foo bar'"), ("foo>=1 <2", "'foo>=1 <2'"), ("[extra]", "'[extra]'")],
)
def test_invalid_lines_are_refused_in_one_line_naming_file_and_line(
    tmp_path: Path, line: str, shown: str
) -> None:
    message = refusal(tmp_path, f"ok\n\n{line}\n")
    assert message.startswith(f"{tmp_path / 'requirements.txt'}:3: {shown} is not a requirement: ")


def test_an_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path / "inc" / "more.txt", "# comment\nbar>=\n")
    message = refusal(tmp_path, "foo\n-r inc/more.txt\n")
    assert message.startswith(f"{tmp_path / 'inc' / 'more.txt'}:2: 'bar>=' is not a requirement: ")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(RequirementsError) as caught:
        read_requirements([missing])
    assert str(caught.value) == f"cannot read requirements file {missing}: No such file or directory"


def test_a_missing_included_file_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "foo\n-r other.txt\n")
    assert message == f"cannot read requirements file {tmp_path / 'other.txt'}: No such file or directory"


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(RequirementsError) as caught:
        read_requirements([path])
    assert str(caught.value) == f"cannot read requirements file {path}: not UTF-8 text"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "--index-url https://index.invalid/\n"])
def test_a_file_without_requirements_is_refused(tmp_path: Path, text: str) -> None:
    empty = write(tmp_path / "empty.txt", text)
    other = write(tmp_path / "other.txt", "# nothing\n")
    with pytest.raises(RequirementsError) as caught:
        read_requirements([empty, other])
    assert str(caught.value) == f"no requirements in {empty}, {other}"


def test_constraints_alone_are_no_requirements(tmp_path: Path) -> None:
    write(tmp_path / "c.txt", "foo<2\n")
    assert refusal(tmp_path, "-c c.txt\n") == f"no requirements in {tmp_path / 'requirements.txt'}"


def test_several_files_are_read_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "a.txt", "foo\n")
    second = write(tmp_path / "b.txt", "bar\n--pre\n")
    found = read_requirements([first, second])
    assert found.requirements == ["foo", "bar"]
    assert found.notes == [f"{second}:2: --pre left out: pipdepot resolves against its upstreams"]
    assert found.label == "requirements"


def test_write_gives_the_resolver_requirements_with_constraints_beside_them(tmp_path: Path) -> None:
    found = RequirementSet(
        requirements=["foo==1.0", 'bar; sys_platform == "linux"'],
        constraints=["baz<2"],
        hashes={NormalizedName("foo"): {SHA_A}},
    )
    out = tmp_path / "out"
    out.mkdir()
    written = found.write(out)
    assert written == out / "requirements.in"
    assert written.read_text(encoding="utf-8") == (
        f'-c {out / "constraints.txt"}\nfoo==1.0\nbar; sys_platform == "linux"\n'
    )
    assert (out / "constraints.txt").read_text(encoding="utf-8") == "baz<2\n"
    assert sorted(p.name for p in out.iterdir()) == ["constraints.txt", "requirements.in"]


def test_write_without_constraints_leaves_an_empty_constraints_file(tmp_path: Path) -> None:
    written = RequirementSet(requirements=["foo"]).write(tmp_path)
    assert written.read_text(encoding="utf-8") == f"-c {tmp_path / 'constraints.txt'}\nfoo\n"
    assert (tmp_path / "constraints.txt").read_text(encoding="utf-8") == ""


def test_read_then_write_round_trips(tmp_path: Path) -> None:
    write(tmp_path / "c.txt", "bar<2 --hash=sha256:" + SHA_A + "\n")
    found = read_text(tmp_path, "foo[x]>=1; python_version >= '3.8'\n-c c.txt\n")
    out = tmp_path / "out"
    out.mkdir()
    found.write(out)
    assert (out / "requirements.in").read_text(encoding="utf-8").splitlines()[1:] == [
        'foo[x]>=1; python_version >= "3.8"'
    ]
    assert (out / "constraints.txt").read_text(encoding="utf-8") == "bar<2\n"
