"""Where the price-cache snapshot travels between steps: a local folder or S3 (boto3).

Keys are the same as in Argo: ``sigmabatch/<end-date>/<run-id>/price_cache.parquet``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.settings import Settings


def price_cache_key(end_date: str, run_id: str) -> str:
    return f"sigmabatch/{end_date}/{run_id}/price_cache.parquet"


class ArtifactStore(Protocol):
    url: str

    def put(self, local: Path, key: str) -> str: ...

    def get(self, key: str, local: Path) -> Path: ...


@dataclass
class LocalArtifactStore:
    root: Path

    @property
    def url(self) -> str:
        return str(self.root)

    def put(self, local: Path, key: str) -> str:
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(local).resolve() != dest.resolve():
            shutil.copyfile(local, dest)
        return str(dest)

    def get(self, key: str, local: Path) -> Path:
        src = self.root / key
        local.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != Path(local).resolve():
            shutil.copyfile(src, local)
        return local


@dataclass
class S3ArtifactStore:
    bucket: str
    prefix: str
    endpoint_url: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url)

    def _key(self, key: str) -> str:
        return f"{self.prefix.rstrip('/')}/{key}" if self.prefix else key

    def put(self, local: Path, key: str) -> str:
        self._client().upload_file(str(local), self.bucket, self._key(key))
        return f"s3://{self.bucket}/{self._key(key)}"

    def get(self, key: str, local: Path) -> Path:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._client().download_file(self.bucket, self._key(key), str(local))
        return local


def artifact_store(settings: Settings) -> ArtifactStore:
    if settings.artifacts_are_s3:
        bucket, _, prefix = settings.artifacts[len("s3://"):].partition("/")
        return S3ArtifactStore(bucket, prefix.strip("/"), settings.s3_endpoint_url)
    return LocalArtifactStore(settings.artifacts_path)
