#!/usr/bin/env bash
# Rasa's web widget (botfront's `rasa-webchat`, Apache-2.0), unmodified, from the npm registry into
# var/vendor/rasa-webchat/, so that the API serves it at /widget/webchat.js and no page loads it from
# a CDN (docs/channels.md). Only the package's tarball is fetched (`npm pack`), never its dependency
# tree: the widget's UMD build `lib/index.js` bundles everything it needs (React, socket.io-client 3).
# The tarball must match the integrity pinned here, whatever the registry says.
# Idempotent: nothing is fetched when the pinned version is already in place.
#   scripts/vendor-webchat.sh      (run by scripts/setup.sh; about 2 s)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.0.1
INTEGRITY="sha512-Ld1zVJvTAaTrs6A5p8t70agNNrKYRyXlvqXZRgBoDvKKUXbA0jhJKECi5bdPGlaR6jsmqWtVylHS+YqIqo0x8w=="
TARGET=var/vendor/rasa-webchat

if [ -f "$TARGET/VERSION" ] && [ "$(cat "$TARGET/VERSION")" = "$VERSION $INTEGRITY" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "setup: npm is missing, so the web widget page (/widget) will not work:" \
    "install Node.js and npm, then run scripts/vendor-webchat.sh" >&2
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "setup: fetching the web widget rasa-webchat $VERSION from the npm registry …"
if ! tarball=$(cd "$work" && npm pack "rasa-webchat@$VERSION" --silent 2>"$work/npm.log"); then
  echo "setup: fetching rasa-webchat failed, so the web widget page (/widget) will not work:" >&2
  tail -n 5 "$work/npm.log" >&2
  exit 0
fi
actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
  echo "setup: rasa-webchat $VERSION from the registry does not match the pinned integrity; not installed" >&2
  exit 1
fi
tar -xzf "$work/$tarball" -C "$work" package/lib/index.js package/LICENSE
rm -rf "$TARGET"
mkdir -p "$TARGET"
mv "$work/package/lib/index.js" "$TARGET/webchat.js"
mv "$work/package/LICENSE" "$TARGET/LICENSE"
echo "$VERSION $INTEGRITY" >"$TARGET/VERSION"
echo "setup: web widget ready ($TARGET)"
