"""The commands that run the mirror's server: serve, and gen-config for a permanent install of it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from pipdepot.operations.genconfig import SYSTEM_MIRROR, GenConfig, generate, settings_environ, write
from pipdepot.operations.serve import serve
from pipdepot.settings import ServeFlags, load_serve_settings

__all__ = ["SERVER_COMMANDS"]


def __dir__() -> list[str]:
    return __all__


@click.command(name="serve")
@click.option("--host", help="Address to listen on. [env: PIPDEPOT_HOST; default: 127.0.0.1]")
@click.option("--port", help="Port to listen on. [env: PIPDEPOT_PORT; default: 3141]")
@click.option(
    "--mirror",
    "mirror_dir",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="The cache: a static PEP 503 tree (usable as file://DIR, by nginx, and mounted by "
    "`pipdepot inject`), with the server's state in DIR/.pipdepot; or the same tree in a bucket "
    "(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID... and ~/.aws as for every S3 tool). Any number of "
    "serve, sync, add and import processes may share it. [env: PIPDEPOT_MIRROR_DIR, "
    "DIB_IMAGE_CACHE/pypi/mirror; default: ~/.cache/image-create/pypi/mirror]",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="URL",
    help="Upstream index, repeatable; per project, the first upstream that has it serves it "
    "(never a merge). [env: PIPDEPOT_UPSTREAMS (space-separated); default: PyPI]",
)
@click.option(
    "--offline/--online",
    default=None,
    help="Never contact upstream; serve only cached files. [env: PIPDEPOT_OFFLINE; default: online]",
)
@click.option(
    "--ttl",
    metavar="SECONDS",
    help="Refresh a cached project page from upstream when older than this. "
    "[env: PIPDEPOT_TTL; default: 600]",
)
@click.option(
    "--upstream-timeout",
    metavar="SECONDS",
    help="Give up on an upstream connection or read after this long, and serve the cache. "
    "[env: PIPDEPOT_UPSTREAM_TIMEOUT; default: 10]",
)
@click.option(
    "--upstream-deadline",
    metavar="SECONDS",
    help="Give up on a page, metadata file or range that is not complete after this long, and serve "
    "the cache; a file download gets this long for each SECONDS x --upstream-min-rate bytes. "
    "[env: PIPDEPOT_UPSTREAM_DEADLINE; default: 30]",
)
@click.option(
    "--upstream-min-rate",
    metavar="BYTES",
    help="Abandon a file download slower than this many bytes a second over --upstream-deadline. "
    "[env: PIPDEPOT_UPSTREAM_MIN_RATE; default: 8192]",
)
@click.option(
    "--upload-limit",
    metavar="MIB",
    help="Refuse an upload whose file is larger than this (413). Uploads are off until "
    "`pipdepot token create` made a token. [env: PIPDEPOT_UPLOAD_LIMIT; default: 100]",
)
@click.option(
    "--reads-need-token/--open-reads",
    default=None,
    help="Answer pages and files only to clients that send a token (index URL "
    "http://__token__:TOKEN@HOST:PORT/simple/); /+health stays open. "
    "[env: PIPDEPOT_READS_NEED_TOKEN; default: open reads]",
)
@click.option(
    "--config",
    metavar="FILE",
    help="TOML config file (host, port, mirror-dir, upstreams, offline, ttl, upstream-timeout, "
    "upstream-deadline, upstream-min-rate, upload-limit, reads-need-token). [env: PIPDEPOT_CONFIG]",
)
def serve_command(**options: Any) -> None:
    """Run the caching, offline-capable PyPI mirror.

    Serves the Simple API (PEP 503 HTML and PEP 691 JSON, PEP 658 metadata) at
    http://HOST:PORT/simple/ (and at http://HOST:PORT/), caching every page and file clients
    ask for. When upstream cannot be reached, pages are served from the cache listing only the
    files present locally. Logs one line per request. /+health, /+metrics (Prometheus) and
    /+status (JSON) report on it. Stop it with Ctrl-C or SIGTERM.

    Uploads (twine, uv publish...) are POSTed to http://HOST:PORT/ with user __token__ and a
    token from `pipdepot token create`. A project with an uploaded or added file is private:
    its pages list its own files only, never upstream's (see `pipdepot allow-upstream`).
    """
    flags = ServeFlags(
        host=options["host"],
        port=options["port"],
        mirror_dir=options["mirror_dir"],
        upstreams=tuple(options["upstreams"]),
        offline=options["offline"],
        ttl=options["ttl"],
        upstream_timeout=options["upstream_timeout"],
        config=options["config"],
        upstream_deadline=options["upstream_deadline"],
        upstream_min_rate=options["upstream_min_rate"],
        upload_limit=options["upload_limit"],
        reads_need_token=options["reads_need_token"],
    )
    serve(load_serve_settings(flags, os.environ))


@click.command(name="gen-config")
@click.option(
    "--output",
    required=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Directory to write the files in.",
)
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="ADDR:PORT",
    help="Where nginx listens (0.0.0.0:80 to serve a network).",
)
@click.option("--user", "user_unit", is_flag=True, help="A user unit for a laptop: no nginx, no system user.")
@click.option("--host", default="127.0.0.1", show_default=True, help="pipdepot's address, behind nginx.")
@click.option("--port", default="3141", show_default=True, help="pipdepot's port.")
@click.option(
    "--mirror",
    "mirror_dir",
    metavar="DIR",
    help="The mirror directory. [default: /var/lib/pipdepot (the unit's StateDirectory), "
    "with --user ~/.cache/image-create/pypi/mirror]",
)
@click.option("--upstream", "upstreams", multiple=True, metavar="URL", help="Upstream index, repeatable.")
@click.option("--offline/--online", default=None, help="Never contact upstream.")
@click.option("--ttl", metavar="SECONDS", help="Page refresh age. [default: 600]")
@click.option("--upstream-timeout", metavar="SECONDS", help="Upstream timeout. [default: 10]")
def gen_config_command(output: Path, listen: str, user_unit: bool, **options: Any) -> None:
    """Write the files of a permanent install of `pipdepot serve` into the --output directory.

    pipdepot.service (a hardened systemd unit, Type=notify), config.toml (every setting
    pipdepot reads, commented), and, unless --user, pipdepot.sysusers.conf (its system user)
    and nginx-pipdepot.conf (a server block for nginx's http {} that sends cached files
    itself and passes the rest to pipdepot). Each file says how to install it. The files
    depend on these flags alone, not on PIPDEPOT_* variables or a config file.
    """
    if options["mirror_dir"] is None and not user_unit:
        options["mirror_dir"] = str(SYSTEM_MIRROR)
    flags = ServeFlags(**{**options, "upstreams": tuple(options["upstreams"]), "config": os.devnull})
    settings = load_serve_settings(flags, settings_environ(os.environ))
    command = (sys.executable, "-m", "pipdepot")
    generated = generate(GenConfig(settings, listen=listen, user=user_unit, command=command))
    for item, path in zip(generated, write(output, generated), strict=True):
        click.echo(f"pipdepot: wrote {path}: {item.purpose}")


SERVER_COMMANDS = (serve_command, gen_config_command)
