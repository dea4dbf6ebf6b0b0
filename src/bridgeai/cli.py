"""``bridgeai``: the project's one command line.

Commands import their machinery lazily so ``bridgeai status`` answers in well under a second.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated

import typer

from bridgeai.model import CHAMPION_URI

if TYPE_CHECKING:
    from bridgeai.ops.lineage import Lineage

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
    source = stack.data_source() or "the original's public HousingData.csv"
    typer.echo(f"Data source  {source} (for flow runs that pass no source)")
    typer.echo("")
    typer.echo('Use it from a shell or notebook:  eval "$(bridgeai env)"')


@app.command()
def down() -> None:
    """Stop every server bridgeai started in this $BRIDGEAI_HOME and list the ports it freed.

    That is the prediction services and model servers (the pipeline's and those started by hand
    with `bridgeai serve` / `bridgeai serve-model`), then the local stack, the worker first.
    Data is kept under $BRIDGEAI_HOME.
    """
    from bridgeai.deploy import local as local_serving
    from bridgeai.ops.stack import Stack, format_ports

    freed = local_serving.stop_all(echo=typer.echo)
    freed += Stack().down(echo=typer.echo)
    typer.echo(f"ports freed: {format_ports(freed) if freed else 'none'}")


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
    from bridgeai.deploy.local import recorded
    from bridgeai.serving.main import main
    from bridgeai.serving.settings import ModelServerSettings

    listens_grpc = grpc_port if grpc_port is not None else ModelServerSettings().grpc_port
    with recorded("model-server", host, port, listens_grpc):  # so that `bridgeai down` finds it
        main(model_uri=model_uri, host=host, port=port, workers=workers, grpc_port=grpc_port)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the prediction service (FastAPI; Swagger at /swagger).

    The model server: $BRIDGEAI_MODEL_URL, else the one `deploy_model(target="local")` or
    `bridgeai demo --serve` started in this $BRIDGEAI_HOME, else http://127.0.0.1:8080.
    """
    from bridgeai import service
    from bridgeai.deploy.local import recorded

    with recorded("prediction-service", host, port):  # so that `bridgeai down` finds it
        service.main(host=host, port=port)


@app.command()
def lineage(
    request_id: Annotated[
        str | None,
        typer.Argument(help="A request id from the prediction service (its X-Request-ID)."),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option("--model-version", help="Follow a registered model version instead."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
    database_secret: Annotated[
        str | None,
        typer.Option(
            help="Prefect Secret block holding the prediction log's URL. Default: "
            "$BRIDGEAI_DATABASE_URL, else the embedded SQLite log."
        ),
    ] = None,
    mlflow_block: Annotated[str, typer.Option(help="MLflowServer block name.")] = "bridgeai",
    repository_block: Annotated[str, typer.Option(help="DataRepository block name.")] = "bridgeai",
) -> None:
    """Print what produced a prediction: request, model version, image, data, source, flow runs.

    Give a REQUEST_ID (the prediction service's request_id) or --model-version N.
    """
    from bridgeai.model.errors import BridgeAIError
    from bridgeai.ops import lineage as chain

    if (request_id is None) == (model_version is None):
        raise _fail("give a REQUEST_ID or --model-version N (one of them)")
    try:
        if request_id is not None:
            found = chain.request_lineage(
                request_id,
                database_secret=database_secret,
                mlflow_block=mlflow_block,
                repository_block=repository_block,
            )
        else:
            found = chain.model_version_lineage(
                str(model_version), mlflow_block=mlflow_block, repository_block=repository_block
            )
    except (BridgeAIError, LookupError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(found.model_dump_json(indent=2) if as_json else _lineage_text(found))


def _lineage_text(lineage: Lineage) -> str:
    """The chain as the CLI prints it: one section per link, URLs where servers run."""
    out: list[str] = []
    r = lineage.request
    if r is not None:
        out.append(f"request      {r.request_id}")
        out.append(
            f"  logged     {r.created_at:%Y-%m-%d %H:%M:%S} UTC, status {r.status}, "
            f"{r.latency_ms:.1f} ms ({r.database})"
        )
        for row in r.rows:
            prefix = f"  house {row['batch_index']}" if len(r.rows) > 1 else "  inputs    "
            out.append(f"{prefix} " + ", ".join(f"{k}={v}" for k, v in row["inputs"].items()))
            price = row["prediction"]
            out.append(
                f"  prediction {price:,.0f} {r.unit}" if price is not None else "  prediction none"
            )
    m = lineage.model
    champion = f"champion since {m.champion_since}" if m.champion_since else m.gate_decision or ""
    aliases = f"; aliases {', '.join(m.aliases)}" if m.aliases else ""
    out.append(f"model        {m.name} v{m.version} ({champion}{aliases})")
    if m.url:
        out.append(f"  url        {m.url}")
    out.append(f"  mlflow run {m.run_id}" + (f"  {m.run_url}" if m.run_url else ""))
    if m.metrics:
        out.append(
            "  metrics    "
            + ", ".join(f"{k.removeprefix('test_')} {v:,.4g}" for k, v in sorted(m.metrics.items()))
        )
    if m.gate_reason:
        out.append(f"  gate       {m.gate_reason}")
    if m.git_sha:
        out.append(f"  code       git {m.git_sha}")
    if lineage.image:
        out.append(f"image        {lineage.image.reference} (built {lineage.image.built_at})")
    else:
        out.append("image        none built")
    if lineage.deployment:
        d = lineage.deployment
        served = d.image or "a local model-server process (bridgeai serve-model)"
        out.append(f"deployment   {d.target}, {served}, deployed {d.deployed_at}")
    d2 = lineage.data
    if d2 is not None:
        out.append(f"data         {d2.tag} at commit {d2.commit} in {d2.repository}")
        out.append("  dvc md5    " + ", ".join(f"{s} {v}" for s, v in d2.md5.items()))
        if d2.rows:
            out.append("  rows       " + ", ".join(f"{s} {n}" for s, n in d2.rows.items()))
        if d2.source:
            out.append(f"source       {d2.source}")
            out.append(
                f"  checksum   {d2.checksum}"
                + (f", ingested {d2.created_at:%Y-%m-%d %H:%M:%S} UTC" if d2.created_at else "")
            )
        if d2.mismatch:
            out.append(
                "  WARNING    the model's tags disagree with the repository: "
                + ", ".join(d2.mismatch)
            )
    if lineage.flow_runs:
        out.append("flow runs")
        for f in lineage.flow_runs:
            state = f" {f.state}" if f.state else ""
            name = f" ({f.name})" if f.name else ""
            out.append(
                f"  {f.step:<18} {f.flow_run_id}{name}{state}" + (f"  {f.url}" if f.url else "")
            )
    out += [f"note: {n}" for n in lineage.notes]
    return "\n".join(out)


if __name__ == "__main__":
    app()
