"""The config file's keys: which commands read each one, and what it sets.

One table both documents the keys (``pipdepot gen-config`` writes its commented config
file from it) and decides which are accepted, so no key is read without being documented.
Each key's variable is ``PIPDEPOT_`` and the key in capitals, ``-`` as ``_``.
"""

from __future__ import annotations

__all__ = ["CONFIG_KEYS"]

#: Every key the config file may hold: the commands that read it, and what it sets. ``pipdepot
#: gen-config`` writes its commented config file from this table, and a key not in it is refused,
#: so no key is read without being documented.
CONFIG_KEYS: dict[str, tuple[str, str]] = {
    "host": ("serve", "address to listen on (PIPDEPOT_HOST; default 127.0.0.1)"),
    "port": ("serve", "port to listen on (PIPDEPOT_PORT; default 3141)"),
    "mirror-dir": (
        "serve, sync, check, add, ls, export, import, plan, inject, chroot",
        (
            "the local mirror directory, a static PEP 503 tree with the server's state in "
            "DIR/.pipdepot (PIPDEPOT_MIRROR_DIR, DIB_IMAGE_CACHE/pypi/mirror; "
            "default ~/.cache/image-create/pypi/mirror)"
        ),
    ),
    "upstreams": (
        "serve, sync",
        (
            "upstream indexes in order; per project the first that has it serves it, never a merge "
            "(PIPDEPOT_UPSTREAMS; default PyPI)"
        ),
    ),
    "offline": (
        "serve, plan, inject, chroot",
        (
            "serve: never contact upstream, serve only cached files; plan/inject/chroot: only the "
            "mirrors, never the public index (PIPDEPOT_OFFLINE, DIB_OFFLINE; default false)"
        ),
    ),
    "ttl": (
        "serve",
        "seconds before a cached project page is refreshed from upstream (PIPDEPOT_TTL; default 600)",
    ),
    "upstream-timeout": (
        "serve",
        (
            "seconds before an upstream connection or read is given up and the cache served "
            "(PIPDEPOT_UPSTREAM_TIMEOUT; default 10)"
        ),
    ),
    "upstream-deadline": (
        "serve",
        (
            "seconds an upstream exchange (a page with its retries, a metadata file, a passed-through "
            "range) may take in all before it is given up (PIPDEPOT_UPSTREAM_DEADLINE; default 30)"
        ),
    ),
    "upstream-min-rate": (
        "serve",
        (
            "bytes a second a file download must bring, counted over each upstream-deadline-long "
            "window, or it is abandoned and the next client starts afresh "
            "(PIPDEPOT_UPSTREAM_MIN_RATE; default 8192)"
        ),
    ),
    "python-versions": (
        "sync, check, export",
        "Python versions to fill or check the mirror for (PIPDEPOT_PYTHON_VERSIONS; default this machine's)",
    ),
    "platforms": (
        "sync, check, export",
        "wheel platform tags to fill or check the mirror for (PIPDEPOT_PLATFORMS; default this machine's)",
    ),
    "mirror-urls": (
        "plan, inject, chroot",
        (
            "index URLs a build root uses, the first primary, the others extra indexes "
            "(PIPDEPOT_MIRROR_URLS, DIB_PYPI_MIRROR_URL*; default file:///tmp/pypi, the mounted mirror)"
        ),
    ),
    "no-pypi": (
        "plan, inject, chroot",
        (
            "do not add the public index as the last extra index, even online "
            "(PIPDEPOT_NO_PYPI, DIB_NO_PYPI_PIP; default false)"
        ),
    ),
    "public-index": (
        "plan, inject, chroot",
        "the public index added last when online (PIPDEPOT_PUBLIC_INDEX; default PyPI)",
    ),
    "retries": (
        "plan, inject, chroot",
        "pip's retries per request (PIPDEPOT_RETRIES, DIB_PIP_RETRIES; default pip's own)",
    ),
    "timeout": (
        "plan, inject, chroot",
        "pip's socket timeout in seconds (PIPDEPOT_TIMEOUT, DIB_PIP_TIMEOUT; default pip's own)",
    ),
    "trusted-hosts": (
        "plan, inject, chroot",
        (
            "hosts pip and uv also trust; plain-http mirror hosts always are "
            "(PIPDEPOT_TRUSTED_HOSTS, DIB_PYPI_TRUSTED_HOST; default none)"
        ),
    ),
    "uv-index-strategy": (
        "plan, inject, chroot",
        (
            "uv's index strategy: first-index, unsafe-first-match or unsafe-best-match "
            "(PIPDEPOT_UV_INDEX_STRATEGY; default first-index)"
        ),
    ),
    "target-view": (
        "plan, inject, chroot",
        (
            "when a mirror URL is a running pipdepot serve, point pip and uv at its target view "
            "(/+auto/simple/: pages trimmed to the installer's own Python and platform) "
            "(PIPDEPOT_TARGET_VIEW; default true)"
        ),
    ),
    "upload-limit": (
        "serve",
        "the largest file an upload may carry, in MiB (PIPDEPOT_UPLOAD_LIMIT; default 100)",
    ),
    "reads-need-token": (
        "serve",
        (
            "answer pages and files only to clients that send a token, as uploads do "
            "(PIPDEPOT_READS_NEED_TOKEN; default false)"
        ),
    ),
}


def __dir__() -> list[str]:
    return __all__
