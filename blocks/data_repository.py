"""The git repository that versions the data (DVC pointers + tags) as a typed Prefect Block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from bridgeai.data.repository import DataRepo


class DataRepository(Block):
    """The data repository the ingestion flow commits to and training and drift read from.

    With no ``url`` the repository is a local folder, ``$BRIDGEAI_HOME/data-repo`` (embedded
    mode, and the local stack, whose worker shares ``$BRIDGEAI_HOME``). With a ``url`` (a
    GitHub/GitLab/Gitea https URL, ``ssh://``, or the path of a bare repository) every flow run,
    on any machine or pod, works in a clone of it and pushes new versions there. An https
    ``token`` is sent to git as an HTTP header through the environment of each git command;
    it is never written into ``.git/config`` or any other file.
    ``repository()`` is the one place a client for the data repository is built.
    """

    _block_type_name = "BridgeAI Data Repository"
    _block_type_slug = "bridgeai-data-repository"
    _logo_url = "https://dvc.org/favicon.ico"  # type: ignore[assignment]
    _description = "Git remote, branch and token of the DVC data repository (data-vX.Y.Z tags)."

    url: str | None = Field(
        default=None,
        description="Git URL of the data repository (https://..., ssh://..., or a bare "
        "repository path). Empty: a local repository under $BRIDGEAI_HOME/data-repo.",
    )
    branch: str = Field(default="main", description="Branch that carries the data commits.")
    username: str = Field(
        default="x-access-token",
        description="User sent with the token over https (GitHub: x-access-token, "
        "GitLab: oauth2, Gitea: your user name).",
    )
    token: SecretStr | None = Field(
        default=None, description="Access token with push rights, for https URLs."
    )
    workdir: str | None = Field(
        default=None,
        description="Local working clone. Default: $BRIDGEAI_HOME/data-repo (no url) or "
        "$BRIDGEAI_HOME/data-repos/<url> (with a url).",
    )
    committer_name: str = Field(
        default="BridgeAI data ingestion", description="Author of the data commits."
    )
    committer_email: str = Field(
        default="bridgeai-data@localhost", description="E-mail of the data commits' author."
    )

    def repository(self) -> DataRepo:
        """The ``bridgeai.data.repository.DataRepo`` client for this repository (not yet opened)."""
        from bridgeai.data.git import Identity, basic_auth
        from bridgeai.data.repository import DataRepo

        auth = None
        if self.token is not None:
            auth = basic_auth(self.username, self.token.get_secret_value())
        return DataRepo(
            self.workdir,
            remote_url=self.url,
            branch=self.branch,
            identity=Identity(self.committer_name, self.committer_email),
            auth_header=auth,
        )
