#!/usr/bin/env bash
# Re-pin the dependencies after a change to pyproject.toml (needs uv: .venv/bin/uv after setup).
#   requirements/runtime.lock  what the image and a production install get: pyproject's
#                              `dependencies`, nothing else
#   requirements/dev.lock      runtime + the `local` extra (kubetrade up's own nats-server and
#                              PostgreSQL) + the `dev` extra (tests, linters, reference
#                              implementations) + the `train` extra (JAX, optax, gymnasium:
#                              tests train small models), constrained to runtime.lock's versions, so a
#                              test environment runs exactly the versions a pod runs
#   requirements/train.lock    what the training image gets (scripts/image/build.sh train): runtime +
#                              the `train` extra, constrained to runtime.lock and dev.lock, so the
#                              training image runs the versions the tests train with
# Existing pins are kept where they still satisfy pyproject (uv prefers an output file's pins);
# pass --upgrade (or --upgrade-package NAME) to move them.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-$( [ -x .venv/bin/uv ] && echo .venv/bin/uv || echo uv)}"
"$UV" pip compile -q pyproject.toml --python-version 3.11 "$@" -o requirements/runtime.lock
"$UV" pip compile -q pyproject.toml --extra local --extra dev --extra train --python-version 3.11 \
  -c requirements/runtime.lock "$@" -o requirements/dev.lock
"$UV" pip compile -q pyproject.toml --extra train --python-version 3.11 \
  -c requirements/runtime.lock -c requirements/dev.lock "$@" -o requirements/train.lock
echo "runtime: $(grep -c '^[a-z0-9]' requirements/runtime.lock) packages; dev: $(grep -c '^[a-z0-9]' requirements/dev.lock); train: $(grep -c '^[a-z0-9]' requirements/train.lock) packages"
