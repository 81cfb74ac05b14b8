"""age through pyrage: armored files, recipients and identities, and errors that say what to do.

The interoperability test builds the reference ``age`` tool (filippo.io/age) from the Go module
proxy once into the gen cache and checks both directions; it is skipped when Go or the proxy is
missing.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.formats import age as crypto

AGE_VERSION = "v1.2.1"


def keypair() -> tuple[crypto.Identities, str]:
    identity, public = crypto.generate()
    return crypto.identities(identity.encode(), "test.key"), public


def flip_payload_byte(armored: bytes) -> bytes:
    """The same file with one byte of the encrypted payload (after the header) changed."""
    lines = armored.decode().strip().splitlines()
    binary = bytearray(base64.b64decode("".join(lines[1:-1])))
    binary[-5] ^= 0x01
    body = base64.b64encode(bytes(binary)).decode()
    return "\n".join(
        [lines[0], *(body[i : i + 64] for i in range(0, len(body), 64)), lines[-1], ""]
    ).encode()


def test_encrypt_then_decrypt_round_trips_through_an_armored_file() -> None:
    keys, public = keypair()
    armored = crypto.encrypt(b"s3cret \x00 bytes\n", [public])
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert armored.rstrip().endswith(b"-----END AGE ENCRYPTED FILE-----")
    assert all(len(line) <= 64 for line in armored.splitlines())
    assert crypto.decrypt(armored, keys, "x") == b"s3cret \x00 bytes\n"


def test_every_encryption_differs_so_only_set_and_rotate_may_encrypt() -> None:
    keys, public = keypair()
    first, second = crypto.encrypt(b"v", [public]), crypto.encrypt(b"v", [public])
    assert first != second
    assert crypto.decrypt(first, keys, "x") == crypto.decrypt(second, keys, "x") == b"v"


def test_another_keys_ciphertext_is_refused_as_not_for_this_key_without_the_value() -> None:
    _, public = keypair()
    other, _ = keypair()
    with pytest.raises(crypto.NotForThisKey) as caught:
        crypto.decrypt(crypto.encrypt(b"the-value", [public]), other, "secrets/a/b.age")
    message = str(caught.value)
    assert message.startswith("secrets/a/b.age is not encrypted to the identity in test.key (age1")
    assert "gen secrets rotate --reencrypt" in message and "the-value" not in message


def test_a_flipped_payload_byte_is_damage_not_a_foreign_key() -> None:
    keys, public = keypair()
    with pytest.raises(crypto.CryptoError) as caught:
        crypto.decrypt(
            flip_payload_byte(crypto.encrypt(b"v" * 100, [public])), keys, "secrets/a/b.age"
        )
    assert not isinstance(caught.value, crypto.NotForThisKey)
    assert "secrets/a/b.age is damaged" in str(caught.value) and "restore it from git" in str(
        caught.value
    )


def test_inspect_counts_recipients_but_not_greasing_stanzas() -> None:
    publics = [keypair()[1] for _ in range(3)]
    header = crypto.inspect(crypto.encrypt(b"v", publics))
    assert header.recipients == 3 and header.stanzas.count("X25519") == 3


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"plain text password\n", "not an ASCII-armored age file"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n", "truncated"),
        (
            b"-----BEGIN AGE ENCRYPTED FILE-----\n!!!!\n-----END AGE ENCRYPTED FILE-----\n",
            "invalid base64",
        ),
        (
            b"-----BEGIN AGE ENCRYPTED FILE-----\n"
            + base64.b64encode(b"hello world\n")
            + b"\n-----END AGE ENCRYPTED FILE-----\n",
            "not an age v1 file",
        ),
    ],
)
def test_inspect_refuses_files_that_are_not_intact_armored_age(text: bytes, why: str) -> None:
    with pytest.raises(crypto.CryptoError, match=why):
        crypto.inspect(text)


def test_identity_files_skip_comments_and_name_a_bad_line_without_printing_it() -> None:
    identity, public = crypto.generate()
    keys = crypto.identities(
        f"# created by a test\n\n# public key: {public}\n{identity}\n".encode(), "k"
    )
    assert keys.public == (public,)
    with pytest.raises(crypto.CryptoError) as caught:
        crypto.identities(f"# c\nAGE-SECRET-KEY-1NOTVALID{identity[-10:]}\n".encode(), "site.key")
    assert str(caught.value).startswith("site.key:2: invalid age identity") and identity[
        -10:
    ] not in str(caught.value)
    with pytest.raises(crypto.CryptoError, match="no identity in it"):
        crypto.identities(b"# only comments\n", "empty.key")


def test_ssh_keys_serve_as_recipient_and_identity(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@example.com", "-f", str(key)],
        check=True,
    )
    armored = crypto.encrypt(b"v", [Path(f"{key}.pub").read_text()])
    assert crypto.decrypt(armored, crypto.load_identities(key), "x") == b"v"


def test_a_passphrase_protected_ssh_key_is_refused_with_a_hint(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True
    )
    with pytest.raises(crypto.CryptoError, match="passphrase-protected"):
        crypto.load_identities(key)


@pytest.mark.parametrize("text", ["age1notakey", "ssh-ed25519 AAAAnot", "pgp:0xDEADBEEF"])
def test_an_invalid_recipient_is_named(text: str) -> None:
    with pytest.raises(crypto.CryptoError, match="invalid recipient"):
        crypto.encrypt(b"v", [text])


def test_encrypting_to_nobody_is_refused() -> None:
    with pytest.raises(crypto.CryptoError, match=r"site\.secrets\.recipients"):
        crypto.encrypt(b"v", [])


# -- interoperability with the age tool ------------------------------------------------------------


@pytest.fixture(scope="module")
def age_tool() -> Path:
    """``age`` built from the Go module proxy once into the gen cache
    (skipped when it cannot be)."""
    cache = (
        os.environ.get("GEN_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gen"
    )
    directory = Path(cache) / "age" / AGE_VERSION
    if not (directory / "age").is_file():
        if shutil.which("go") is None:
            pytest.skip("no Go toolchain to build the age tool")
        staging = directory.with_name(f".{AGE_VERSION}-{os.getpid()}")
        env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
        proc = subprocess.run(
            ["go", "install", "-trimpath", f"filippo.io/age/cmd/...@{AGE_VERSION}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot build the age tool: {proc.stderr.strip()[-300:]}")
        directory.parent.mkdir(parents=True, exist_ok=True)
        if directory.exists():  # another process built it meanwhile
            shutil.rmtree(staging)
        else:
            os.replace(staging, directory)
    return directory


def test_the_age_tool_reads_our_files_and_we_read_its(age_tool: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    subprocess.run([str(age_tool / "age-keygen"), "-o", str(key)], check=True, capture_output=True)
    keys = crypto.load_identities(key)
    ours = tmp_path / "ours.age"
    ours.write_bytes(crypto.encrypt(b"from gen", keys.public))
    decrypted = subprocess.run(
        [str(age_tool / "age"), "-d", "-i", str(key), str(ours)], check=True, capture_output=True
    ).stdout
    assert decrypted == b"from gen"
    theirs = subprocess.run(
        [str(age_tool / "age"), "-e", "-a", "-r", keys.public[0]],
        input=b"from age",
        check=True,
        capture_output=True,
    ).stdout
    assert crypto.inspect(theirs).recipients == 1
    assert crypto.decrypt(theirs, keys, "theirs") == b"from age"
