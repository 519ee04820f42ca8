"""Golden digests of mayuri.hashing: the canonical forms are a contract (STYLE.md §6).

Every cache key and every digest users see comes from these functions. If a
test here fails, stored fingerprints no longer match: change a golden value
only on purpose, with a new kind tag or a migration note, never to make a
test pass.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mayuri.hashing import (
    ABSENT,
    canonical_json,
    hash_bytes,
    hash_file,
    hash_files,
    hash_listing,
    hash_structure,
)

# SHA-512 of b"abc" (FIPS 180-2 test vector) and of b"".
SHA512_ABC = (
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
)
SHA512_EMPTY = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
CONFIG = {"lr": 0.1, "name": "train", "tags": ["a", "b"]}
CONFIG_V1 = (
    "c4728c23edf7d44ea89c2ddb27443abc650685ed0852a8eeb3885cb3b6b60faa"
    "f747b75a58acfe4fa769c468e4cb355e3237b6703d17baa22c17452e58059fdf"
)
FINGERPRINT_V1 = (
    "355659c0dae4dff013d869cb383516208be522cbc19b44caefff3ed25240b810"
    "9f14a96512a11de9d2445ef46a5e622d7e0b1398ed7d007300bb1041670c5b7d"
)
LISTING_ABC = (
    "77fe85dc26c8a063afdbba179be05ed132cb9f930546e04981ef2aa38129509d"
    "331c5a5c30e969188d487d7b7931bdecd0a57a19ef89e60de24a149d2e5657f2"
)


def test_canonical_json_sorts_keys_is_compact_and_keeps_unicode() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é", "c": {"z": 1, "y": "x"}}
    assert canonical_json(value) == '{"a":"é","b":[1,2.5,null,true],"c":{"y":"x","z":1}}'


def test_canonical_json_ignores_insertion_order() -> None:
    assert canonical_json({"x": 1, "y": 2}) == canonical_json({"y": 2, "x": 1})


def test_hash_structure_golden() -> None:
    assert hash_structure("config/v1", CONFIG) == CONFIG_V1
    assert hash_structure("fingerprint/v1", CONFIG) == FINGERPRINT_V1


def test_hash_structure_is_sha512_of_kind_nul_canonical_json() -> None:
    payload = b"config/v1\0" + canonical_json(CONFIG).encode()
    assert hash_structure("config/v1", CONFIG) == hashlib.sha512(payload).hexdigest()


def test_hash_structure_kinds_never_collide() -> None:
    assert hash_structure("a", {"k": 1}) != hash_structure("b", {"k": 1})


def test_hash_bytes_and_file_are_plain_sha512(tmp_path: Path) -> None:
    assert hash_bytes(b"abc") == SHA512_ABC
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    assert hash_file(tmp_path / "abc") == (SHA512_ABC, 3)
    assert hash_file(tmp_path / "empty") == (SHA512_EMPTY, 0)


def test_hash_file_of_a_large_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom((3 << 20) + 12345)  # several read chunks and a partial one
    path = tmp_path / "big"
    path.write_bytes(data)
    assert hash_file(path) == (hashlib.sha512(data).hexdigest(), len(data))


def test_missing_paths_are_absent(tmp_path: Path) -> None:
    assert ABSENT == "absent"
    assert hash_file(tmp_path / "nope") == (ABSENT, 0)
    assert hash_file(tmp_path / "nope" / "deeper") == (ABSENT, 0)
    assert hash_listing(tmp_path / "nope") == (ABSENT, 0)


def test_hash_listing_golden_sorted_names_joined_by_newline(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("b.csv", "c", "a.csv"):
        (folder / name).write_text("contents do not matter")
    assert hash_listing(folder) == (LISTING_ABC, 3)
    assert hash_bytes(b"a.csv\nb.csv\nc") == LISTING_ABC


@pytest.mark.parametrize("parallel", [False, True])
def test_hash_files_keeps_input_order(tmp_path: Path, parallel: bool) -> None:
    sizes = [1, 9 << 20, 0, 3 << 20, 5] if parallel else [1, 2, 0, 3]  # > 8 MiB in all: threads
    paths = []
    for index, size in enumerate(sizes):
        paths.append(tmp_path / f"f{index}")
        paths[-1].write_bytes(bytes([index]) * size)
    paths.append(tmp_path / "missing")
    expected = [hash_file(p) for p in paths]
    assert hash_files(paths) == expected
    assert hash_files(paths, total_bytes=sum(sizes)) == expected
    assert expected[-1] == (ABSENT, 0)
