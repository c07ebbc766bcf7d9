"""Juju version grammar, ordering and the major.minor filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.errors import InvalidInputError
from upgrader.versions import (
    BinaryVersion,
    SeriesFilter,
    Version,
    parse,
    parse_binary,
    parse_lenient,
    parse_major_minor,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("1.2.3.4", Version(1, 2, 3, build=4)),
        ("1.2-alpha3", Version(1, 2, 3, "alpha")),
        ("1.2-alpha3.4", Version(1, 2, 3, "alpha", 4)),
        ("2.03.1", Version(2, 3, 1)),
        ("01.0.0", Version(1, 0, 0)),
        ("000000001.2.3", Version(1, 2, 3)),
        (
            "999999999.999999999.999999999.999999999",
            Version(999999999, 999999999, 999999999, build=999999999),
        ),
    ],
)
def test_strict_forms(text: str, expected: Version) -> None:
    assert parse(text) == expected
    assert parse_lenient(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", Version(3, 0, 0)),
        ("2.02", Version(2, 2, 0)),
        ("2.2", Version(2, 2, 0)),
        ("1.2-alpha", Version(1, 2, 0, "alpha")),
    ],
)
def test_lenient_forms(text: str, expected: Version) -> None:
    assert parse_lenient(text) == expected
    with pytest.raises(InvalidInputError, match="invalid version"):
        parse(text)


def test_two_02_equals_2_2_0() -> None:
    assert parse_lenient("2.02") == parse("2.2.0")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v3.1.0",
        "3.1.x",
        " 3.1.0",
        "3.1.0 ",
        "3.1 .0",
        "3.1.0\n",
        "3.1-BETA1",
        "1234567890.1.1",
        "1.0000000001.0",
        "1.21.alpha1",
        "1.21-alpha1beta",
        "1.2.3-alpha1",
        "1.2.3+4",
        "1_2_3",
        "1.2.3.4.5",
        "-1.2.3",
        "1..2",
        "\u0663.1.0",  # an Arabic-Indic digit is not a Juju digit
    ],
)
def test_bad_versions_name_the_input(text: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_lenient(text)
    assert repr(text) in str(exc.value)
    assert "use M.m.p" in str(exc.value)


def test_tag_without_number_is_not_strict() -> None:
    with pytest.raises(InvalidInputError):
        parse("1.2-alpha")


@pytest.mark.parametrize(
    ("version", "text"),
    [
        (Version(3, 1, 2, "beta"), "3.1-beta2"),
        (Version(2, 9, 42, build=1), "2.9.42.1"),
        (Version(3, 6, 12), "3.6.12"),
        (Version(1, 2, 0, "alpha"), "1.2-alpha0"),
        (Version(1, 2, 3, "rc", 4), "1.2-rc3.4"),
    ],
)
def test_canonical_text(version: Version, text: str) -> None:
    assert str(version) == text
    assert str(parse_lenient("2.03.1")) == "2.3.1"


def test_ordering_table() -> None:
    texts = ["1.2-alpha1", "1.2-alpha2.1", "1.2-beta1", "1.2.0", "1.2.0.1", "1.2.1"]
    versions = [parse(t) for t in texts]
    shuffled = [versions[i] for i in (3, 0, 5, 1, 4, 2)]
    assert sorted(shuffled) == versions
    for lower, higher in zip(versions, versions[1:], strict=False):
        assert lower < higher
        assert higher > lower
        assert lower != higher


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("2.1-dev1", "2.1.0"),
        ("1.2-beta1", "1.2-rc1"),
        ("1.2-alpha9", "1.2-zz0"),
        ("1.9.9", "1.10.0"),
        ("1.2-beta9", "1.2-beta10"),
        ("2.9.99", "2.9.100"),
        ("1.2.3", "1.2.3.1"),
        ("9.9.9", "10.0.0"),
    ],
)
def test_ordering_pairs(lower: str, higher: str) -> None:
    assert parse(lower) < parse(higher)


def test_helpers() -> None:
    v = parse("2.9.42.1")
    assert v.to_patch() == parse("2.9.42")
    assert v.major_minor == (2, 9)
    assert not v.is_release
    assert parse("3.6.1").is_release
    assert not parse("3.1-beta1").is_release


def test_version_rejects_bad_fields() -> None:
    with pytest.raises(InvalidInputError):
        Version(10**9)
    with pytest.raises(InvalidInputError):
        Version(1, 2, 3, "Beta")
    with pytest.raises(InvalidInputError):
        Version(-1)


def test_comparison_with_other_types() -> None:
    assert Version(1) != "1.0.0"
    with pytest.raises(TypeError):
        _ = Version(1) < "1.0.0"  # type: ignore[operator]


# Binary versions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.6.12-ubuntu-amd64", BinaryVersion(Version(3, 6, 12), "ubuntu", "amd64")),
        ("2.8.1-focal-amd64", BinaryVersion(Version(2, 8, 1), "focal", "amd64")),
        (
            "3.1-beta2.1-ubuntu-arm64",
            BinaryVersion(Version(3, 1, 2, "beta", 1), "ubuntu", "arm64"),
        ),
        (
            "1.2.3-myawesomeseries-amd64",
            BinaryVersion(Version(1, 2, 3), "myawesomeseries", "amd64"),
        ),
    ],
)
def test_binary_versions(text: str, expected: BinaryVersion) -> None:
    assert parse_binary(text) == expected
    assert str(parse_binary(text)) == text


@pytest.mark.parametrize("text", ["2.9-ubuntu-amd64", "1.2.3--amd64", "1.2.3-ubuntu", "", "x"])
def test_bad_binary_versions(text: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid binary version") as exc:
        parse_binary(text)
    assert repr(text) in str(exc.value)
    assert "<version>-<os>-<arch>" in str(exc.value)


# major[.minor] filter


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.03", SeriesFilter(2, 3)), ("3", SeriesFilter(3)), ("3.6", SeriesFilter(3, 6))],
)
def test_major_minor(text: str, expected: SeriesFilter) -> None:
    assert parse_major_minor(text) == expected


def test_major_minor_refuses_full_version_with_hint() -> None:
    with pytest.raises(InvalidInputError) as exc:
        parse_major_minor("2.03.1")
    assert "'2.03.1'" in str(exc.value)
    assert "use 2.03, not 2.03.1" in str(exc.value)


@pytest.mark.parametrize("text", ["", "v3", "3.x", "3.6-beta1", " 3", "3.", "1234567890"])
def test_major_minor_refuses_others(text: str) -> None:
    with pytest.raises(InvalidInputError, match="major or major.minor") as exc:
        parse_major_minor(text)
    assert repr(text) in str(exc.value)


def test_series_filter_matches() -> None:
    assert SeriesFilter(3).matches(parse("3.1.0"))
    assert SeriesFilter(3, 6).matches(parse("3.6-beta1"))
    assert not SeriesFilter(3, 6).matches(parse("3.5.0"))
    assert not SeriesFilter(2).matches(parse("3.0.0"))
    assert str(SeriesFilter(2, 3)) == "2.3"
    assert str(SeriesFilter(3)) == "3"


# Properties

numbers = st.integers(min_value=0, max_value=10**9 - 1)
tags = st.one_of(
    st.just(""), st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)
)
versions = st.builds(Version, numbers, numbers, numbers, tags, numbers)


def _key(v: Version) -> tuple:
    return (v.major, v.minor, v.tag == "", v.tag, v.patch, v.build)


@given(versions)
def test_round_trip(v: Version) -> None:
    assert parse(str(v)) == v
    assert parse_lenient(str(v)) == v


@given(versions, versions)
def test_order_is_total_and_matches_tuple_definition(a: Version, b: Version) -> None:
    assert (a < b) + (a == b) + (a > b) == 1
    assert (a < b) == (_key(a) < _key(b))
    assert (a == b) == (_key(a) == _key(b))


@given(versions, versions, versions)
def test_order_is_transitive(a: Version, b: Version, c: Version) -> None:
    x, y, z = sorted([a, b, c])
    assert x <= y <= z
    assert x <= z


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_our_error(text: str) -> None:
    try:
        v = parse_lenient(text)
    except InvalidInputError as exc:
        assert repr(text) in str(exc)
    else:
        assert parse(str(v)) == v
