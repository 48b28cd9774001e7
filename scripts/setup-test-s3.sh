#!/usr/bin/env bash
# Installs the S3-protocol server the tests start by themselves (moto, from PyPI, in a
# virtualenv outside the clone). Idempotent.
set -euo pipefail
VENV="${INGESTOR_S3_VENV:-$HOME/.cache/ingestor-s3}"
MOTO_VERSION=5.2.5
if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
echo "moto $MOTO_VERSION installed in $VENV"
