"""``bridgeai``: the project's one command line.

Commands import their machinery lazily so ``bridgeai status`` answers in well under a second.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from bridgeai.model import CHAMPION_URI

app = typer.Typer(
    name="bridgeai",
    help="BridgeAI MLOps pipeline on Prefect: local stack, pipeline, model server and service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@app.command()
def up() -> None:
    """Start the local stack (SeaweedFS S3, MLflow, Prefect server, process worker)."""
    from bridgeai.ops.stack import Stack
    from bridgeai.procs import ServiceStartError

    stack = Stack()
    try:
        urls = stack.up(echo=typer.echo)
    except ServiceStartError as exc:
        raise _fail(str(exc)) from None
    typer.echo("")
    typer.echo(f"Prefect UI   {urls['prefect-server']}")
    typer.echo(f"MLflow UI    {urls['mlflow']}")
    typer.echo(f"S3 endpoint  {urls['s3']}  (buckets: artifacts, evidently-reports, mlflow)")
    typer.echo(f"Work pool    {stack.settings.work_pool} (process worker)")
    typer.echo("")
    typer.echo('Use it from a shell or notebook:  eval "$(bridgeai env)"')


@app.command()
def down() -> None:
    """Stop the local stack (the worker first) and any local model server / prediction service.

    Data is kept under $BRIDGEAI_HOME.
    """
    from bridgeai.deploy import local as local_serving
    from bridgeai.ops.stack import Stack

    if local_serving.stop_service():
        typer.echo("prediction-service: stopped")
    if local_serving.stop():
        typer.echo("model-server: stopped")
    Stack().down(echo=typer.echo)


@app.command()
def status() -> None:
    """Print each local-stack service's health; exit 1 if any is down."""
    from bridgeai.ops.stack import Stack

    rows = Stack().status()
    for row in rows:
        mark = "healthy" if row.healthy else "DOWN"
        pid = str(row.pid) if row.pid else "-"
        typer.echo(f"{row.name:<15} {mark:<8} pid {pid:<8} {row.url}")
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print `export` lines pointing a shell at this $BRIDGEAI_HOME: eval "$(bridgeai env)"."""
    from bridgeai.ops.stack import Stack

    for key, value in Stack().env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@app.command()
def demo(
    serve: Annotated[
        bool, typer.Option("--serve", help="Leave the model server and prediction service up.")
    ] = False,
) -> None:
    """Run the whole pipeline in embedded mode and print each stage's outcome."""
    try:
        from bridgeai.ops import demo as demo_module
    except ImportError:
        typer.echo("pipeline not built yet: the stages land one issue at a time")
        return
    demo_module.main(serve=serve)


@app.command("serve-model")
def serve_model(
    model_uri: Annotated[
        str, typer.Option(help="models:/ URI, runs:/ URI or a model directory.")
    ] = CHAMPION_URI,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes, each loading the model once (default: 1).", min=1),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(help="Also serve OIP v2 over gRPC on this port (default: no gRPC)."),
    ] = None,
) -> None:
    """Serve the model over the Open Inference Protocol v2 (as `python -m bridgeai.serving`)."""
    from bridgeai.serving.main import main

    main(model_uri=model_uri, host=host, port=port, workers=workers, grpc_port=grpc_port)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the prediction service (FastAPI; Swagger at /swagger)."""
    from bridgeai import service

    service.main(host=host, port=port)


if __name__ == "__main__":
    app()
