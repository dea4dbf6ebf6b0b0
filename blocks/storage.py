"""Object storage (MinIO / SeaweedFS / any S3) as a typed Prefect Block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from bridgeai.model.errors import BridgeAIError, is_transient
from bridgeai.paths import bridgeai_home


class StorageError(BridgeAIError):
    """The object storage is unreachable or rejected the request; the message says which."""


_AUTH_ERRORS = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidToken")


class ObjectStorage(Block):
    """S3-compatible object storage for data versions, drift reports and MLflow artifacts.

    With no ``endpoint_url`` the block uses a local folder (``$BRIDGEAI_HOME/storage`` unless
    ``local_root`` says otherwise), so embedded mode needs no server. ``filesystem()`` is the one
    place a storage client is built; the other helpers hand the same settings to DVC, polars,
    boto3 and MLflow without writing the secret into any file that is committed.
    """

    _block_type_name = "BridgeAI Object Storage"
    _block_type_slug = "bridgeai-object-storage"
    _logo_url = "https://min.io/resources/img/logo/MINIO_Bird.png"  # type: ignore[assignment]
    _description = "S3/MinIO endpoint, credentials and bucket names used by the BridgeAI flows."

    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint, e.g. http://127.0.0.1:8333 or http://minio:9000. "
        "Empty: use the local folder instead.",
    )
    region: str = Field(default="us-east-1", description="S3 region name.")
    access_key_id: str | None = Field(default=None, description="S3 access key id.")
    secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    data_bucket: str = Field(default="artifacts", description="Bucket for DVC data versions.")
    reports_bucket: str = Field(
        default="evidently-reports", description="Bucket for drift reports."
    )
    mlflow_bucket: str = Field(default="mlflow", description="Bucket for MLflow artifacts.")
    local_root: str | None = Field(
        default=None,
        description="Folder standing in for the buckets when no endpoint is set "
        "(default $BRIDGEAI_HOME/storage).",
    )

    # -- where things live ----------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """True when the buckets are folders on this machine (embedded mode)."""
        return not self.endpoint_url

    def root(self) -> Path:
        """The folder holding one sub-folder per bucket, in local mode."""
        return (
            Path(self.local_root).expanduser() if self.local_root else bridgeai_home() / "storage"
        )

    def uri(self, bucket: str, key: str = "") -> str:
        """An fsspec URI for ``key`` in ``bucket``: ``s3://...`` or ``file:///...``."""
        key = key.lstrip("/")
        if self.is_local:
            path = self.root() / bucket / key if key else self.root() / bucket
            return path.resolve().as_uri()
        return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"

    # -- the client factory ---------------------------------------------------------------
    def filesystem(self) -> Any:
        """The fsspec filesystem for these buckets (``s3fs`` or a local one that makes folders)."""
        if self.is_local:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem(auto_mkdir=True)
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key_id,
            secret=self._secret(),
            endpoint_url=self.endpoint_url,
            client_kwargs={"region_name": self.region},
            config_kwargs={
                "connect_timeout": 5,
                "read_timeout": 60,
                "retries": {"max_attempts": 3},
            },
            skip_instance_cache=True,
        )

    def ensure_buckets(self) -> None:
        """Create the three buckets (or folders) if they do not exist yet."""
        fs = self.filesystem()
        for bucket in (self.data_bucket, self.reports_bucket, self.mlflow_bucket):
            target = self.uri(bucket)
            if self.is_local:
                Path(fs._strip_protocol(target)).mkdir(parents=True, exist_ok=True)
            elif not fs.exists(target):
                fs.mkdir(target)

    def check(self) -> None:
        """Verify the storage answers and accepts the credentials.

        Raises:
            StorageError: the endpoint is unreachable, or it rejected the credentials.
        """
        if self.is_local:
            self.root().mkdir(parents=True, exist_ok=True)
            return
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError, EndpointConnectionError

        client = boto3.client(
            "s3",
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}),
            **self.boto3_kwargs(),
        )
        try:
            client.list_buckets()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _AUTH_ERRORS:
                raise StorageError(
                    f"S3 at {self.endpoint_url} rejected the credentials ({code}): check the "
                    f"access_key_id and secret_access_key of the ObjectStorage block"
                ) from None
            raise StorageError(
                f"S3 at {self.endpoint_url} failed: {exc}", transient=is_transient(exc)
            ) from None
        except EndpointConnectionError:
            raise StorageError(
                f"S3 at {self.endpoint_url} is unreachable: is it running (`bridgeai status`)?",
                transient=True,
            ) from None

    # -- settings for other tools ---------------------------------------------------------
    def dvc_remote(self, prefix: str = "dvc") -> dict[str, str]:
        """Non-secret DVC remote settings (safe for the committed ``.dvc/config``)."""
        if self.is_local:
            return {"url": str((self.root() / self.data_bucket / prefix).resolve())}
        return {
            "url": f"s3://{self.data_bucket}/{prefix}",
            "endpointurl": str(self.endpoint_url),
            "region": self.region,
        }

    def dvc_credentials(self) -> dict[str, str]:
        """Secret DVC remote settings: only for ``.dvc/config.local`` (git-ignored by DVC)."""
        if self.is_local or not self.access_key_id:
            return {}
        return {"access_key_id": self.access_key_id, "secret_access_key": self._secret() or ""}

    def storage_options(self) -> dict[str, str]:
        """``storage_options`` for polars/object_store readers of ``s3://`` URIs."""
        if self.is_local:
            return {}
        options = {"aws_endpoint_url": str(self.endpoint_url), "aws_region": self.region}
        if str(self.endpoint_url).startswith("http://"):
            options["aws_allow_http"] = "true"
        if self.access_key_id:
            options["aws_access_key_id"] = self.access_key_id
            options["aws_secret_access_key"] = self._secret() or ""
        return options

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)``."""
        if self.is_local:
            raise ValueError("boto3 needs an S3 endpoint; this storage is a local folder")
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self._secret(),
        }

    def mlflow_s3_env(self) -> dict[str, str]:
        """Environment an MLflow server or client needs to read/write ``s3://`` artifacts."""
        if self.is_local:
            return {}
        env = {
            "MLFLOW_S3_ENDPOINT_URL": str(self.endpoint_url),
            "AWS_DEFAULT_REGION": self.region,
        }
        if self.access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self._secret() or ""
        return env

    def _secret(self) -> str | None:
        return self.secret_access_key.get_secret_value() if self.secret_access_key else None
