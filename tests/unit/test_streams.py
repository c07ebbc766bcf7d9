"""Reading agent simplestreams: both document shapes, index fallback, and bad documents."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.servers import serve_directory
from support.streams import Agent, write_stream
from upgrader import streams
from upgrader.errors import InvalidInputError, NotFoundError, StreamError
from upgrader.fetch import Fetcher, FetchSettings
from upgrader.streams import (
    TrustPolicy,
    check_relative_path,
    check_stream_name,
    check_stream_url,
    parse_index,
    parse_products,
    read_stream,
)
from upgrader.versions import parse

AGENTS = [
    Agent("3.6.12", "amd64", date="20251105"),
    Agent("3.6.12", "arm64", date="20251105"),
    Agent("3.6.11", "amd64", date="20250924"),
    Agent("3.5.7", "amd64", date="20250601"),
    Agent("2.9.52", "amd64", date="20250301"),
]


UNSIGNED = TrustPolicy(verify_signatures=False)
"""These tests read unsigned streams; signed reading is tested in test_stream_trust.py."""


def getter(settings: FetchSettings | None = None):
    fetcher = Fetcher(settings or FetchSettings(retries=1, backoff=0.0))
    return lambda url: fetcher.get_document(url).body


@pytest.mark.parametrize("condensed", [False, True], ids=["expanded", "condensed"])
def test_reads_both_shapes_over_http(tmp_path: Path, condensed: bool) -> None:
    write_stream(tmp_path, AGENTS, condensed=condensed)
    with serve_directory(tmp_path) as url:
        contents = read_stream(url + "/", "released", getter(), trust=UNSIGNED)
    assert contents.base_url == url
    assert contents.index_url == f"{url}/streams/v1/index2.json"
    assert contents.products_url == f"{url}/streams/v1/com.ubuntu.juju-released-agents.json"
    assert contents.verified is False
    got = {(str(e.version), e.os, e.arch) for e in contents.entries}
    assert got == {(a.version, a.os, a.arch) for a in AGENTS}
    entry = next(e for e in contents.entries if str(e.binary) == "3.6.12-ubuntu-arm64")
    data = Agent("3.6.12", "arm64").data
    assert entry.size == len(data)
    assert (tmp_path / entry.path).read_bytes() == data
    assert contents.url_of(entry) == f"{url}/{entry.path}"
    expected_path = (
        "agent/3.6.12/juju-3.6.12-linux-arm64.tgz"
        if condensed
        else "released/juju-3.6.12-ubuntu-arm64.tgz"
    )
    assert entry.path == expected_path
    assert contents.available("ubuntu", ["arm64"]) == {parse("3.6.12"): {"arm64"}}
    assert len(contents.available("ubuntu", ["amd64", "arm64"])) == 4
    assert contents.available("centos", ["amd64"]) == {}


def test_reads_file_url_and_falls_back_to_index_json(tmp_path: Path) -> None:
    write_stream(tmp_path, AGENTS, index_name="index.json")
    contents = read_stream(tmp_path.as_uri(), "released", getter(), trust=UNSIGNED)
    assert contents.index_url.endswith("streams/v1/index.json")
    assert len(contents.entries) == 5


def test_other_streams(tmp_path: Path) -> None:
    write_stream(tmp_path, [Agent("3.7-beta1")], stream="devel")
    contents = read_stream(tmp_path.as_uri(), "devel", getter(), trust=UNSIGNED)
    assert [str(e.version) for e in contents.entries] == ["3.7-beta1"]
    with pytest.raises(NotFoundError, match="no content id com.ubuntu.juju:released:agents"):
        read_stream(tmp_path.as_uri(), "released", getter(), trust=UNSIGNED)


def test_no_index_at_all(tmp_path: Path) -> None:
    with serve_directory(tmp_path) as url, Fetcher(FetchSettings(retries=1)) as fetcher:
        with pytest.raises(NotFoundError) as exc:
            read_stream(url, "released", fetcher, trust=UNSIGNED)
    v1 = f"{url}/streams/v1"
    assert str(exc.value) == (
        f"no agent metadata at {url}: tried {v1}/index2.sjson, {v1}/index.sjson (not found); "
        f"tried {v1}/index2.json, {v1}/index.json (not found)"
    )


def test_newest_date_wins(tmp_path: Path) -> None:
    old = Agent("3.6.1", date="20250101", content=b"old")
    new = Agent("3.6.1", date="20250202", content=b"new!")
    write_stream(tmp_path, [old], index_name="index2.json")
    doc = json.loads((tmp_path / "streams/v1/com.ubuntu.juju-released-agents.json").read_text())
    versions = doc["products"]["com.ubuntu.juju:ubuntu:amd64"]["versions"]
    versions["20250202"] = copy.deepcopy(versions["20250101"])
    versions["20250202"]["items"]["3.6.1-ubuntu-amd64"]["size"] = 4
    (entry,) = parse_products(json.dumps(doc).encode(), "u", "released")
    assert (entry.date, entry.size) == ("20250202", len(new.data))


def test_inheritance_lower_level_wins() -> None:
    doc = {
        "format": "products:1.0",
        "arch": "s390x",
        "release": "ubuntu",
        "products": {
            "com.ubuntu.juju:ubuntu:amd64": {
                "arch": "amd64",
                "versions": {
                    "20250101": {
                        "version": "3.6.1",
                        "items": {
                            "a": {"size": 1, "path": "a.tgz", "sha256": "a" * 64},
                            "b": {
                                "size": 2,
                                "path": "b.tgz",
                                "sha256": "B" * 64,
                                "version": "3.6.2",
                                "arch": "arm64",
                            },
                        },
                    }
                },
            }
        },
    }
    entries = parse_products(json.dumps(doc).encode(), "u", "released")
    assert {str(e.binary) for e in entries} == {"3.6.1-ubuntu-amd64", "3.6.2-ubuntu-arm64"}
    assert {e.sha256 for e in entries} == {"a" * 64, "b" * 64}


def test_release_and_arch_default_from_product_id() -> None:
    doc = {
        "format": "products:1.0",
        "products": {
            "com.ubuntu.juju:ubuntu:arm64": {
                "versions": {
                    "d": {
                        "items": {
                            "i": {"version": "3.6.1", "size": 1, "path": "p", "sha256": "0" * 64}
                        }
                    }
                }
            }
        },
    }
    (entry,) = parse_products(json.dumps(doc).encode(), "u", "released")
    assert str(entry.binary) == "3.6.1-ubuntu-arm64"


def test_non_tarball_items_are_skipped() -> None:
    doc = {
        "format": "products:1.0",
        "products": {
            "com.ubuntu.juju:ubuntu:amd64": {
                "versions": {
                    "d": {
                        "items": {
                            "i": {
                                "version": "3.6.1",
                                "size": 1,
                                "path": "p.txt",
                                "sha256": "0" * 64,
                                "ftype": "txt",
                            }
                        }
                    }
                }
            }
        },
    }
    assert parse_products(json.dumps(doc).encode(), "u", "released") == []


# Bad documents: each is a StreamError naming the URL and what is wrong.

GOOD_ITEM = {
    "version": "3.6.1",
    "arch": "amd64",
    "release": "ubuntu",
    "size": 10,
    "path": "released/juju-3.6.1-ubuntu-amd64.tgz",
    "sha256": "0" * 64,
}


def products_with(item: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "format": "products:1.0",
            "products": {
                "com.ubuntu.juju:ubuntu:amd64": {
                    "versions": {"20250101": {"items": {"3.6.1-ubuntu-amd64": item}}}
                }
            },
        }
    ).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": None}, "missing version"),
        ({"path": None}, "missing path"),
        ({"sha256": None}, "missing sha256"),
        ({"size": None}, "missing size"),
        ({"size": -1}, "size must be a non-negative integer"),
        ({"size": "10"}, "size must be a non-negative integer"),
        ({"size": 1.5}, "size must be a non-negative integer"),
        ({"size": True}, "size must be a non-negative integer"),
        ({"sha256": "xyz"}, "sha256 must be 64 hex digits"),
        ({"version": "3.6"}, "invalid version '3.6'"),
        ({"version": "v3.6.1"}, "invalid version 'v3.6.1'"),
        ({"path": "/etc/passwd"}, "must be relative"),
        ({"path": "../../etc/passwd"}, "must be relative"),
        ({"path": "released/../../x.tgz"}, "must be relative"),
        ({"path": "http://evil.example/x.tgz"}, "must be relative"),
        ({"path": "//evil.example/x.tgz"}, "must be relative"),
        ({"path": "file:///etc/passwd"}, "must be relative"),
        ({"path": "a\\..\\b"}, "must be relative"),
        ({"path": "released/./x.tgz"}, "must be relative"),
        ({"path": "%2e%2e/%2E%2E/etc/passwd"}, "must be relative"),
        ({"path": "released/%2e%2e/%2e%2e/x.tgz"}, "must be relative"),
        ({"path": "%2fetc/passwd"}, "must be relative"),
        ({"path": "released%2f..%2f..%2fx.tgz"}, "must be relative"),
        ({"path": "released%5c..%5cx.tgz"}, "must be relative"),
        ({"path": "x.tgz?download=1"}, "must be relative"),
        ({"path": "x.tgz#fragment"}, "must be relative"),
        ({"path": "c:/windows/x.tgz"}, "must be relative"),
        ({"path": "HTTPS://evil.example/x.tgz"}, "must be relative"),
        ({"path": "released/x\x00.tgz"}, "must be relative"),
        ({"path": "released/x%00.tgz"}, "must be relative"),
        ({"path": "//[evil/x.tgz"}, "must be relative"),
        ({"path": "http://[::1/x.tgz"}, "must be relative"),
        ({"path": 3}, "non-empty string"),
        ({"path": ["released/x.tgz"]}, "non-empty string"),
        ({"path": {"a": 1}}, "non-empty string"),
        ({"size": 1e3}, "size must be a non-negative integer"),
        ({"size": "ten"}, "size must be a non-negative integer"),
        ({"size": [10]}, "size must be a non-negative integer"),
        ({"path": ""}, "non-empty string"),
        ({"arch": "amd-64"}, "arch 'amd-64' is not valid"),
    ],
)
def test_bad_items(change: dict[str, Any], message: str) -> None:
    item = {k: v for k, v in {**GOOD_ITEM, **change}.items() if v is not None}
    with pytest.raises(StreamError) as exc:
        parse_products(products_with(item), "http://h/streams/v1/p.json", "released")
    assert message in str(exc.value)
    assert "http://h/streams/v1/p.json" in str(exc.value)
    assert "3.6.1-ubuntu-amd64" in str(exc.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"format": "products:2.0"}', "format is 'products:2.0', expected 'products:1.0'"),
        (b'{"format": "products:1.0", "products": []}', "'products' must be an object"),
        (b'{"format": "products:1.0", "products": {"p": []}}', "must be an object"),
        (
            b'{"format": "products:1.0", "products": {"p": {"versions": {"d": {"items": 3}}}}}',
            "'items' must be an object",
        ),
        (
            b'{"format": "products:1.0", "content_id": "com.ubuntu.juju:devel:agents"}',
            "content_id is 'com.ubuntu.juju:devel:agents'",
        ),
    ],
)
def test_bad_products_documents(body: bytes, message: str) -> None:
    with pytest.raises(StreamError, match="^http://h/p.json: ") as exc:
        parse_products(body, "http://h/p.json", "released")
    assert message in str(exc.value)


INDEX = {
    "format": "index:1.0",
    "index": {
        "com.ubuntu.juju:released:agents": {
            "format": "products:1.0",
            "datatype": "content-download",
            "path": "streams/v1/com.ubuntu.juju-released-agents.json",
            "products": [],
        }
    },
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "index:2.0"}, "format is 'index:2.0', expected 'index:1.0'"),
        ({"index": []}, "'index' must be an object"),
        ({"index": {}}, "no content id com.ubuntu.juju:released:agents"),
        (
            {"entry": {"datatype": "image-ids"}},
            "datatype 'image-ids', expected 'content-download'",
        ),
        ({"entry": {"format": "products:9"}}, "has format 'products:9'"),
        ({"entry": {"path": "../x.json"}}, "must be relative"),
        ({"entry": {"path": None}}, "non-empty string"),
    ],
)
def test_bad_index_documents(change: dict[str, Any], message: str) -> None:
    doc = copy.deepcopy(INDEX)
    entry = doc["index"]["com.ubuntu.juju:released:agents"]
    entry.update(change.pop("entry", {}))
    doc.update(change)
    with pytest.raises(StreamError, match="^http://h/i.json: ") as exc:
        parse_index(json.dumps(doc).encode(), "http://h/i.json", "released")
    assert message in str(exc.value)


def test_index_lists_other_content_ids_when_stream_missing() -> None:
    doc = copy.deepcopy(INDEX)
    doc["index"] = {
        "com.ubuntu.juju:released:tools": doc["index"]["com.ubuntu.juju:released:agents"]
    }
    with pytest.raises(NotFoundError, match="it lists: com.ubuntu.juju:released:tools"):
        parse_index(json.dumps(doc).encode(), "u", "released")


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_random_json_only_gives_entries_or_stream_errors(doc: Any) -> None:
    body = json.dumps(doc).encode()
    for parser in (parse_products, parse_index):
        try:
            parser(body, "u", "released")
        except StreamError:
            pass


item_values = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.text(max_size=10),
    st.just("../x"),
    st.just("3.6.1"),
    st.just("f" * 64),
    st.lists(st.integers(), max_size=2),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(GOOD_ITEM) + ["ftype", "md5"]), item_values, max_size=6)
)
def test_mutated_items_only_give_entries_or_stream_errors(mutation: dict[str, Any]) -> None:
    item = {**GOOD_ITEM, **mutation}
    try:
        entries = parse_products(products_with(item), "u", "released")
    except StreamError:
        return
    for entry in entries:
        assert entry.size >= 0
        assert len(entry.sha256) == 64
        check_relative_path(entry.path, where="t")


@settings(max_examples=500)
@given(st.text(alphabet="aZ09._~+-/\\%2e:?#@[] \x00\x7f", max_size=12))
def test_plain_paths_are_exactly_those_the_full_check_accepts_quickly(path: str) -> None:
    if streams._PLAIN_PATH.match(path):
        assert not streams._leaves_base(path)
        assert check_relative_path(path, where="t") == path


# Input validation helpers


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/x",
        "streams.canonical.com/juju/tools",
        "http://",
        "file://relative/x",
        "",
        "https://h/a b",
    ],
)
def test_bad_stream_urls(url: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid stream-url") as exc:
        check_stream_url(url)
    assert "http://, https:// or file:///" in str(exc.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://t0k/s3cret@streams.example.com/juju/tools",
        "https://user:1234/s3cret@streams.example.com/tools",
        "https://user:s3cret@host/tools?x=a@b",
        "https://streams.example.com/a@b/tools",
    ],
)
def test_an_at_sign_after_the_host_is_refused_without_showing_the_login(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_stream_url(url)

    message = str(caught.value)
    assert "an '@' after the host name; a login goes before the host" in message
    assert "s3cret" not in message and "t0k" not in message and "1234" not in message


def test_at_signs_where_they_belong_are_accepted() -> None:
    assert check_stream_url("https://us%40er:p%2Fss@h/tools") == "https://us%40er:p%2Fss@h/tools"
    assert check_stream_url("https://h/a%40b/tools") == "https://h/a%40b/tools"
    assert check_stream_url("file:///srv/mirror@2/tools") == "file:///srv/mirror@2/tools"


def test_stream_url_trailing_slash_dropped() -> None:
    assert check_stream_url("https://h/juju/tools/") == "https://h/juju/tools"
    assert check_stream_url("file:///srv/tools") == "file:///srv/tools"


@pytest.mark.parametrize("name", ["", "Released", "rel eased", "../x", "-x"])
def test_bad_stream_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid stream"):
        check_stream_name(name)


def test_custom_stream_names_allowed() -> None:
    assert check_stream_name("revision-build-4415") == "revision-build-4415"


# Bounds on what a stream may hold


DEEP = 100_000


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (10**400, "size a number of more than 20 digits is more than the 8589934592 bytes"),
        (2**63, "size 9223372036854775808 is more than the 8589934592 bytes (8 GiB) accepted"),
        (8 * 1024**3 + 1, "size 8589934593 is more than the 8589934592 bytes (8 GiB)"),
    ],
    ids=["10^400", "2^63", "8GiB+1"],
)
def test_item_size_beyond_8_gib_is_refused_when_read(size: int, message: str) -> None:
    item = {**GOOD_ITEM, "size": size}
    with pytest.raises(StreamError) as exc:
        parse_products(products_with(item), "http://h/p.json", "released")
    assert str(exc.value).startswith(
        "http://h/p.json: product com.ubuntu.juju:ubuntu:amd64 version 20250101 item "
        "3.6.1-ubuntu-amd64: "
    )
    assert message in str(exc.value)
    assert len(str(exc.value)) < 300


def test_item_size_of_exactly_8_gib_is_accepted() -> None:
    entries = parse_products(
        products_with({**GOOD_ITEM, "size": 8 * 1024**3}), "http://h/p.json", "released"
    )
    assert [e.size for e in entries] == [8 * 1024**3]


@pytest.mark.parametrize("which", ["index", "products"])
def test_metadata_nested_100000_deep_is_malformed(tmp_path: Path, which: str) -> None:
    write_stream(tmp_path, AGENTS)
    name = "index2.json" if which == "index" else "com.ubuntu.juju-released-agents.json"
    (tmp_path / "streams/v1" / name).write_text('{"a":' * DEEP + "1" + "}" * DEEP)
    with pytest.raises(StreamError) as exc:
        read_stream(tmp_path.as_uri(), "released", getter(), trust=UNSIGNED)
    assert str(exc.value) == (
        f"{tmp_path.as_uri()}/streams/v1/{name}: malformed JSON: nested more than 64 levels "
        "deep (the accepted form is a JSON document nested at most 64 levels)"
    )


def test_products_listing_more_than_100000_items_is_refused() -> None:
    items = {f"i{n}": {"ftype": "sha256"} for n in range(100_001)}  # skipped, but counted
    body = json.dumps(
        {"format": "products:1.0", "products": {"p": {"versions": {"d": {"items": items}}}}}
    ).encode()
    with pytest.raises(StreamError, match=r"^http://h/p.json: lists more than 100000 items"):
        parse_products(body, "http://h/p.json", "released")
    del items["i0"]
    body = json.dumps(
        {"format": "products:1.0", "products": {"p": {"versions": {"d": {"items": items}}}}}
    ).encode()
    assert parse_products(body, "http://h/p.json", "released") == []


@pytest.mark.parametrize("level", ["top", "product", "version", "item"])
def test_objects_with_more_than_1000_fields_are_refused(level: str) -> None:
    """Each item inherits the fields above it: fields times items must stay small."""
    fields = {f"f{n}": "x" for n in range(1001)}
    item = {**GOOD_ITEM, **(fields if level == "item" else {})}
    version = {"items": {"3.6.1-ubuntu-amd64": item}, **(fields if level == "version" else {})}
    product = {"versions": {"20250101": version}, **(fields if level == "product" else {})}
    doc = {
        "format": "products:1.0",
        "products": {"com.ubuntu.juju:ubuntu:amd64": product},
        **(fields if level == "top" else {}),
    }
    with pytest.raises(StreamError, match=r"has 100[0-9] fields, more than the 1000 accepted"):
        parse_products(json.dumps(doc).encode(), "http://h/p.json", "released")


def test_index_with_more_than_1000_content_ids_is_refused() -> None:
    doc = copy.deepcopy(INDEX)
    entry = doc["index"]["com.ubuntu.juju:released:agents"]
    doc["index"].update({f"com.example:{n}": entry for n in range(1000)})
    with pytest.raises(StreamError, match=r"'index' lists 1001 content ids, more than the 1000"):
        parse_index(json.dumps(doc).encode(), "http://h/i.json", "released")


def test_missing_stream_lists_at_most_twenty_content_ids() -> None:
    doc = copy.deepcopy(INDEX)
    entry = doc["index"].pop("com.ubuntu.juju:released:agents")
    doc["index"] = {f"com.example:{n:03d}:{'x' * 200}": entry for n in range(500)}
    with pytest.raises(NotFoundError) as exc:
        parse_index(json.dumps(doc).encode(), "http://h/i.json", "released")
    assert str(exc.value).endswith(" and 480 more")
    assert str(exc.value).count("com.example:") == 20
    assert len(str(exc.value)) < 3000


def test_values_quoted_in_refusals_are_cut_short() -> None:
    item = {**GOOD_ITEM, "sha256": "z" * 1_000_000}
    with pytest.raises(StreamError) as exc:
        parse_products(products_with(item), "http://h/p.json", "released")
    assert "sha256 must be 64 hex digits, got 'zzz" in str(exc.value)
    assert len(str(exc.value)) < 300


@pytest.mark.parametrize(
    "url",
    [
        "https://mirror.example.com/tools?token=s3cret",
        "https://mirror.example.com/tools/?token=s3cret&x=1",
        "https://mirror.example.com/tools#s3cret",
        "https://user:pw@mirror.example.com/tools?token=s3cret",
        "file:///srv/tools?s3cret",
        "https://mirror.example.com/tools?",
    ],
)
def test_a_stream_url_with_a_query_or_fragment_is_refused_without_its_value(url: str) -> None:
    """Juju appends /streams/v1/... to the URL: a query would be sent as /?token=X/streams/..."""
    with pytest.raises(InvalidInputError) as caught:
        check_stream_url(url)
    message = str(caught.value)
    assert message.startswith("invalid stream-url '")
    assert "a query ('?...') or fragment ('#...') is not accepted" in message
    assert (
        "use an http://, https:// or file:/// URL of the directory holding streams/v1" in message
    )
    assert "s3cret" not in message and "pw" not in message
    assert "?***'" in message or "#***'" in message


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "https://[::1/tools", "http://h:99999/tools", "http://h:-1/tools",
     "http://h:port/tools", "http://:80/tools",
     # only an IPv6 address goes in brackets (Python 3.10's urlsplit takes any text there)
     "http://[v1.x]/tools", "http://[127.0.0.1]/tools", "http://[h.example]/tools"],
)  # fmt: skip
def test_a_stream_url_that_cannot_be_split_names_the_option_and_the_form(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_stream_url(url, option="the option")
    assert str(caught.value) == (
        f"invalid the option {url!r}: use an http://, https:// or file:/// URL of the "
        "directory holding streams/v1, e.g. https://streams.canonical.com/juju/tools"
    )


@pytest.mark.parametrize("url", ["file:///srv/tools%00x", "file:///srv/tools\x00x"])
def test_a_file_stream_url_holding_a_nul_is_refused_naming_the_option(url: str) -> None:
    """No file name holds a NUL: opening one raised ValueError out of hooks and the CLI."""
    with pytest.raises(InvalidInputError) as caught:
        check_stream_url(url)
    assert str(caught.value) == (
        f"invalid stream-url {url!r}: a file path cannot hold a NUL character (%00); use an "
        "http://, https:// or file:/// URL of the directory holding streams/v1, e.g. "
        "https://streams.canonical.com/juju/tools"
    )


def test_ipv6_and_port_stream_urls_are_accepted() -> None:
    assert check_stream_url("http://[::1]:8080/tools/") == "http://[::1]:8080/tools"
    assert check_stream_url("http://[fe80::1%25eth0]/tools") == "http://[fe80::1%25eth0]/tools"
    assert check_stream_url("https://h:443/juju/tools") == "https://h:443/juju/tools"


def test_kept_contents_refuse_sizes_beyond_8_gib_and_too_many_rows() -> None:
    contents = streams.StreamContents(
        "https://h/tools", "released", "https://h/tools/i", "https://h/tools/p",
        tuple(parse_products(products_with(GOOD_ITEM), "http://h/p.json", "released")),
    )  # fmt: skip
    data = json.loads(json.dumps(contents.as_dict()))
    data["tarballs"][0][3] = 10**400
    with pytest.raises(StreamError, match=r"^kept: tarball 0 must be .*up to 8589934592.*, got"):
        streams.StreamContents.from_dict(data, where="kept")
    data["tarballs"] = [data["tarballs"][0]] * 100_001
    with pytest.raises(StreamError, match="holds more than 100000 tarballs or entries"):
        streams.StreamContents.from_dict(data, where="kept")
