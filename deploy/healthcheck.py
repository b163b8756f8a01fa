"""Exit 0 if the local service is ready, else 1: the image's HEALTHCHECK.

Standard library only, so it runs with whatever Python the image has. The port
comes from ``HEADSTART_PORT`` like the server's own, so the two cannot disagree.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def ready_url() -> str:
    """The readiness URL of the server this container runs."""
    host = os.environ.get("HEADSTART_HOST", "")
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    port = os.environ.get("HEADSTART_PORT", "8000")
    return f"http://{host}:{port}/health/ready"


def main() -> int:
    """Probe the readiness endpoint once; print why on failure."""
    url = ready_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"healthcheck: {url}: HTTP {exc.code}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
