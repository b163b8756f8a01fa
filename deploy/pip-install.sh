#!/bin/sh
# The image build's `pip install`: into the virtual environment $1, the other arguments
# passed on, every package held to the version deploy/constraints.txt pins.
#
# PIP_CONSTRAINT rather than -c, so that the build backend's isolated install is held too;
# set here rather than in the Dockerfile's ENV, because `python -m venv` runs pip as well
# (ensurepip) and its bundled setuptools is not the locked one. Two optional build inputs:
# wheels in /wheels (`--build-context wheels=DIR`) and the CA bundle pip trusts, the build
# secret `ca-bundle`, for a TLS-intercepting proxy.
set -eu
venv=$1
shift
PIP_CONSTRAINT="$(cd "$(dirname "$0")" && pwd)/constraints.txt"
export PIP_CONSTRAINT
if [ -s /run/secrets/ca-bundle ]; then
    export PIP_CERT=/run/secrets/ca-bundle
fi
if [ -n "$(ls -A /wheels 2>/dev/null)" ]; then
    # Given wheels first, with no index: a complete folder makes an offline build.
    if "$venv/bin/pip" install --no-cache-dir --no-index --find-links /wheels "$@"; then
        exit 0
    fi
    echo "pip-install: /wheels lacks some of it; the index supplies the rest" >&2
    export PIP_FIND_LINKS="/wheels${PIP_FIND_LINKS:+ $PIP_FIND_LINKS}"
fi
exec "$venv/bin/pip" install --no-cache-dir "$@"
