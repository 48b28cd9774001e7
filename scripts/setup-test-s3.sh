#!/usr/bin/env bash
# Installs what the tests start or call by themselves, in a virtualenv outside the clone:
# the S3-protocol server (moto, from PyPI) and delta-rs' Python reader (deltalake), which
# reads the Delta tables the tests write. Idempotent.
set -euo pipefail
VENV="${INGESTOR_S3_VENV:-$HOME/.cache/ingestor-s3}"
MOTO_VERSION=5.2.5
DELTALAKE_VERSION=1.6.6
if [ -x "$VENV/bin/moto_server" ] \
    && "$VENV/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    && "$VENV/bin/python" -c "import deltalake,sys; sys.exit(deltalake.__version__ != '$DELTALAKE_VERSION')" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "deltalake==$DELTALAKE_VERSION"
echo "moto $MOTO_VERSION and deltalake $DELTALAKE_VERSION installed in $VENV"
