"""The images, built by scripts/image/build.sh (cached under ~/.cache/kubetrade/images), unpacked
once per session into root filesystems that runc runs: no node, no registry, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade_testbed.images import ImageArchive, OciImage, build_images, read_image, unpack_cached


@pytest.fixture(scope="session")
def images() -> dict[str, ImageArchive]:
    return build_images()


@pytest.fixture(scope="session")
def rootfs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rootfs")


def _image(images: dict[str, ImageArchive], rootfs_dir: Path, name: str) -> tuple[ImageArchive, OciImage, Path]:
    built = images[name]
    return built, read_image(built.archive), unpack_cached(built, rootfs_dir)


@pytest.fixture(scope="session")
def kubetrade_image(images: dict[str, ImageArchive], rootfs_dir: Path) -> tuple[ImageArchive, OciImage, Path]:
    return _image(images, rootfs_dir, "kubetrade")


@pytest.fixture(scope="session")
def train_image(images: dict[str, ImageArchive], rootfs_dir: Path) -> tuple[ImageArchive, OciImage, Path]:
    return _image(images, rootfs_dir, "train")


@pytest.fixture(scope="session")
def nats_image(images: dict[str, ImageArchive], rootfs_dir: Path) -> tuple[ImageArchive, OciImage, Path]:
    return _image(images, rootfs_dir, "nats")


@pytest.fixture(scope="session")
def postgres_image(images: dict[str, ImageArchive], rootfs_dir: Path) -> tuple[ImageArchive, OciImage, Path]:
    return _image(images, rootfs_dir, "postgres")
