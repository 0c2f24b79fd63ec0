"""The local runner in S3 mode: the price cache travels through a real S3 API on loopback (moto server)."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.fixture
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_price_cache_goes_through_s3(tmp_path, s3_endpoint):
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in creds.items()
                                                         if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    s3.create_bucket(Bucket="sigmabatch-artifacts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update(creds)
    env.update({"SIGMABATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'sb.db'}",
                "SIGMABATCH_ARTIFACTS": "s3://sigmabatch-artifacts/nightly",
                "SIGMABATCH_S3_ENDPOINT_URL": s3_endpoint, "SIGMABATCH_SYNTHETIC_SYMBOLS": "20",
                "SIGMABATCH_NOW": "2026-11-27T18:00:00-05:00", "SIGMABATCH_DEFAULT_SESSIONS": "5"})
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "run", "--no-progress"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sigmabatch-artifacts").get("Contents", [])]
    assert len(keys) == 1
    key = keys[0]
    # same key layout as the Argo artifact: <prefix>/sigmabatch/<end-date>/<run-id>/price_cache.parquet
    assert key.startswith("nightly/sigmabatch/2026-11-27/local-") and key.endswith("/price_cache.parquet")
    run_dir = tmp_path / "var" / "runs" / key.split("/")[3]
    # every price-reading step got its own downloaded copy
    downloaded = sorted(p.parent.name for p in (run_dir / "in").glob("*/price_cache.parquet"))
    assert "pnl-snapshots" in downloaded and "risk-exposures" in downloaded
    assert not (tmp_path / "var" / "artifacts").exists()
